"""Real photographs that ship inside pip packages (no download), and a person mask to check meshes against.

- :func:`sample_photos`: scikit-image's ``astronaut`` (Eileen Collins, upper body, 512x512), ``camera`` (the
  cameraman, most of the body, grey stacked to RGB, 512x512) and matplotlib's ``grace_hopper`` (upper body,
  512x600); :func:`write_sample_photos` saves them as PNG/JPEG files for the demo.
- :class:`PersonSegmenter`: MediaPipe's selfie-segmentation network (converted, PyTorch) -> person mask. It is a
  reference the fitting never sees, used by ``tools/bench_real_photos.py`` for the silhouette IoU.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Union

import cv2
import numpy as np

PHOTOS = ("astronaut", "camera", "grace_hopper")


def grace_hopper_path() -> Path:
    """matplotlib's bundled ``sample_data/grace_hopper.jpg``."""
    import matplotlib
    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def sample_photos() -> Dict[str, np.ndarray]:
    """{name: H x W x 3 uint8 RGB} for :data:`PHOTOS`."""
    import skimage.data
    grace = cv2.imread(str(grace_hopper_path()), cv2.IMREAD_COLOR)
    if grace is None:
        raise FileNotFoundError(f"cannot read {grace_hopper_path()} (matplotlib's sample data)")
    camera = skimage.data.camera()
    return {"astronaut": skimage.data.astronaut(), "camera": np.stack([camera] * 3, axis=-1),
            "grace_hopper": np.ascontiguousarray(grace[..., ::-1])}


def write_sample_photos(folder: Union[str, Path]) -> List[Path]:
    """Write :func:`sample_photos` into ``folder`` as ``<name>.png`` (grace_hopper: the original JPEG bytes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, image in sample_photos().items():
        if name == "grace_hopper":
            path = folder / "grace_hopper.jpg"
            path.write_bytes(grace_hopper_path().read_bytes())
        else:
            path = folder / f"{name}.png"
            if not cv2.imwrite(str(path), image[..., ::-1]):
                raise OSError(f"cannot write {path}")
        paths.append(path)
    return paths


class PersonSegmenter:
    """MediaPipe selfie segmentation (general model): the image stretched to 256x256 (as MediaPipe's graph does),
    foreground probability resized back to the image, thresholded at ``threshold``."""

    def __init__(self, weights_dir: Optional[Union[str, Path]] = None, threshold: float = 0.5) -> None:
        from hmr.models.mediapipe import load_network
        self.net = load_network("selfie_segmentation", weights_dir).eval()
        self.size = int(self.net.input_shape[2])
        self.threshold = threshold

    def probability(self, image: np.ndarray) -> np.ndarray:
        """H x W float32 foreground probability of an RGB (or grey) uint8 image."""
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        h, w = image.shape[:2]
        import torch
        small = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        with torch.no_grad():
            out = self.net(torch.from_numpy(small)[None].permute(0, 3, 1, 2))
        prob = (out[0] if isinstance(out, (list, tuple)) else out).reshape(self.size, self.size).numpy()
        return cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """H x W bool person mask."""
        return self.probability(image) >= self.threshold
