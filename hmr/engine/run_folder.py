"""The run folder of a training run: refuse to start a new run over an existing one, clear it on request,
and remove temporary files a killed process left behind."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import List, Optional

log = logging.getLogger(__name__)

#: Files whose presence means the folder holds a run.
RUN_MARKERS = ("checkpoints/last.pt", "log.csv", "summary.json")
#: What a run writes (removed by ``--overwrite``).
RUN_OUTPUTS = ("checkpoints", "log.csv", "summary.json", "eval_history.csv", "tensorboard", "config.yaml",
               "train.log")


class RunFolderError(RuntimeError):
    """The output folder already holds a run and neither resuming nor overwriting was asked for."""


def existing_run(out_dir: Path) -> Optional[Path]:
    """The first file that shows ``out_dir`` holds a run, or None."""
    for marker in RUN_MARKERS:
        path = Path(out_dir) / marker
        if path.exists():
            return path
    return None


def check_new_run(out_dir: Path) -> None:
    """Raise :class:`RunFolderError` when ``out_dir`` holds a run."""
    found = existing_run(out_dir)
    if found is not None:
        raise RunFolderError(f"{out_dir} already holds a run ({found} exists): continue it with --resume, "
                             f"replace it with --overwrite, or choose another --out")


def prepare_run_folder(out_dir: Path, resume: bool, overwrite: bool) -> List[Path]:
    """Before a run starts: with ``resume`` leave the folder as it is; with ``overwrite`` remove a previous run's
    outputs (returned); otherwise refuse a folder that holds a run (:class:`RunFolderError`)."""
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: give one of them")
    out_dir = Path(out_dir)
    if resume or existing_run(out_dir) is None:
        return []
    if not overwrite:
        check_new_run(out_dir)
    removed = []
    for name in RUN_OUTPUTS:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    log.info("--overwrite: removed the previous run's %s", ", ".join(p.name for p in removed))
    return removed


def remove_stale_temp_files(*folders: Path) -> List[Path]:
    """Delete ``.<name>.*.tmp`` files (atomic writes a killed process never renamed) in ``folders``."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            if path.is_file():
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d stale temporary file(s) of a killed run: %s", len(removed),
                 ", ".join(str(p) for p in removed))
    return removed
