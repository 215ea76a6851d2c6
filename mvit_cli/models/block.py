"""The multiscale transformer block (Fan et al. 2021, section 3.2; Li et al. 2022, 3.3).

Pre-norm, two residual branches: x + attn(norm1(x)), then x + mlp(norm2(x)). At a stage's
first block the attention pools Q, so the first branch's skip is pooled to Q's grid too (max
pool). Where the width grows, the skip is a Linear projection of the normalised input: after
attention in MViTv2 (`dim_mul_in_att`), after the MLP in MViT v1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .attention import PoolingAttention
from .config import BlockSetting, MViTConfig
from .pooling import Grid, pool_tokens, skip_pool


class Mlp(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drops a sample's whole residual branch while training."""

    def __init__(self, prob: float) -> None:
        super().__init__()
        self.prob = prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.prob == 0.0:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MultiscaleBlock(nn.Module):
    def __init__(self, setting: BlockSetting, cfg: MViTConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        self.widen_in_attention = cfg.dim_mul_in_att
        self.has_cls = cfg.cls_token
        attn_dim = setting.attn_dim
        self.norm1 = nn.LayerNorm(setting.dim_in, eps=cfg.norm_eps)
        self.attn = PoolingAttention(setting, cfg)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(attn_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(attn_dim, int(attn_dim * cfg.mlp_ratio), setting.dim_out)
        self.proj = (nn.Linear(setting.dim_in, setting.dim_out)
                     if setting.dim_in != setting.dim_out else None)
        self.pool_skip = skip_pool(setting.stride_q)

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        """x: (B, L, C) tokens on `grid` -> tokens on the pooled grid, and that grid."""
        x_norm = self.norm1(x)
        attended, q_grid = self.attn(x_norm, grid)
        skip = self.attention_skip(x, x_norm, grid)
        return self.after_attention(skip, attended), q_grid

    def attention_skip(self, x: Tensor, x_norm: Tensor, grid: Grid | None,
                       pool=pool_tokens) -> Tensor:
        """The first branch's skip: widened (MViTv2) and pooled to Q's grid (None: no pooling,
        for a class token alone, which pooling never touches). `pool`: how to pool tokens
        (the fast paths' graph form while exporting)."""
        if self.proj is not None and self.widen_in_attention:
            x = self.proj(x_norm)
        if self.pool_skip is not None and grid is not None:
            x, _ = pool(x, grid, self.pool_skip, self.has_cls)
        return x

    def after_attention(self, skip: Tensor, attended: Tensor, out: Tensor | None = None) -> Tensor:
        """x = skip + attn(...); then x + mlp(norm2(x)), x widened first in MViT v1.
        `out`: where to write the result (the CPU's token chunks)."""
        x = skip + self.drop_path(attended)
        x_norm = self.norm2(x)
        if self.proj is not None and not self.widen_in_attention:
            x = self.proj(x_norm)
        return torch.add(x, self.drop_path(self.mlp(x_norm)), out=out)
