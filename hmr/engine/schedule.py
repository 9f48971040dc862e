"""Learning-rate schedules: linear warm-up followed by constant, step or cosine decay (config ``train.schedule``)."""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch


def lr_factor(step: int, total_steps: int, kind: str = "constant", warmup_steps: int = 0,
              milestones: tuple = (), gamma: float = 0.1, min_factor: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "constant":
        return 1.0
    if kind == "step":
        return gamma ** sum(step >= m for m in milestones)
    if kind == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {kind!r}; expected constant, step or cosine")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int):
    """A LambdaLR stepping once per training step."""
    cfg = dict(cfg or {})
    kind = cfg.get("kind", "constant")
    warmup = int(cfg.get("warmup_steps", 0))
    milestones = tuple(int(m) for m in cfg.get("milestones", ()))
    gamma = float(cfg.get("gamma", 0.1))
    min_factor = float(cfg.get("min_factor", 0.0))
    lr_factor(0, total_steps, kind, warmup, milestones, gamma, min_factor)  # validate eagerly
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, kind, warmup, milestones, gamma, min_factor))
