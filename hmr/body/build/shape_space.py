"""Shape space: PCA of rest meshes, components scaled to unit variance (so betas ~ N(0, 1) over the samples)."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np


def pca_shape_space(meshes: np.ndarray, num_components: int) -> Tuple[np.ndarray, np.ndarray, Dict[str, float]]:
    """meshes (N, V, 3) -> mean (V, 3), shapedirs (V, 3, L) and fit statistics (variance kept, errors in mm).

    Sign convention (deterministic): each component's entry of largest magnitude is positive.
    """
    count = meshes.shape[0]
    flat = meshes.reshape(count, -1)
    mean = flat.mean(axis=0)
    centred = flat - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    components = components[:num_components]
    signs = np.sign(components[np.arange(num_components), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    std = singular[:num_components] / np.sqrt(count - 1)
    shapedirs = (components * std[:, None]).T.reshape(meshes.shape[1], 3, num_components)
    betas = centred @ components.T / std
    recon = betas @ (components * std[:, None])
    err = np.linalg.norm((recon - centred).reshape(count, -1, 3), axis=-1) * 1000
    stats = {
        "variance_kept": float((singular[:num_components] ** 2).sum() / (singular ** 2).sum()),
        "reconstruction_mean_mm": float(err.mean()),
        "reconstruction_max_mm": float(err.max()),
    }
    return mean.reshape(-1, 3), shapedirs, stats
