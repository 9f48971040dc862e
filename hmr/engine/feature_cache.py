"""Cached encoder features for training on a frozen pretrained backbone (``train.cache_features``).

A frozen encoder maps each (unaugmented) training crop to the same feature map every epoch, so computing it once
is exact and takes the encoder out of the training loop: on a 2-core CPU the steps then cost only the read-out,
the head and forward kinematics (docs/cpu_training.md, section 6). The price is no image augmentation — the
cached crops are the dataset's unaugmented ones — which this module states rather than hides.

:class:`CachedFeatureDataset` holds every sample's fields (bbox info, keypoints, pose labels, ...) and its
encoder map — or landmark vector, with ``model.pooling: landmarks`` — in memory (as float16); its items look like the wrapped dataset's with ``img`` replaced by the
map. The regressor consumes such items when its backbone's ``features_input`` is set (see
:meth:`hmr.models.backbone.Backbone.encoder_maps`).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

log = logging.getLogger(__name__)


class CachedFeatureDataset(Dataset):
    """In-memory samples whose ``img`` is the frozen encoder's feature map (see the module docstring)."""

    def __init__(self, fields: Dict[str, torch.Tensor], count: int, skipped: int = 0,
                 sample_weights: Optional[torch.Tensor] = None) -> None:
        self.fields = fields
        self.count = count
        self.skipped = skipped
        #: The wrapped (mixed) dataset's per-sample drawing weights, for the batch sampler (``None``: uniform).
        self.sample_weights = sample_weights

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Dict[str, Any]:
        item = {key: value[index] for key, value in self.fields.items()}
        item["img"] = item["img"].float()
        return item

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in self.fields.values())


@torch.no_grad()
def cache_features(dataset: Dataset, backbone: torch.nn.Module, device: torch.device, batch_size: int = 64,
                   num_workers: int = 0, progress: bool = True, samples: int = 0,
                   seed: int = 0, dtype: torch.dtype = torch.float16) -> CachedFeatureDataset:
    """Run ``backbone.encoder_maps`` over the items of ``dataset`` (no augmentation expected) and keep the maps
    (as ``dtype``) with every other tensor field of the items. ``samples`` > 0: only that many items, drawn without
    replacement with ``seed`` (in index order); the dataset's ``sample_weights`` follow them."""
    if not getattr(backbone, "frozen", False):
        raise ValueError("train.cache_features needs a frozen backbone (model.freeze_backbone=true with "
                         "model.pretrained): a trained encoder's features change every step")
    if samples < 0:
        raise ValueError(f"train.cache_samples must be >= 0, got {samples}")
    weights = getattr(dataset, "sample_weights", None)
    if 0 < samples < len(dataset):
        chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:samples].sort().values
        weights = None if weights is None else torch.as_tensor(weights)[chosen]
        dataset = Subset(dataset, chosen.tolist())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: Dict[str, List[torch.Tensor]] = {}
    was_training = backbone.training
    backbone.eval()
    for batch in tqdm(loader, desc="cache features", disable=not progress, leave=False):
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                continue
            if key == "img":
                value = backbone.encoder_maps(value.to(device)).to("cpu", dtype)
            chunks.setdefault(key, []).append(value)
    backbone.train(was_training)
    fields = {key: torch.cat(parts) for key, parts in chunks.items()}
    skipped = int(fields["unreadable"].sum()) if "unreadable" in fields else 0
    if "index" in fields:  # substitutions are counted here, once: cached item i serves itself
        fields["source_index"] = fields.pop("index")
        fields["index"] = torch.arange(len(fields["img"]))
    cached = CachedFeatureDataset(fields, len(fields["img"]), skipped,
                                  None if weights is None else torch.as_tensor(weights, dtype=torch.double))
    log.info("cached encoder features of %d training samples: %s per sample, %.0f MB in all (no augmentation)",
             cached.count, tuple(fields["img"].shape[1:]), cached.nbytes / 2**20)
    return cached
