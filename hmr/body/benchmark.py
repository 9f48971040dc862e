"""Forward-kinematics benchmark: BodyModel vs ``smplx.lbs.lbs`` on the same tensors, timed interleaved.

Each repeat runs every variant once in turn (ours, smplx, ours, smplx, ...), so machine noise hits both alike;
the reported time is the median over repeats and the ratio is smplx / ours (> 1: ours is faster).
Peak memory: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak of the live-bytes timeline recorded by
the torch profiler during one call (bytes allocated by torch operators, counted at the operator's start).
"""
from __future__ import annotations

import contextlib
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np
import torch

from hmr.body.model import BodyModel
from hmr.body.registry import load_data


@dataclass
class BenchRow:
    """One (model, batch, mode) measurement; times in ms, memory in MB."""

    model: str
    batch: int
    mode: str
    ours_ms: float
    smplx_ms: float
    speedup: float
    ours_peak_mb: float
    smplx_peak_mb: float

    def as_dict(self) -> dict:
        return asdict(self)


def _smplx_call(model_name: str, device: torch.device, dtype: torch.dtype) -> Callable:
    from smplx.lbs import lbs

    data = load_data(model_name)
    num_verts, num_joints = data.v_template.shape[0], len(data.parents)
    posedirs = data.posedirs if data.posedirs is not None else np.zeros(((num_joints - 1) * 9, num_verts * 3))
    t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
    arrays = dict(v_template=t(data.v_template), shapedirs=t(data.shapedirs), posedirs=t(posedirs),
                  J_regressor=t(data.J_regressor), parents=torch.as_tensor(data.parents, device=device),
                  lbs_weights=t(data.weights))
    return lambda rot, betas: lbs(betas, rot, pose2rot=False, **arrays)


def _step(call: Callable, rot: torch.Tensor, betas: torch.Tensor, backward: bool) -> None:
    if backward:
        rot.grad = betas.grad = None
    vertices, joints = call(rot, betas)
    if backward:
        (vertices.sum() + joints.sum()).backward()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(calls: Dict[str, Callable[[], None]], repeats: int, warmup: int,
                     device: torch.device) -> Dict[str, List[float]]:
    """Seconds per call for each variant, alternating variants within every repeat."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            _sync(device)
            start = time.perf_counter()
            call()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def peak_memory_mb(call: Callable[[], None], device: torch.device) -> float:
    """Peak bytes allocated by torch during one call, in MB (see the module docstring)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        call()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    # Allocations inside an operator are its "self" memory; frees outside operators are "[memory]" events.
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    deltas = [e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage for e in events]
    return float(max(np.cumsum(deltas).max(), 0)) / 2 ** 20 if deltas else 0.0


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the profiler's C++ start/stop lines (written straight to file descriptor 2)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_benchmark(models: Sequence[str] = ("open-smpl", "open-mano-right"), batches: Sequence[int] = (1, 64, 512),
                  repeats: int = 10, warmup: int = 2, device: str = "cpu",
                  dtype: torch.dtype = torch.float32, seed: int = 0) -> List[BenchRow]:
    """Forward and forward+backward timings for each model and batch size."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name in models:
        ours_model = BodyModel(load_data(name), dtype=dtype).to(dev)
        ours = lambda rot, betas: (lambda o: (o.vertices, o.joints))(ours_model(full_pose=rot, betas=betas))  # noqa
        theirs = _smplx_call(name, dev, dtype)
        for batch in batches:
            rot = (torch.eye(3) + 0.2 * torch.randn(batch, ours_model.num_joints, 3, 3, generator=gen))
            betas = torch.randn(batch, ours_model.num_betas, generator=gen)
            for mode, backward in (("forward", False), ("forward+backward", True)):
                r = rot.to(dev, dtype).requires_grad_(backward)
                b = betas.to(dev, dtype).requires_grad_(backward)
                calls = {"ours": lambda c=ours: _step(c, r, b, backward),
                         "smplx": lambda c=theirs: _step(c, r, b, backward)}
                grad_mode = torch.enable_grad() if backward else torch.no_grad()
                with grad_mode:
                    times = time_interleaved(calls, repeats, warmup, dev)
                    peaks = {k: peak_memory_mb(call, dev) for k, call in calls.items()}
                ours_ms = statistics.median(times["ours"]) * 1e3
                smplx_ms = statistics.median(times["smplx"]) * 1e3
                rows.append(BenchRow(name, batch, mode, ours_ms, smplx_ms, smplx_ms / ours_ms,
                                     peaks["ours"], peaks["smplx"]))
    return rows
