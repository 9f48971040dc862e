"""Learnability probe: can a from-scratch backbone learn a dataset at all, and does it generalise?

The full trainer mixes many terms (forward kinematics, reprojection, raw-matrix pathologies), so when it does not
beat the mean pose it is unclear whether the *images* are learnable. This probe strips everything else away:
crops (no augmentation) are loaded into memory once, and ``backbone -> linear`` regresses the labels directly
with a mean-squared error — 2D keypoints in bbox units, the global orientation matrix and the local joint
matrices — from a head that starts at the training mean. Train and test errors against that mean predictor,
every ``eval_every`` steps, tell memorisation (train falls, test does not) from learning (both fall).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import Tensor, nn
from tqdm import tqdm

from hmr.data.registry import build_dataset
from hmr.models.backbone import build_backbone

logger = logging.getLogger(__name__)


@dataclass
class ProbeSettings:
    dataset: str = "synth_body"
    backbone: str = "mobilenetv3_small_100"
    train_samples: int = 2000
    test_samples: int = 300
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    eval_every: int = 200
    keypoint_weight: float = 5.0
    seed: int = 0


def load_targets(dataset, count: int) -> Tuple[Tensor, Tensor, int]:
    """``count`` crops (N, 3, H, W) and targets (N, 2K + 9J): bbox-normalised 2D keypoints, then the joint
    matrices; returns K as well. Keypoints are ``(x - centre) / (100 * scale)`` (half the bbox side)."""
    images, targets = [], []
    for i in tqdm(range(min(count, len(dataset))), desc="load", leave=False):
        item = dataset[i]
        kp = (item["keypoints_2d"][:, :2] - item["center"]) / (100.0 * item["scale"])
        images.append(item["img"])
        targets.append(torch.cat([kp.flatten(), item["pose"].flatten()]).float())
    return torch.stack(images), torch.stack(targets), int(dataset[0]["keypoints_2d"].shape[0])


def probe_errors(pred: Tensor, target: Tensor, num_keypoints: int) -> Dict[str, float]:
    """Mean 2D keypoint distance (half-bbox units), and mean squared Frobenius error of the global orientation
    (joint 0) and of the other joints' matrices."""
    k2 = 2 * num_keypoints
    kp = (pred[:, :k2] - target[:, :k2]).reshape(len(pred), -1, 2).norm(dim=-1).mean()
    rot = (pred[:, k2:] - target[:, k2:]).reshape(len(pred), -1, 9).pow(2).sum(-1)
    return {"keypoints2d": float(kp), "global_orient": float(rot[:, 0].mean()), "local_pose": float(rot[:, 1:].mean())}


def _predict(model: nn.Module, images: Tensor, batch: int = 100) -> Tensor:
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(images[i:i + batch]) for i in range(0, len(images), batch)])
    model.train()
    return out


def run_probe(cfg: Mapping[str, Any], settings: ProbeSettings) -> Dict[str, Any]:
    """Train ``backbone -> linear`` on ``settings.dataset`` (config ``cfg`` gives data root and crop size) and
    return the mean-predictor errors and the train/test error history."""
    torch.manual_seed(settings.seed)
    train_x, train_y, num_kp = load_targets(build_dataset(settings.dataset, "train", cfg, augment=False),
                                            settings.train_samples)
    test_x, test_y, _ = load_targets(build_dataset(settings.dataset, "test", cfg, augment=False),
                                     settings.test_samples)
    mean = train_y.mean(0)
    backbone, feature_dim = build_backbone(settings.backbone, None, tuple(train_x.shape[-2:]), spatial=False)
    head = nn.Linear(feature_dim, train_y.shape[1])
    nn.init.zeros_(head.weight)
    head.bias.data.copy_(mean)
    model = nn.Sequential(backbone, head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    weights = torch.ones(train_y.shape[1])
    weights[:2 * num_kp] = settings.keypoint_weight
    monitor = min(len(train_x), len(test_x))
    history: List[Dict[str, Any]] = []
    start = time.time()
    for step in tqdm(range(settings.steps + 1), desc="probe"):
        if step % settings.eval_every == 0 or step == settings.steps:
            history.append({"step": step, "seconds": round(time.time() - start, 1),
                            "train": probe_errors(_predict(model, train_x[:monitor]), train_y[:monitor], num_kp),
                            "test": probe_errors(_predict(model, test_x), test_y, num_kp)})
            logger.info("step %d: train %s test %s", step, history[-1]["train"], history[-1]["test"])
        if step == settings.steps:
            break
        idx = torch.randint(0, len(train_x), (settings.batch_size,))
        loss = ((model(train_x[idx]) - train_y[idx]).pow(2) * weights).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"settings": settings.__dict__, "train_images": len(train_x), "test_images": len(test_x),
            "mean_predictor": {"train": probe_errors(mean.expand_as(train_y[:monitor]), train_y[:monitor], num_kp),
                               "test": probe_errors(mean.expand_as(test_y), test_y, num_kp)},
            "history": history}
