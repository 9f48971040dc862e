"""hmr.data: dataset readers (official formats), crop/augment, mixing.

Public API: :func:`build_dataset`, :func:`build_mixed_dataset`, :func:`dataset_names`, :func:`skipped_images`,
:class:`MixedDataset`, the readers and the errors :class:`DatasetLayoutError` / :class:`EmptyDatasetError`.
"""
from hmr.data.base import DatasetLayoutError, EmptyDatasetError, ImageDataset
from hmr.data.freihand import FreiHANDDataset
from hmr.data.mixed import MixedDataset
from hmr.data.pw3d import PW3DDataset
from hmr.data.registry import (BUILTIN_SETS, build_dataset, build_mixed_dataset, dataset_names, dataset_spec,
                               skipped_images)
from hmr.data.spin_npz import SpinNpzDataset

__all__ = [
    "BUILTIN_SETS", "DatasetLayoutError", "EmptyDatasetError", "FreiHANDDataset", "ImageDataset", "MixedDataset",
    "PW3DDataset", "SpinNpzDataset", "build_dataset", "build_mixed_dataset", "dataset_names", "dataset_spec",
    "skipped_images",
]
