"""Deterministic ``.npz`` writing (fixed zip timestamps, float32 storage) and content checksums."""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Dict

import numpy as np

from hmr.utils.io import atomic_open

_FIXED_DATE = (1980, 1, 1, 0, 0, 0)


def storage_arrays(arrays: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Floats stored as float32 (a few MB in all); integers and strings unchanged."""
    return {k: (v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}


def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> str:
    """Write a compressed npz whose bytes depend only on the arrays; return its sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for key in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.require(arrays[key], requirements="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    data = buffer.getvalue()
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o644)  # atomic_open's temporary file is private (0600)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Checksum of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
