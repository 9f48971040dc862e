"""Command-line pieces shared by the probe tools: one ``--option`` per field of a settings dataclass."""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, Optional, Sequence, Tuple, Type, TypeVar

from hmr.config import Config, load_config

S = TypeVar("S")


def settings_parser(description: str, settings_cls: Type[Any], config_help: str) -> argparse.ArgumentParser:
    """``--config``, one ``--field-name`` per field of ``settings_cls`` (typed, defaulted), ``--out`` and
    positional ``key=value`` config overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/body_cpu.yaml", help=config_help)
    defaults = settings_cls()
    for field in fields(settings_cls):
        value = getattr(defaults, field.name)
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(value), default=value)
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.root=/data/synthetic")
    return parser


def parse_settings(parser: argparse.ArgumentParser, settings_cls: Type[S],
                   argv: Optional[Sequence[str]] = None) -> Tuple[argparse.Namespace, Config, S]:
    """Parse ``argv``; return the namespace, the loaded config and the settings dataclass."""
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    settings = settings_cls(**{f.name: getattr(args, f.name) for f in fields(settings_cls)})
    return args, cfg, settings
