"""Restricted unpicklers: read untrusted pickles without running code from the file.

- :func:`load_numpy_pickle`: dataset pickles (3DPW ``sequenceFiles``): plain containers and NumPy arrays only.
- :func:`load_model_pickle`: official SMPL/MANO ``.pkl`` files, without chumpy installed.

The official model files are Python-2 pickles of a dict holding numpy arrays, ``chumpy.ch.Ch`` objects (whose state
keeps the array in ``x``) and ``scipy.sparse`` matrices. A pickle can name any importable callable, so this
unpickler resolves only an allow-list: numpy's array/dtype reconstructors, ``copyreg._reconstructor``, plain containers
(``object``, ``set``, ``list``, ...), and *inert stand-ins* for chumpy and scipy.sparse classes that only store their pickled state.
Anything else (``os.system``, ``builtins.eval``, ...) raises :class:`UnsafePickleError`; a truncated or corrupt file
raises :class:`PickleReadError`. Both name the file.
"""
from __future__ import annotations

import builtins
import codecs
import copyreg
import io
import os
import pickle
from typing import Any, Dict, Union

import numpy as np

try:  # numpy >= 2 moved the reconstructors to numpy._core; old pickles still name numpy.core.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for a global that is not on the allow-list."""


class PickleReadError(pickle.UnpicklingError, ValueError):
    """A pickle file is truncated or corrupt (the message names the file and what to do)."""


# What a damaged pickle stream raises inside the (restricted) unpickler.
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, MemoryError)


class PickledState:
    """Inert stand-in for a pickled object of a non-allowed class (chumpy, scipy.sparse): keeps its state."""

    source: str = ""

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(module: str, name: str) -> type:
    return type(name, (PickledState,), {"source": f"{module}.{name}"})


_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_BUILTIN_GLOBALS = {
    ("copy_reg", "_reconstructor"): copyreg._reconstructor,
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    **{(module, name): getattr(builtins, name) for module in ("__builtin__", "builtins")
       for name in ("object", "set", "frozenset", "list", "dict", "tuple")},  # plain containers (chumpy state)
    # Python 3 writes array bytes in protocol-2 pickles as _codecs.encode(str, 'latin1'): text codecs only.
    ("_codecs", "encode"): codecs.encode,
}
_STAND_IN_MODULES = ("chumpy", "scipy.sparse")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the allow-listed globals described in the module docstring.

    ``stand_ins=False`` (dataset pickles) also refuses chumpy / scipy.sparse classes.
    """

    def __init__(self, file: Any, *, stand_ins: bool = True, expected: str = "", **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.stand_ins = stand_ins
        self.expected = expected or ("numpy arrays, chumpy arrays and scipy sparse matrices" if stand_ins
                                     else "plain containers and numpy arrays")

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[key]
        if key in _BUILTIN_GLOBALS:
            return _BUILTIN_GLOBALS[key]
        if self.stand_ins and any(module == m or module.startswith(m + ".") for m in _STAND_IN_MODULES):
            return _stand_in(module, name)
        raise UnsafePickleError(f"refusing to load global {module}.{name}: only {self.expected} are allowed here")


def _csc_or_csr_to_dense(state: Dict[str, Any], source: str) -> np.ndarray:
    shape = tuple(int(s) for s in state.get("_shape", state.get("shape")))
    data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
    dense = np.zeros(shape, dtype=np.float64)
    compressed_axis_len = shape[1] if "csc" in source.lower() else shape[0]
    for major in range(compressed_axis_len):
        lo, hi = int(indptr[major]), int(indptr[major + 1])
        if "csc" in source.lower():
            dense[indices[lo:hi], major] = data[lo:hi]
        else:
            dense[major, indices[lo:hi]] = data[lo:hi]
    return dense


def to_numpy(value: Any, key: str = "?") -> Any:
    """Turn a stand-in (chumpy ``Ch`` or scipy CSC/CSR matrix) into a dense numpy array; pass others through."""
    if not isinstance(value, PickledState):
        return value
    state = value.state if isinstance(getattr(value, "state", None), dict) else {}
    if value.source.startswith("chumpy"):
        if "x" in state:
            return np.asarray(state["x"])
        raise ValueError(f"entry {key!r} is a chumpy expression ({value.source}) without a stored array 'x'")
    if value.source.startswith("scipy.sparse") and ("csc" in value.source or "csr" in value.source):
        return _csc_or_csr_to_dense(state, value.source)
    raise ValueError(f"entry {key!r} has an unsupported pickled type {value.source}")


def _unpickle(raw: bytes, label: str, hint: str, **kwargs: Any) -> Any:
    """Run the restricted unpickler; errors name ``label`` (the file) and say what to do (``hint``)."""
    try:
        return RestrictedUnpickler(io.BytesIO(raw), **kwargs).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{label}: {exc}") from None
    except _DAMAGED as exc:
        raise PickleReadError(f"{label}: not a readable pickle, the file is truncated or corrupt "
                              f"({type(exc).__name__}: {exc}); {hint}") from exc


def load_numpy_pickle(path: Union[str, os.PathLike], encoding: str = "latin1") -> Any:
    """Load a dataset pickle of dicts/lists/strings/NumPy arrays safely (``latin1`` for Python-2 files)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    return _unpickle(raw, str(path), "download or extract it again", stand_ins=False, encoding=encoding)


def load_model_pickle(path_or_bytes: Union[str, os.PathLike, bytes],
                      hint: str = "replace it with a fresh copy of the official file "
                                  "(body_models/README.md says where to get it)") -> Dict[str, Any]:
    """Load an official SMPL/MANO pickle into a dict of plain numpy arrays (and strings/scalars).

    ``hint`` ends the error message of a truncated or corrupt file (how to get a good copy)."""
    if isinstance(path_or_bytes, (bytes, bytearray)):
        raw, label = bytes(path_or_bytes), "body-model pickle (bytes)"
    else:
        with open(path_or_bytes, "rb") as handle:
            raw = handle.read()
        label = str(path_or_bytes)
    obj = _unpickle(raw, label, hint, encoding="latin1",
                    expected="numpy arrays, chumpy arrays and scipy sparse matrices (official SMPL/MANO files)")
    if not isinstance(obj, dict):
        raise ValueError(f"{label}: expected a dict in the body-model pickle, got {type(obj).__name__}")
    try:
        return {str(k): to_numpy(v, str(k)) for k, v in obj.items()}
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise PickleReadError(f"{label}: {exc}; {hint}") from exc
