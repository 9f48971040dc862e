"""Generate a synthetic set end to end: plan shards, render them (in parallel worker processes), merge them into
the final files, and write a summary and a contact sheet.

Determinism: shard ``k`` of split ``s`` draws from ``numpy.random.default_rng([seed, kind, split, k])``, so the
annotations depend on the seed and the shard size only — not on the number of workers or on interruptions.
Resuming: a shard whose annotation file exists is never redone; ``manifest.json`` pins the settings so a rerun
with different settings into the same folder is refused instead of mixing two sets.
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
from tqdm import tqdm

from hmr.data.synthetic import pose_prior
from hmr.data.synthetic.contact_sheet import write_contact_sheet
from hmr.data.synthetic.samples import BodySampler, HandSampler, SceneOptions
from hmr.data.synthetic.writers import SPLITS, BodySetWriter, HandSetWriter, SetWriter
from hmr.utils.io import write_json

logger = logging.getLogger(__name__)

KINDS = ("body", "hand")
DEFAULT_ROOT = "data/synthetic"


@dataclass
class SetSpec:
    """Everything that defines one synthetic set (what ``manifest.json`` pins)."""

    kind: str
    name: str
    splits: Dict[str, int]
    seed: int = 0
    shard_size: int = 100
    jpeg_quality: int = 92
    model: Optional[str] = None  # body model, or the right hand model (default: the open models)
    left_model: Optional[str] = None  # hands only (default: open-mano-left)
    scene: SceneOptions = field(default_factory=SceneOptions)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"set name must be a plain folder name, got {self.name!r}")
        unknown = set(self.splits) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; expected a subset of {SPLITS}")
        if any(int(n) < 0 for n in self.splits.values()):
            raise ValueError(f"split sizes must be >= 0, got {self.splits}")
        if int(self.shard_size) < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")
        if isinstance(self.scene, Mapping):
            self.scene = SceneOptions(**self.scene)
        if self.model is None:
            self.model = "open-smpl" if self.kind == "body" else "open-mano-right"
        if self.kind == "hand" and self.left_model is None:
            self.left_model = "open-mano-left"

    @classmethod
    def from_config(cls, kind: str, cfg: Mapping[str, Any], seed: int = 0) -> "SetSpec":
        """Build from a config section (``body:`` or ``hand:`` of ``configs/synthetic/*.yaml``)."""
        cfg = dict(cfg)
        known = {f for f in cls.__dataclass_fields__ if f not in ("kind", "scene")}
        scene_keys = set(SceneOptions.__dataclass_fields__)
        unknown = set(cfg) - known - scene_keys
        if unknown:
            raise ValueError(f"unknown {kind} settings {sorted(unknown)}; known: {sorted(known | scene_keys)}")
        scene_cfg = {k: (tuple(v) if isinstance(v, list) and k != "image_sizes" else v)
                     for k, v in cfg.items() if k in scene_keys}
        if "image_sizes" in scene_cfg:
            scene_cfg["image_sizes"] = tuple(tuple(int(x) for x in hw) for hw in scene_cfg["image_sizes"])
        args = {k: v for k, v in cfg.items() if k in known}
        args.setdefault("seed", seed)
        args["splits"] = {k: int(v) for k, v in dict(args.get("splits", {})).items()}
        return cls(kind=kind, scene=SceneOptions(**scene_cfg), **args)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["scene"]["image_sizes"] = [list(hw) for hw in self.scene.image_sizes]
        return _jsonable(d)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


@dataclass(frozen=True)
class ShardTask:
    split: str
    shard: int
    start: int
    count: int


def plan_shards(spec: SetSpec) -> List[ShardTask]:
    """All shards of all splits, in a fixed order."""
    tasks = []
    for split in SPLITS:
        n = int(spec.splits.get(split, 0))
        for shard, start in enumerate(range(0, n, spec.shard_size)):
            tasks.append(ShardTask(split, shard, start, min(spec.shard_size, n - start)))
    return tasks


def shard_rng(spec: SetSpec, task: ShardTask) -> np.random.Generator:
    return np.random.default_rng([int(spec.seed), KINDS.index(spec.kind), SPLITS.index(task.split), task.shard])


def make_writer(spec: SetSpec, set_dir: Path) -> SetWriter:
    cls = BodySetWriter if spec.kind == "body" else HandSetWriter
    return cls(set_dir, spec.jpeg_quality)


# ---------------------------------------------------------------------------------------------- workers
_WORKER: Dict[str, Any] = {}


def _sampler(spec: SetSpec):
    """The process's sampler for ``spec`` (models are loaded once per process)."""
    key = repr(spec.to_dict())
    if _WORKER.get("key") != key:
        from hmr import body

        if spec.kind == "body":
            sampler = BodySampler(body.load(spec.model), spec.scene)
        else:
            left = body.load(spec.left_model) if spec.left_model and spec.scene.left_share > 0 else None
            sampler = HandSampler(body.load(spec.model), left, spec.scene)
        _WORKER.update(key=key, sampler=sampler)
    return _WORKER["sampler"]


# Worker processes run one thread each: OpenBLAS/OpenMP/llvmpipe thread pools fighting over two cores made
# small numpy products ~40x slower. Spawned children read these at start-up (before numpy is imported).
SINGLE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "LP_NUM_THREADS": "1"}


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)


@contextlib.contextmanager
def _child_environment(env: Mapping[str, str]):
    """Temporarily set environment variables (inherited by processes spawned inside the block)."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_shard(spec: SetSpec, set_dir: Path, task: ShardTask) -> Tuple[ShardTask, float]:
    """Render and write one shard; returns the task and the seconds it took."""
    t0 = time.perf_counter()
    samples = _sampler(spec).generate(shard_rng(spec, task), task.count)
    make_writer(spec, set_dir).write_shard(task.split, task.shard, task.start, samples)
    return task, time.perf_counter() - t0


def _run_shard_star(args: Tuple[SetSpec, Path, ShardTask]) -> Tuple[ShardTask, float]:
    return run_shard(*args)


# ---------------------------------------------------------------------------------------------- driver
def _flatten(settings: Any, prefix: str = "") -> Dict[str, Any]:
    """``{"a.b": value}`` for nested mappings (lists are leaves)."""
    if not isinstance(settings, Mapping):
        return {prefix: settings}
    out: Dict[str, Any] = {}
    for key, value in settings.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def settings_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """``"key: <old> in the folder, <new> now"`` for every setting that differs (dotted keys, sorted)."""
    a, b = _flatten(old), _flatten(new)
    missing = "(not set)"
    return [f"{key}: {a.get(key, missing)} in the folder, {b.get(key, missing)} now"
            for key in sorted(set(a) | set(b)) if a.get(key, missing) != b.get(key, missing)]


def _check_manifest(set_dir: Path, spec: SetSpec, overwrite: bool) -> None:
    manifest = set_dir / "manifest.json"
    if overwrite and set_dir.exists():
        logger.info("removing %s (overwrite)", set_dir)
        shutil.rmtree(set_dir)
    if manifest.exists():
        import json

        try:
            old = json.loads(manifest.read_text())
        except ValueError as exc:
            raise ValueError(f"{manifest} is not valid JSON ({exc}); delete {set_dir} or rerun with --overwrite "
                             "to start over") from exc
        changes = settings_differences(old, spec.to_dict())
        if changes:
            raise ValueError(f"{set_dir} holds a set made with different settings ({'; '.join(changes)}). "
                             f"To start over, rerun with --overwrite (deletes that folder first); or give the new set another name "
                             f"({spec.kind}.name=...); or go back to the settings in {manifest}")
    else:
        write_json(manifest, spec.to_dict())


def generate_set(spec: SetSpec, root: str = DEFAULT_ROOT, workers: int = 1, overwrite: bool = False,
                 progress: bool = True, contact_sheet: bool = True,
                 on_shard: Optional[Callable[[ShardTask], None]] = None) -> Dict[str, Any]:
    """Generate (or finish) the set ``<root>/<spec.name>``; returns the summary also written to summary.json.

    ``on_shard`` is called after each finished shard (used by tests to simulate an interruption).
    """
    set_dir = Path(root) / spec.name
    _check_manifest(set_dir, spec, overwrite)
    writer = make_writer(spec, set_dir)
    tasks = plan_shards(spec)
    todo = [t for t in tasks if not writer.shard_path(t.split, t.shard).exists()]
    reused = len(tasks) - len(todo)
    if reused:
        logger.info("%s: %d of %d shards already done; generating the remaining %d", spec.name, reused, len(tasks),
                    len(todo))
    t0 = time.perf_counter()
    shard_seconds = 0.0
    bar = tqdm(total=sum(t.count for t in todo), desc=f"{spec.kind} {spec.name}", unit="img", disable=not progress)
    workers = max(1, min(int(workers), len(todo) or 1))
    if workers == 1:
        results = (run_shard(spec, set_dir, t) for t in todo)
        pool = None
    else:
        with _child_environment(SINGLE_THREAD_ENV):
            pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init)
        results = pool.imap_unordered(_run_shard_star, [(spec, set_dir, t) for t in todo])
    try:
        for task, seconds in results:
            shard_seconds += seconds
            bar.update(task.count)
            if on_shard is not None:
                on_shard(task)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    render_seconds = time.perf_counter() - t0

    merged = []
    for split in SPLITS:
        n_shards = sum(1 for t in tasks if t.split == split)
        if n_shards:
            merged += [str(p.relative_to(set_dir)) for p in writer.merge(split, n_shards)]
    summary = summarize(spec, writer, tasks)
    summary["files"] = merged
    generated = sum(t.count for t in todo)
    summary["time"] = {
        "generated_images": generated, "reused_shards": reused, "workers": workers,
        "render_seconds": round(render_seconds, 2), "total_seconds": round(time.perf_counter() - t0, 2),
        "images_per_second": round(generated / render_seconds, 2) if generated and render_seconds > 0 else None,
    }
    if contact_sheet:
        first = next((s for s in SPLITS if spec.splits.get(s, 0) > 0), None)
        if first is not None:
            sheet = set_dir / "contact_sheet.png"
            write_contact_sheet(spec.kind, set_dir, first, sheet, seed=spec.seed)
            summary["contact_sheet"] = sheet.name
    write_json(set_dir / "summary.json", summary)
    return summary


def summarize(spec: SetSpec, writer: SetWriter, tasks: List[ShardTask]) -> Dict[str, Any]:
    """Counts, pose statistics and scene statistics over all shards."""
    out: Dict[str, Any] = {"kind": spec.kind, "name": spec.name, "seed": spec.seed, "counts": {}, "splits": {}}
    all_rot, all_kinds = [], []
    names = pose_prior.BODY_ARCHETYPES if spec.kind == "body" else pose_prior.HAND_ARCHETYPES
    for split in SPLITS:
        n_shards = sum(1 for t in tasks if t.split == split)
        if not n_shards:
            continue
        data = writer.read_shards(split, n_shards)
        n = len(data["index"])
        out["counts"][split] = n
        stats = {
            "fov_deg": _range_stats(data["meta_fov"]), "fill": _range_stats(data["meta_fill"]),
            "truncated_share": round(float(np.mean(data["meta_truncated"])), 4),
            "occluded_share": round(float(np.mean(data["meta_occluders"] > 0)), 4),
            "image_sizes": _count([f"{h}x{w}" for h, w in data["img_size"]]),
        }
        if spec.kind == "hand":
            stats["left_share"] = round(float(np.mean(data["is_left"])), 4)
        out["splits"][split] = stats
        all_rot.append(data["rotmat"])
        all_kinds.append(data["meta_archetype"])
    if all_rot:
        rot = np.concatenate(all_rot)
        kinds = np.concatenate(all_kinds)
        joint_names = (pose_prior.smpl_joint_names() if spec.kind == "body"
                       else ["global_orient"] + [f"mano_{i}" for i in range(1, 16)])
        if spec.kind == "body":
            joint_names = ["global_orient"] + joint_names[1:]
        out["pose"] = {
            "archetypes": {names[k]: int(c) for k, c in zip(*np.unique(kinds, return_counts=True))},
            "joint_angle_deg": pose_prior.angle_statistics(rot, joint_names),
        }
    return out


def _range_stats(x: np.ndarray) -> Dict[str, float]:
    return {"min": round(float(np.min(x)), 3), "median": round(float(np.median(x)), 3),
            "max": round(float(np.max(x)), 3)}


def _count(values: List[str]) -> Dict[str, int]:
    keys, counts = np.unique(np.asarray(values), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts)}
