"""Transformer regression head (HMR 2.0 style, Goel et al., ICCV 2023): one query token cross-attends to the
backbone's spatial tokens, then the same residual decoders as the CLIFF head update the mean estimate."""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from hmr.models.cliff_head import BBOX_INFO_DIM, _check_bbox_info
from hmr.models.ief import Estimate, ResidualDecoder, estimate_size, flatten_estimate


def sincos_position_embedding_2d(height: int, width: int, dim: int, device=None,
                                 dtype=torch.float32) -> torch.Tensor:
    """Fixed 2D sine-cosine position embedding (MAE, He et al. 2022), ``(height*width, dim)``, row-major.

    A quarter of the channels each: sin(y w_k), cos(y w_k), sin(x w_k), cos(x w_k), w_k = 10000^(-k/(dim/4)).
    """
    if dim % 4:
        raise ValueError(f"the position embedding needs dim divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, device=device, dtype=torch.float64) / (dim // 4))
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=torch.float64),
                            torch.arange(width, device=device, dtype=torch.float64), indexing="ij")
    y_angle = ys.reshape(-1, 1) * omega
    x_angle = xs.reshape(-1, 1) * omega
    return torch.cat([y_angle.sin(), y_angle.cos(), x_angle.sin(), x_angle.cos()], dim=1).to(dtype)


class CrossAttentionBlock(nn.Module):
    """Pre-norm decoder layer without self-attention (a single query has nothing to attend to):
    ``q += CrossAttn(LN(q), LN(memory)); q += MLP(LN(q))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.norm_memory = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        memory = self.norm_memory(memory)
        attended, _ = self.attention(self.norm_query(query), memory, memory, need_weights=False)
        query = query + attended
        return query + self.mlp(self.norm_mlp(query))


class TransformerHead(nn.Module):
    """Spatial features (B, C, h, w) + bbox_info (B, 3) -> one estimate per iteration.

    The query token is a learned vector plus a linear embedding of ``[current estimate, bbox_info]``, so
    ``iterations > 1`` is iterative error feedback through the decoder (HMR 2.0 uses one iteration).
    """

    def __init__(self, feature_dim: int, num_joints: int, rep_dim: int, num_betas: int = 10,
                 iterations: int = 1, dim: int = 512, depth: int = 2, heads: int = 8, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, use_bbox_info: bool = True) -> None:
        super().__init__()
        if iterations < 1 or depth < 1:
            raise ValueError(f"iterations and depth must be >= 1, got {iterations} and {depth}")
        if dim % heads or dim % 4:
            raise ValueError(f"dim must be divisible by heads and by 4, got dim={dim}, heads={heads}")
        self.iterations = iterations
        self.use_bbox_info = use_bbox_info
        self.dim = dim
        self.memory_proj = nn.Linear(feature_dim, dim)
        self.query_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query_token, std=0.02)
        feedback_dim = estimate_size(num_joints, rep_dim, num_betas) + (BBOX_INFO_DIM if use_bbox_info else 0)
        self.query_embed = nn.Linear(feedback_dim, dim)
        self.layers = nn.ModuleList(CrossAttentionBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.decoder = ResidualDecoder(dim, num_joints, rep_dim, num_betas)

    def forward(self, features: torch.Tensor, bbox_info: Optional[torch.Tensor], init: Estimate) -> List[Estimate]:
        """Run the decoder from ``init`` (batched mean estimate); returns the estimate after every iteration."""
        if features.ndim != 4:
            raise ValueError(f"TransformerHead expects spatial features (B, C, h, w), got {tuple(features.shape)}")
        batch, _, height, width = features.shape
        memory = self.memory_proj(features.flatten(2).transpose(1, 2))
        memory = memory + sincos_position_embedding_2d(height, width, self.dim, features.device, memory.dtype)
        extra = [_check_bbox_info(bbox_info, batch)] if self.use_bbox_info else []
        estimate, history = init, []
        for _ in range(self.iterations):
            feedback = torch.cat([flatten_estimate(estimate)] + extra, dim=1)
            query = self.query_token + self.query_embed(feedback).unsqueeze(1)
            for layer in self.layers:
                query = layer(query, memory)
            estimate = self.decoder(self.norm(query[:, 0]), estimate)
            history.append(estimate)
        return history
