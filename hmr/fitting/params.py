"""Body-model parameters as the fit sees them: a full pose of proper rotations, betas and a camera translation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Sequence

import torch
from torch import Tensor

from hmr.rotations import matrix_to_axis_angle, special_procrustes


@dataclass
class FitParams:
    """``rotmats`` (B, J, 3, 3) local rotations, joint 0 = global orientation; ``betas`` (B, L); ``transl``
    (B, 3) the full-frame camera translation (OpenCV camera frame, metres): camera-frame vertices are the model
    output + ``transl``."""

    rotmats: Tensor
    betas: Tensor
    transl: Tensor

    def __post_init__(self) -> None:
        B = self.rotmats.shape[0]
        if self.rotmats.dim() != 4 or self.rotmats.shape[-2:] != (3, 3):
            raise ValueError(f"rotmats must be (B, J, 3, 3), got {tuple(self.rotmats.shape)}")
        if self.betas.dim() != 2 or self.betas.shape[0] != B:
            raise ValueError(f"betas must be (B={B}, L), got {tuple(self.betas.shape)}")
        if self.transl.shape != (B, 3):
            raise ValueError(f"transl must be (B={B}, 3), got {tuple(self.transl.shape)}")

    def __len__(self) -> int:
        return int(self.rotmats.shape[0])

    @classmethod
    def from_dict(cls, params: Mapping[str, Tensor]) -> "FitParams":
        """From smplx-named tensors (``global_orient`` (B, 1, 3, 3) or (B, 3, 3), ``body_pose`` / ``hand_pose``
        (B, J-1, 3, 3), ``betas``, ``transl``) or from ``rotmats`` (B, J, 3, 3) with ``betas`` and ``transl``."""
        if "rotmats" in params:
            rotmats = params["rotmats"]
        else:
            orient = params["global_orient"]
            orient = orient.unsqueeze(1) if orient.dim() == 3 else orient
            local = params["body_pose"] if "body_pose" in params else params["hand_pose"]
            rotmats = torch.cat([orient, local], dim=1)
        return cls(torch.as_tensor(rotmats), torch.as_tensor(params["betas"]), torch.as_tensor(params["transl"]))

    @classmethod
    def from_predictions(cls, predictions: Sequence) -> "FitParams":
        """Stack per-person predictions with ``rotmats`` (J, 3, 3), ``betas`` (L,) and ``transl`` (3,) attributes
        (e.g. ``hmr.demo.predictor.PersonPrediction``)."""
        stack = lambda name: torch.stack([torch.as_tensor(getattr(p, name)) for p in predictions])  # noqa: E731
        return cls(stack("rotmats").float(), stack("betas").float(), stack("transl").float())

    def to_dict(self, kind: str = "body") -> Dict[str, Tensor]:
        """smplx-named tensors: ``global_orient`` (B, 1, 3, 3), ``body_pose`` or (``kind="hand"``) ``hand_pose``,
        ``betas``, ``transl``."""
        local = "body_pose" if kind == "body" else "hand_pose"
        return {"global_orient": self.rotmats[:, :1], local: self.rotmats[:, 1:], "betas": self.betas,
                "transl": self.transl}

    def axis_angle(self) -> Tensor:
        """(B, J, 3) axis-angle of the rotations."""
        return matrix_to_axis_angle(self.rotmats)

    def projected(self) -> "FitParams":
        """The same parameters with every matrix replaced by its nearest rotation (special Procrustes / SVD)."""
        return FitParams(special_procrustes(self.rotmats), self.betas, self.transl)

    def to(self, *args, **kwargs) -> "FitParams":
        return FitParams(self.rotmats.to(*args, **kwargs), self.betas.to(*args, **kwargs),
                         self.transl.to(*args, **kwargs))

    def detach(self) -> "FitParams":
        return FitParams(self.rotmats.detach(), self.betas.detach(), self.transl.detach())

    def select(self, mask_or_index: Tensor) -> "FitParams":
        """The persons picked by a boolean mask or an index tensor."""
        return FitParams(self.rotmats[mask_or_index], self.betas[mask_or_index], self.transl[mask_or_index])

    def where(self, condition: Tensor, other: "FitParams") -> "FitParams":
        """Per person: ``self`` where ``condition`` (B,) is True, else ``other``."""
        c = condition.to(torch.bool)
        return FitParams(torch.where(c[:, None, None, None], self.rotmats, other.rotmats),
                         torch.where(c[:, None], self.betas, other.betas),
                         torch.where(c[:, None], self.transl, other.transl))
