"""Atomic file writing: write to a temporary file in the same folder, fsync, then rename over the target."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write JSON atomically (keys kept in insertion order)."""
    with atomic_open(path, "w") as handle:
        json.dump(obj, handle, indent=indent)
        handle.write("\n")


def write_text(path: PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def save_torch(path: PathLike, obj: Any) -> None:
    """``torch.save`` atomically (a killed process never leaves a truncated checkpoint)."""
    import torch

    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def save_npz(path: PathLike, **arrays: Any) -> None:
    """``numpy.savez`` atomically."""
    import numpy as np

    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
