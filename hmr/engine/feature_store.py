"""Feature caches on disk (``train.feature_cache_dir``): a frozen encoder's features of a dataset subset, computed
once and reused by every later run that asks for the same data, encoder and subset.

The experiments train dozens of heads on the same frozen landmark read-out (issue 18); computing the 6,000 cached
crops once per set instead of once per run is what makes three seeds per condition fit on a 2-core CPU. A cache
file is named by a hash of everything that determines its content (:func:`cache_key`); the key is stored in the
file and compared on load, so a changed data set or encoder never silently reuses stale features. Files are
written atomically and read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, Mapping

import torch

from hmr.engine.feature_cache import CachedFeatureDataset
from hmr.utils.io import save_torch

log = logging.getLogger(__name__)
FORMAT = 1
#: The model settings that decide what the frozen encoder computes (the head's settings do not matter).
ENCODER_KEYS = ("backbone", "pretrained", "backbone_checkpoint", "checkpoint_prefix", "pooling", "input_size")


def _plain(value: Any) -> Any:
    """Config values as plain JSON types (the config's mappings and sequences included)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def cache_key(cfg: Mapping[str, Any], role: str, samples: int, seed: int, **extra: Any) -> Dict[str, Any]:
    """Everything that determines a cache's content: the data config, the encoder settings, which subset
    (``role`` e.g. ``train`` / ``eval:synth_body:test``, ``samples``, ``seed``) and ``extra``."""
    model = cfg.get("model") or {}
    encoder = {k: _plain(model.get(k)) for k in ENCODER_KEYS}
    train_from = (model.get("landmarks") or {}).get("train_from")
    if train_from is not None:  # the cache holds the map at that tensor (keys without it stay as they were)
        encoder["landmarks_train_from"] = train_from
    return {"format": FORMAT, "role": role, "samples": int(samples), "seed": int(seed),
            "data": _plain(cfg.get("data") or {}), "encoder": encoder, **_plain(extra)}


def cache_path(directory: Path, key: Mapping[str, Any]) -> Path:
    """``<directory>/<role>_<sha1 of the key>.pt``."""
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    role = str(key["role"]).replace(":", "_").replace("/", "_")
    return Path(directory) / f"{role}_{digest}.pt"


def save_cache(path: Path, key: Mapping[str, Any], cached: CachedFeatureDataset) -> None:
    """Write ``cached`` with its key (atomically)."""
    save_torch(path, {"key": json.dumps(key, sort_keys=True), "count": cached.count, "skipped": cached.skipped,
                      "fields": cached.fields, "sample_weights": cached.sample_weights})


def load_cache(path: Path, key: Mapping[str, Any]) -> CachedFeatureDataset:
    """Read a cache written by :func:`save_cache`; refuses a file whose stored key is not ``key``."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("key") != json.dumps(key, sort_keys=True):
        raise ValueError(f"feature cache {path} was written for other settings than this run's; delete it "
                         "(it is rebuilt on the next run)")
    return CachedFeatureDataset(state["fields"], int(state["count"]), int(state["skipped"]),
                                state.get("sample_weights"))


def load_or_build(directory: Path | str | None, key: Mapping[str, Any],
                  build: Callable[[], CachedFeatureDataset]) -> CachedFeatureDataset:
    """The cache for ``key`` from ``directory`` when it is there, else ``build()`` (saved there when a directory is
    given). ``directory`` None: always build, nothing written."""
    if directory is None:
        return build()
    path = cache_path(Path(directory), key)
    if path.is_file():
        try:
            cached = load_cache(path, key)
            log.info("feature cache %s: %d samples reused", path, cached.count)
            return cached
        except (RuntimeError, EOFError, KeyError, ValueError) as exc:  # truncated by hand or written elsewhere
            log.warning("feature cache %s unreadable (%s); rebuilding it", path, exc)
    cached = build()
    save_cache(path, key, cached)
    log.info("feature cache %s written (%d samples)", path, cached.count)
    return cached


def training_cache(cfg: Mapping[str, Any], backbone: torch.nn.Module, device: torch.device, seed: int,
                   progress: bool = True) -> CachedFeatureDataset:
    """The cached training set of a ``train.cache_features`` run: ``train.cache_samples`` crops drawn with
    ``train.cache_seed`` (default: the run's seed), from ``train.feature_cache_dir`` when it holds them."""
    from hmr.data import build_mixed_dataset
    from hmr.engine.feature_cache import cache_features
    tcfg = cfg["train"]
    samples, subset_seed = int(tcfg.get("cache_samples", 0)), tcfg.get("cache_seed")
    subset_seed = seed if subset_seed is None else int(subset_seed)
    key = cache_key(cfg, "train", samples, subset_seed)
    return load_or_build(tcfg.get("feature_cache_dir"), key, lambda: cache_features(
        build_mixed_dataset(cfg["data"], split="train", augment=False), backbone, device,
        num_workers=int(tcfg.get("num_workers", 0)), progress=progress, samples=samples, seed=subset_seed))


def evaluation_cache(cfg: Mapping[str, Any], backbone: torch.nn.Module, device: torch.device,
                     max_samples: int | None) -> CachedFeatureDataset:
    """The first ``max_samples`` items of ``eval.dataset`` / ``eval.split`` as frozen-encoder features (float32: the
    evaluation then computes what the image path computes, except that a landmark network with a trained top
    keeps the frozen network's alignment pass here), from ``train.feature_cache_dir`` when it holds them."""
    from torch.utils.data import Subset

    from hmr.data import build_dataset
    from hmr.engine.feature_cache import cache_features
    ecfg = cfg.get("eval") or {}
    name, split = ecfg.get("dataset"), ecfg.get("split", "test")

    def build() -> CachedFeatureDataset:
        dataset = build_dataset(name, split, cfg.get("data"), augment=False)
        if max_samples is not None and max_samples < len(dataset):
            dataset = Subset(dataset, list(range(int(max_samples))))
        return cache_features(dataset, backbone, device, progress=False, dtype=torch.float32,
                              num_workers=int(ecfg.get("num_workers", 0)))

    key = cache_key(cfg, f"eval:{name}:{split}", -1 if max_samples is None else int(max_samples), 0)
    return load_or_build(cfg["train"].get("feature_cache_dir"), key, build)
