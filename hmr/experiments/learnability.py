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
    pretrained: int = 0      # 1: the backbone's built-in offline weights (hmr.models.pretrained)
    freeze: int = 0          # 1: keep those weights fixed (only the read-out trains)
    pooling: str = "avg"     # avg | flatten (see hmr.models.backbone)


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
    backbone, feature_dim = build_backbone(settings.backbone, None, tuple(train_x.shape[-2:]), spatial=False,
                                           pretrained=bool(settings.pretrained), freeze=bool(settings.freeze),
                                           pooling=settings.pooling)
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


@dataclass
class LiftSettings:
    dataset: str = "synth_body"
    train_samples: int = 20000
    test_samples: int = 1000
    steps: int = 6000
    batch_size: int = 256
    hidden: int = 1024
    lr: float = 1e-3
    eval_every: int = 1500
    seed: int = 0


def load_keypoint_pairs(dataset, count: int, root_joints: Tuple[int, ...]) -> Tuple[Tensor, Tensor]:
    """From annotations only (no image is read): labelled 2D keypoints ``(x - centre) / (100 * scale)`` with
    unlabelled ones zeroed, (N, 2K), and root-relative 3D keypoints in metres (N, K, 3)."""
    inputs, joints = [], []
    for i in tqdm(range(min(count, len(dataset))), desc="annotations", leave=False):
        ann = dataset.annotation(i)
        kp = (ann.keypoints_2d[:, :2] - ann.center) / (100.0 * ann.scale) * (ann.keypoints_2d[:, 2:3] > 0)
        xyz = ann.joints_3d[:, :3]
        inputs.append(torch.as_tensor(kp.reshape(-1), dtype=torch.float32))
        joints.append(torch.as_tensor(xyz - xyz[list(root_joints)].mean(axis=0), dtype=torch.float32))
    return torch.stack(inputs), torch.stack(joints)


def run_keypoint_lifting(cfg: Mapping[str, Any], settings: LiftSettings) -> Dict[str, Any]:
    """The 2D-keypoint oracle: an MLP lifts *ground-truth* 2D keypoints to root-relative 3D keypoints. Its test
    PA-MPJPE, next to the mean-pose-of-the-training-set predictor's, bounds what an image model gains once it
    localises the keypoints: a gap between that bound and the image model means the pixels-to-keypoints part
    is what has not been learned."""
    from hmr.metrics import pa_mpjpe
    torch.manual_seed(settings.seed)
    default_root = (2, 3) if settings.dataset.startswith("synth_body") else (0,)
    root = tuple(cfg.get("body_model", {}).get("root_joints", default_root))
    train_x, train_y = load_keypoint_pairs(build_dataset(settings.dataset, "train", cfg, augment=False),
                                           settings.train_samples, root)
    test_x, test_y = load_keypoint_pairs(build_dataset(settings.dataset, "test", cfg, augment=False),
                                         settings.test_samples, root)
    mean = train_y.mean(0)
    out_dim = mean.numel()
    model = nn.Sequential(nn.Linear(train_x.shape[1], settings.hidden), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(settings.hidden, settings.hidden), nn.ReLU(), nn.Linear(settings.hidden, out_dim))
    nn.init.zeros_(model[-1].weight)  # start at the mean predictor
    nn.init.zeros_(model[-1].bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    predict = lambda x: model(x).view(len(x), *mean.shape) + mean  # noqa: E731 - residual from the mean
    score = lambda p: float(1000.0 * pa_mpjpe(p.detach().numpy(), test_y.numpy()).mean())  # noqa: E731
    history: List[Dict[str, Any]] = []
    start = time.time()
    for step in tqdm(range(settings.steps + 1), desc="lift"):
        if step % settings.eval_every == 0 or step == settings.steps:
            model.eval()
            with torch.no_grad():
                history.append({"step": step, "seconds": round(time.time() - start, 1),
                                "test_pa_mpjpe_mm": score(predict(test_x))})
            model.train()
        if step == settings.steps:
            break
        idx = torch.randint(0, len(train_x), (settings.batch_size,))
        loss = (predict(train_x[idx]) - train_y[idx]).norm(dim=-1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return {"settings": settings.__dict__, "train_samples": len(train_x), "test_samples": len(test_x),
            "mean_predictor_pa_mpjpe_mm": score(mean.expand_as(test_y)), "history": history}
