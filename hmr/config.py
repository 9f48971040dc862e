"""The one config system: YAML files (with ``_base_`` inheritance) plus ``key.sub=value`` command-line overrides.

A config is a plain nested ``dict``; :class:`Config` adds attribute access. Override values are parsed as
YAML, so ``train.lr=3e-4``, ``model.backbone=resnet18`` and ``data.train=[synth_body]`` all work.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import yaml

PathLike = Union[str, Path]


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``3e-4`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"))


def _parse(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class ConfigError(ValueError):
    """Raised for unreadable config files and malformed overrides."""


class Config(dict):
    """A dict with attribute access to its keys (nested dicts become Configs)."""

    def __init__(self, data: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__()
        for key, value in (data or {}).items():
            self[key] = _wrap(value)

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r} (keys: {sorted(self)})") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = _wrap(value)

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Config":
        return Config(copy.deepcopy(self.to_dict(), memo))

    def to_dict(self) -> Dict[str, Any]:
        """Plain nested dicts/lists (for YAML/JSON dumps and checkpoints)."""
        return _unwrap(self)

    def get_path(self, dotted: str, default: Any = None) -> Any:
        """``cfg.get_path("train.lr")``; returns ``default`` when any part is missing."""
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


def _wrap(value: Any) -> Any:
    if isinstance(value, Config):
        return value
    if isinstance(value, Mapping):
        return Config(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> Dict[str, Any]:
    """Recursive merge: dicts merge key by key, everything else in ``update`` replaces ``base``."""
    out = copy.deepcopy(_unwrap(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(_unwrap(value))
    return out


def load_yaml(path: PathLike) -> Dict[str, Any]:
    """Read one YAML file, resolving ``_base_`` (a path or list of paths relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = _parse(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level")
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: Dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, load_yaml(path.parent / base))
    return merge(merged, data)


def apply_overrides(cfg: Mapping[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict."""
    out = _unwrap(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        dotted, raw = item.split("=", 1)
        try:
            value = _parse(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value of override {item!r}: {exc}") from exc
        node = out
        parts = dotted.strip().split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return out


def load_config(path: Optional[PathLike] = None, overrides: Iterable[str] = (),
                defaults: Optional[Mapping[str, Any]] = None) -> Config:
    """Defaults ← YAML file (with bases) ← overrides, as a :class:`Config`."""
    data: Dict[str, Any] = _unwrap(defaults) if defaults else {}
    if path is not None:
        data = merge(data, load_yaml(path))
    return Config(apply_overrides(data, overrides))


def dump_yaml(cfg: Mapping[str, Any]) -> str:
    """YAML text of a config (stable key order)."""
    return yaml.safe_dump(_unwrap(cfg), sort_keys=False)
