"""Temporal smoothing of one track's parameters, in proper spaces.

Rotations are never averaged entry-wise. ``savgol`` (offline, zero lag; the default for video files) smooths
unit quaternions made sign-continuous along time with a Savitzky-Golay filter and renormalises them — for the
small spread inside a window this is the chordal L2 mean's first-order behaviour on SO(3). ``one_euro`` (causal,
for live streams) is the One-Euro filter (Casiez et al., CHI 2012) on SO(3): each step moves the filtered
rotation towards the new one along the geodesic, ``R̂_t = R̂_{t-1} exp(α log(R̂_{t-1}ᵀ R_t))``, with the cutoff
raised by the filtered angular speed, so slow motion is smoothed hard and fast motion follows with little lag.
Translations get the same filters in R³; shape (betas) is held per track (its median over the track).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from scipy.signal import savgol_filter

from hmr.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_quaternion, quaternion_to_matrix

KINDS = ("savgol", "one_euro", "none")


@dataclass
class SmoothingConfig:
    """``kind`` savgol | one_euro | none; ``window`` / ``order`` for savgol (frames); ``min_cutoff`` (Hz),
    ``beta`` and ``d_cutoff`` (Hz) for one_euro."""

    kind: str = "savgol"
    window: int = 9
    order: int = 2
    min_cutoff: float = 1.0
    beta: float = 0.3
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"smoothing kind must be one of {KINDS}, got {self.kind!r}")
        if self.window < 3 or self.order < 1:
            raise ValueError(f"savgol needs window >= 3 and order >= 1, got {self.window}, {self.order}")


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so that consecutive quaternions have a non-negative dot product (q and -q are the
    same rotation; the flip removes the jumps a filter would otherwise smear)."""
    out = np.array(q, dtype=np.float64, copy=True)
    for t in range(1, len(out)):
        flip = np.sum(out[t] * out[t - 1], axis=-1) < 0
        out[t][flip] *= -1
    return out


def _window(length: int, window: int, order: int) -> int:
    w = min(window, length if length % 2 else length - 1)
    return w if w > order else 0


def savgol_rotations(rotmats: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    """(T, J, 3, 3) rotations smoothed along T (too short a sequence is returned as it is)."""
    w = _window(len(rotmats), window, order)
    if not w:
        return np.array(rotmats, copy=True)
    q = matrix_to_quaternion(torch.as_tensor(rotmats, dtype=torch.float64)).numpy()
    q = savgol_filter(continuous_quaternions(q), w, order, axis=0, mode="interp")
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return quaternion_to_matrix(torch.from_numpy(q)).numpy()


def savgol_vectors(x: np.ndarray, window: int = 9, order: int = 2) -> np.ndarray:
    w = _window(len(x), window, order)
    return savgol_filter(np.asarray(x, dtype=np.float64), w, order, axis=0, mode="interp") if w else np.array(x)


def _alpha(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro_rotations(rotmats: np.ndarray, timestamps: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    """Causal One-Euro filter on SO(3), per joint; ``timestamps`` in seconds (variable frame rates are fine)."""
    R = torch.as_tensor(rotmats, dtype=torch.float64)
    out = R.clone()
    speed = torch.zeros(R.shape[1], dtype=torch.float64)
    for t in range(1, len(R)):
        dt = max(float(timestamps[t] - timestamps[t - 1]), 1e-6)
        delta = matrix_to_axis_angle(out[t - 1].transpose(-1, -2) @ R[t])        # (J, 3), in the filtered frame
        a_d = _alpha(np.full(1, cfg.d_cutoff), dt)[0]
        speed = a_d * delta.norm(dim=-1) / dt + (1 - a_d) * speed
        a = torch.as_tensor(_alpha(cfg.min_cutoff + cfg.beta * speed.numpy(), dt))
        out[t] = out[t - 1] @ axis_angle_to_matrix(a[:, None] * delta)
    return out.numpy()


def one_euro_vectors(x: np.ndarray, timestamps: np.ndarray, cfg: SmoothingConfig) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    dx = np.zeros_like(x[0])
    for t in range(1, len(x)):
        dt = max(float(timestamps[t] - timestamps[t - 1]), 1e-6)
        a_d = _alpha(np.full(1, cfg.d_cutoff), dt)[0]
        dx = a_d * (x[t] - out[t - 1]) / dt + (1 - a_d) * dx
        a = _alpha(cfg.min_cutoff + cfg.beta * np.abs(dx), dt)
        out[t] = out[t - 1] + a * (x[t] - out[t - 1])
    return out


@dataclass
class TrackSeries:
    """One track's per-frame parameters: ``rotmats`` (T, J, 3, 3) local rotations (joint 0 = global
    orientation, camera frame), ``betas`` (T, B), ``transl`` (T, 3) metres, ``timestamps`` (T,) seconds,
    ``frames`` (T,) frame indices."""

    rotmats: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    timestamps: np.ndarray
    frames: np.ndarray


def smooth_track(series: TrackSeries, cfg: Optional[SmoothingConfig] = None) -> TrackSeries:
    """The smoothed series (shape held at its median over the track for every kind but ``none``)."""
    cfg = cfg or SmoothingConfig()
    if cfg.kind == "none":
        return series
    betas = np.repeat(np.median(series.betas, axis=0, keepdims=True), len(series.betas), axis=0)
    if cfg.kind == "savgol":
        rot = savgol_rotations(series.rotmats, cfg.window, cfg.order)
        transl = savgol_vectors(series.transl, cfg.window, cfg.order)
    else:
        rot = one_euro_rotations(series.rotmats, series.timestamps, cfg)
        transl = one_euro_vectors(series.transl, series.timestamps, cfg)
    return TrackSeries(rot, betas, transl, series.timestamps.copy(), series.frames.copy())
