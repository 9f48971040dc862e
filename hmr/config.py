"""The one config system: YAML files (with ``_base_`` inheritance) plus ``key.sub=value`` command-line overrides.

A config is a plain nested ``dict``; :class:`Config` adds attribute access. Override values are parsed as
YAML, so ``train.lr=3e-4``, ``model.backbone=resnet18`` and ``data.train=[synth_body]`` all work.
"""
from __future__ import annotations

import copy
import difflib
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


#: Dotted keys whose value is free-form: an override or file replaces it whole, with any type.
FREE_KEYS = ("data.train", "data.ratios", "representation.options",
             "model.pretrained")   # true | false | a weights path
#: Sections whose children may be new names (e.g. a dataset under ``data.sets``); inside them anything goes.
OPEN_SECTIONS = ("data.sets",)


def _under(dotted: str, prefixes: Iterable[str], strict: bool) -> bool:
    return any((dotted.startswith(p + ".") if strict else dotted == p or dotted.startswith(p + "."))
               for p in prefixes)


def _free(dotted: str) -> bool:
    """True where the schema does not constrain keys or types (free keys and the insides of open sections)."""
    return _under(dotted, FREE_KEYS, strict=False) or _under(dotted, OPEN_SECTIONS, strict=True)


def _unknown(dotted: str, node: Mapping[str, Any], where: str) -> ConfigError:
    parent, _, key = dotted.rpartition(".")
    close = difflib.get_close_matches(key, [str(k) for k in node], n=1)
    hint = f"; did you mean {(parent + '.' if parent else '') + close[0]}?" if close else ""
    keys = ", ".join(str(k) for k in node) or "none"
    return ConfigError(f"{where}: unknown key {dotted}{hint} ({parent or 'the top level'} has: {keys})")


def _coerce(dotted: str, current: Any, value: Any, raw: Optional[str], where: str) -> Any:
    """``value`` in the type of ``current`` where that is lossless; a :class:`ConfigError` otherwise."""
    shown = repr(raw) if raw is not None else repr(value)

    def refuse(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {dotted} expects {expected} (it holds {current!r}), got {shown}")

    if current is None:
        return value
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
        raise refuse("true or false")
    if isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise refuse("an integer")
    if isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise refuse("a number")
    if isinstance(current, str):
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float, bool)):
            return raw if raw is not None else str(value)
        raise refuse("a string")
    if isinstance(current, list):
        if isinstance(value, list):
            return value
        raise refuse("a list")
    return value


def _assign(node: Dict[str, Any], dotted: str, value: Any, raw: Optional[str], where: str) -> None:
    """Set ``node[key] = value`` (key = last part of ``dotted``) under the schema rules of :func:`checked_merge`."""
    key = dotted.rpartition(".")[2]
    if _free(dotted):
        if _under(dotted, OPEN_SECTIONS, strict=True) and isinstance(value, Mapping) \
                and isinstance(node.get(key), Mapping):
            node[key] = merge(node[key], value)
        else:
            node[key] = copy.deepcopy(_unwrap(value))
        return
    if key not in node:
        raise _unknown(dotted, node, where)
    current = node[key]
    if isinstance(current, Mapping):
        if not isinstance(value, Mapping):
            example = next(iter(current), "key")
            got = raw if raw is not None else repr(value)
            raise ConfigError(f"{where}: {dotted!r} is a section, not a value (got {got}); "
                              f"set one of its keys, e.g. {dotted}.{example}=...")
        for sub, sub_value in value.items():
            _assign(current, f"{dotted}.{sub}", sub_value, None, where)
        return
    if isinstance(value, Mapping) and current is not None:
        raise ConfigError(f"{where}: {dotted} holds a value ({current!r}), not a section; got a mapping {value!r}")
    node[key] = _coerce(dotted, current, copy.deepcopy(_unwrap(value)), raw, where)


def checked_merge(base: Mapping[str, Any], update: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """:func:`merge` that treats ``base`` as the schema: a key ``base`` lacks, a section replaced by a value (or
    the reverse) and a lossy type change (``10.7`` for an integer, ``abc`` for a number) raise a
    :class:`ConfigError` naming the key and ``where`` (the file or override). Integers widen to floats, scalars
    given for a string become that string. :data:`FREE_KEYS` and the insides of :data:`OPEN_SECTIONS` are not
    checked."""
    out = _unwrap(base)
    for key, value in update.items():
        _assign(out, str(key), value, None, where)
    return out


def load_yaml(path: PathLike) -> Dict[str, Any]:
    """Read one YAML file, resolving ``_base_`` (a path or list of paths relative to the file). A file with a
    base may only set keys its bases define (:func:`checked_merge`); a file without one defines the schema."""
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
    if not bases:
        return data
    merged: Dict[str, Any] = {}
    for base in bases:
        merged = merge(merged, load_yaml(path.parent / base))
    return checked_merge(merged, data, f"config {path}")


def apply_overrides(cfg: Mapping[str, Any], overrides: Iterable[str], strict: bool = True) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict.

    With ``strict`` (and a non-empty ``cfg``) every key must exist in ``cfg`` and keep its type (see
    :func:`checked_merge`); a mapping value merges into the section it names."""
    out = _unwrap(cfg)
    strict = strict and bool(out)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        dotted, raw = item.split("=", 1)
        dotted = dotted.strip()
        try:
            value = _parse(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value of override {item!r}: {exc}") from exc
        parts = dotted.split(".")
        if not dotted or not all(parts):
            raise ConfigError(f"override {item!r}: {dotted!r} is not a dotted key like train.lr")
        node = out
        for i, part in enumerate(parts[:-1]):
            prefix = ".".join(parts[:i + 1])
            if part not in node and (not strict or _free(prefix) or _under(prefix, OPEN_SECTIONS, False)):
                node[part] = {}
            elif part not in node:
                raise _unknown(prefix, node, f"override {item!r}")
            if not isinstance(node[part], dict):
                if strict and not _free(prefix):
                    raise ConfigError(f"override {item!r}: {prefix} is not a section (it holds {node[part]!r})")
                node[part] = {}
            node = node[part]
        if strict:
            _assign(node, dotted, value, raw, f"override {item!r}")
        else:
            node[parts[-1]] = value
    return out


def load_config(path: Optional[PathLike] = None, overrides: Iterable[str] = (),
                defaults: Optional[Mapping[str, Any]] = None) -> Config:
    """Defaults ← YAML file (with bases) ← overrides, as a :class:`Config`. Overrides must name keys the file
    (or its bases) defines and keep their types; a config with no file and no defaults has no schema."""
    data: Dict[str, Any] = _unwrap(defaults) if defaults else {}
    if path is not None:
        data = merge(data, load_yaml(path))
    return Config(apply_overrides(data, overrides))


def dump_yaml(cfg: Mapping[str, Any]) -> str:
    """YAML text of a config (stable key order)."""
    return yaml.safe_dump(_unwrap(cfg), sort_keys=False)
