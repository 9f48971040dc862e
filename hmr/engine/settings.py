"""Checks of the ``train`` section that the config loader cannot know: counts that must be positive."""
from __future__ import annotations

from typing import Any, Mapping

#: Keys that count something and must be at least 1 (with their defaults).
POSITIVE = {"steps": 1000, "batch_size": 32, "log_every": 10, "checkpoint_every": 200,
            "max_consecutive_nonfinite": 20}
#: Keys that must be at least 0.
NON_NEGATIVE = {"num_workers": 0, "eval_every": 0}


def check_train_settings(train: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming ``train.<key>`` when a count is not a whole number in its range."""
    for keys, low, word in ((POSITIVE, 1, "a positive"), (NON_NEGATIVE, 0, "a non-negative")):
        for key, default in keys.items():
            value = train.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"train.{key} must be {word} integer, got {value!r} "
                                 f"(e.g. train.{key}={max(default, low)})")
    if not float(train.get("lr", 0.0)) > 0:
        raise ValueError(f"train.lr must be positive, got {train.get('lr')!r}")
