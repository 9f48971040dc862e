"""The configuration an evaluation runs with: the checkpoint's stored config, the data/eval sections of an
optional ``--config`` file, then the command-line overrides — each applied, or refused with a reason.

What applies at evaluation time: ``data.*`` (except ``crop_size``), ``eval.*`` and ``representation.*`` (except
``name``: the mappings, e.g. ``representation.inference``, and options). What must match the checkpoint: the
architecture (``model.*``, ``body_model.*``, ``representation.name``, ``data.crop_size``); an override that
contradicts it is refused. Training settings (``train.*``, ``loss.*``) have no effect on evaluation; changing one
is refused rather than silently ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

from hmr.config import Config, ConfigError, apply_overrides, load_config, merge

#: Dotted prefixes fixed by the checkpoint's weights.
ARCHITECTURE = ("model", "body_model", "representation.name", "data.crop_size")
#: Top-level sections an evaluation reads (besides the architecture).
EVAL_SECTIONS = ("data", "eval", "representation")


def _leaves(node: Any, prefix: str = "") -> Iterator[Tuple[str, Any]]:
    if isinstance(node, Mapping) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """Dotted key -> (value in ``a``, value in ``b``) for every leaf that differs (missing = None)."""
    left, right = dict(_leaves(a)), dict(_leaves(b))
    return {k: (left.get(k), right.get(k)) for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)}


def _matches(dotted: str, prefixes: Sequence[str]) -> bool:
    return any(dotted == p or dotted.startswith(p + ".") for p in prefixes)


def resolve_eval_config(stored: Optional[Mapping[str, Any]], config_path: Optional[str] = None,
                        overrides: Sequence[str] = (), checkpoint: str = "the checkpoint") -> Config:
    """The evaluation config. ``stored``: the config saved in ``checkpoint`` (None for the oracle / mean-pose
    sources, which then need ``config_path``). Raises :class:`~hmr.config.ConfigError` naming every override
    that cannot apply, and :class:`~hmr.engine.checkpoint.CheckpointError` when ``config_path`` is for another
    body model or representation."""
    if stored is None:
        if config_path is None:
            raise ValueError("give a checkpoint, or a config for the oracle / mean-pose sources")
        return load_config(config_path, overrides)
    base: Dict[str, Any] = merge(stored, {})
    if config_path is not None:
        from hmr.engine.checkpoint import check_compatible
        from_file = load_config(config_path)
        check_compatible({"config": stored}, from_file["body_model"]["name"], from_file["representation"]["name"],
                         checkpoint)
        data = {k: v for k, v in from_file.get("data", {}).items() if k != "crop_size"}
        base = merge(base, {"data": data, "eval": from_file.get("eval", {})})
    final = apply_overrides(base, overrides)
    problems = []
    for key, (trained, asked) in differences(stored, final).items():
        if _matches(key, ARCHITECTURE):
            problems.append(f"{key}={asked!r} contradicts the checkpoint (trained with {trained!r}; the architecture "
                            "comes from the checkpoint)")
    for key, (before, asked) in differences(base, final).items():
        if not _matches(key, EVAL_SECTIONS) and not _matches(key, ARCHITECTURE):
            problems.append(f"{key} is a training setting with no effect on evaluation (the checkpoint's: {before!r})")
    if problems:
        raise ConfigError("cannot apply override(s): " + "; ".join(problems))
    return Config(final)


def check_architecture(stored: Mapping[str, Any], cfg: Mapping[str, Any], checkpoint: str) -> None:
    """Refuse ``cfg`` when its architecture keys differ from the checkpoint's ``stored`` config."""
    from hmr.engine.checkpoint import CheckpointError
    for key, (trained, given) in differences(stored, cfg).items():
        if _matches(key, ARCHITECTURE) and given is not None:
            raise CheckpointError(f"{checkpoint} was trained with {key}={trained!r}, the config says {given!r}")


def data_description(cfg: Mapping[str, Any], dataset: str, split: str) -> Dict[str, Any]:
    """The data an evaluation read: root, dataset, split, reader type and the resolved file paths."""
    from hmr.data.registry import dataset_spec
    spec = dataset_spec(dataset, cfg)
    root = Path(str((cfg.get("data") or {}).get("root", "data")))
    paths = {}
    for key in ("npz", "images", "root", "hands_mean"):
        value = spec.get(key)
        if isinstance(value, Mapping):
            value = value.get(split)
        if isinstance(value, (str, Path)):
            path = Path(str(value).format(split=split))
            paths[key] = str(path if path.is_absolute() else root / path)
    return {"root": str(root), "dataset": dataset, "split": split, "type": spec.get("type"), "paths": paths}
