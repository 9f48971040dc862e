"""Learning-rate schedules: linear warm-up followed by constant, step or cosine decay (config ``train.schedule``),
and the optimizer's parameter groups (pretrained encoder at a scaled learning rate)."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping

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


class StepSchedule:
    """The learning rate as a pure function of the step counter: ``lr = base_lr * factor(step)``.

    Unlike ``torch.optim.lr_scheduler`` it has no call-order contract with ``optimizer.step()``, so a skipped
    (non-finite) step still advances the schedule without a warning, and a resumed run continues from the
    stored step. ``state_dict`` / ``load_state_dict`` also read the ``LambdaLR`` state of older checkpoints.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        self.optimizer, self.factor = optimizer, factor
        self.base_lrs: List[float] = [float(group.setdefault("initial_lr", group["lr"]))
                                      for group in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * self.factor(self.last_step)

    def step(self) -> None:
        """Move to the next training step (call once per step, taken or skipped)."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> List[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        return {"last_epoch": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_step = int(state["last_epoch"])
        self.base_lrs = [float(v) for v in state.get("base_lrs", self.base_lrs)]
        self._apply()


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], total_steps: int) -> StepSchedule:
    """The ``train.schedule`` of a run, stepping once per training step."""
    cfg = dict(cfg or {})
    kind = cfg.get("kind", "constant")
    warmup = int(cfg.get("warmup_steps", 0))
    milestones = tuple(int(m) for m in cfg.get("milestones", ()))
    gamma = float(cfg.get("gamma", 0.1))
    min_factor = float(cfg.get("min_factor", 0.0))
    lr_factor(0, total_steps, kind, warmup, milestones, gamma, min_factor)  # validate eagerly
    return StepSchedule(optimizer, lambda step: lr_factor(step, total_steps, kind, warmup, milestones, gamma,
                                                          min_factor))


def parameter_groups(model: torch.nn.Module, lr: float, backbone_scale: float) -> List[Dict[str, Any]]:
    """Optimizer groups: the pretrained encoder (``model.backbone.model``) at ``lr * backbone_scale`` (a
    pretrained encoder is usually fine-tuned gently), everything else (heads, read-outs) at ``lr``. Frozen
    parameters are left out."""
    encoder = getattr(getattr(model, "backbone", None), "model", None)
    encoder_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    groups = [{"params": [p for p in model.parameters() if p.requires_grad and id(p) in encoder_ids],
               "lr": lr * backbone_scale},
              {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids], "lr": lr}]
    return [g for g in groups if g["params"]]
