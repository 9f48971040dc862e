"""File-system errors that say which file failed and why, in one line.

Library code wraps its writes in :func:`naming_path` so an ``OSError`` that names no file (a write that hits a
full disk raises ``[Errno 28]`` without a path) is re-raised naming the file being written; command-line tools
print :func:`describe_os_error` instead of a traceback.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded: free some space or write somewhere else",
    errno.EACCES: "no permission to write there: choose a writable folder",
    errno.EPERM: "no permission to write there: choose a writable folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


@contextlib.contextmanager
def naming_path(path: PathLike) -> Iterator[None]:
    """Re-raise an ``OSError`` that names no file as the same kind of error naming ``path``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


def describe_os_error(exc: OSError, fallback: Optional[PathLike] = None) -> str:
    """``<path>: <reason> (errno N, NAME)[; what to do]`` for ``exc`` (``fallback`` when it names no file)."""
    path = exc.filename if exc.filename is not None else fallback
    reason = exc.strerror or str(exc)
    code = f" (errno {exc.errno}, {errno.errorcode.get(exc.errno, '?')})" if exc.errno is not None else ""
    hint = _HINTS.get(exc.errno) if exc.errno is not None else None
    where = f"{path}: " if path is not None else ""
    return f"{where}{reason}{code}" + (f"; {hint}" if hint else "")
