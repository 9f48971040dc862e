"""A restricted unpickler for dataset pickles (3DPW): only plain containers and NumPy arrays/scalars.

``pickle.load`` on a downloaded file can run arbitrary code; here every global the stream names must be one
of the NumPy reconstruction helpers below, anything else raises :class:`pickle.UnpicklingError`.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, Union

import numpy as np

_NUMPY_CORE = getattr(np, "_core", None) or np.core
_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,   # bytes written by Python 3 with protocol 2
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _NUMPY_CORE.multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = _NUMPY_CORE.multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _NUMPY_CORE.numeric._frombuffer


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only NumPy array/dtype/scalar reconstruction globals."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays and plain containers are "
                "allowed in dataset pickles") from None


def load_numpy_pickle(path: Union[str, Path], encoding: str = "latin1") -> Any:
    """Load a pickle of dicts/lists/strings/NumPy arrays safely (``encoding='latin1'`` for Python-2 files)."""
    data = Path(path).read_bytes()
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()
