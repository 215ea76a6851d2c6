"""Multi-Head Pooling Attention (Fan et al. 2021, section 3.1; MViTv2's additions, Li et al.
2022, section 3): project the tokens to Q, K and V, pool each with its own operator
P(.; Theta) on the space-time grid, attend, and project.

Pooling K and V shortens the sequence attended over; pooling Q sets the output grid. MViTv2
adds a decomposed relative-position term to the attention logits and the pooled query back
to the output (residual pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import BlockSetting, MViTConfig
from .pooling import Grid, make_pool, pool_heads
from .positions import relative_position_bias, relative_position_terms


class PoolingAttention(nn.Module):
    def __init__(self, setting: BlockSetting, cfg: MViTConfig) -> None:
        super().__init__()
        dim_in, dim = setting.dim_in, setting.attn_dim
        self.num_heads = setting.num_heads
        self.head_dim = dim // setting.num_heads
        self.has_cls = cfg.cls_token
        self.residual_pool = cfg.residual_pool
        self.residual_with_cls = cfg.residual_with_cls
        self.qkv = nn.Linear(dim_in, 3 * dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(dim, dim)

        self.pool_q = self.norm_q = None
        self.pool_k = self.norm_k = self.pool_v = self.norm_v = None
        with_norm = cfg.pool_mode == "conv"
        eps = cfg.pool_norm_eps if cfg.pool_norm_eps is not None else cfg.norm_eps
        self.q_pooling = (setting.kernel_q, setting.stride_q)
        if setting.kernel_q is not None:
            self.pool_q = make_pool(cfg.pool_mode, self.head_dim, setting.kernel_q, setting.stride_q)
            self.norm_q = nn.LayerNorm(self.head_dim, eps=eps) if with_norm else None
        if setting.kernel_kv is not None:
            self.pool_k = make_pool(cfg.pool_mode, self.head_dim, setting.kernel_kv, setting.stride_kv)
            self.norm_k = nn.LayerNorm(self.head_dim, eps=eps) if with_norm else None
            self.pool_v = make_pool(cfg.pool_mode, self.head_dim, setting.kernel_kv, setting.stride_kv)
            self.norm_v = nn.LayerNorm(self.head_dim, eps=eps) if with_norm else None

        self.rel_pos_t = self.rel_pos_h = self.rel_pos_w = None
        if cfg.rel_pos:
            # Table sizes follow the published checkpoints: 2 * max(q, kv) - 1 spatially
            # (integer-divided grid), 2 * T - 1 in time.
            t, size = setting.grid_in[0], max(setting.grid_in[1:])
            q_size = size // setting.stride_q[1]
            kv_size = size // setting.stride_kv[1]
            spatial = 2 * max(q_size, kv_size) - 1
            self.rel_pos_h = nn.Parameter(torch.zeros(spatial, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(spatial, self.head_dim))
            for table in (self.rel_pos_h, self.rel_pos_w):
                nn.init.trunc_normal_(table, std=0.02)
            if cfg.is_video:  # image models (one frame) have spatial tables only
                self.rel_pos_t = nn.Parameter(torch.zeros(2 * t - 1, self.head_dim))
                nn.init.trunc_normal_(self.rel_pos_t, std=0.02)

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        """x: (B, L, C) normalised tokens on `grid` -> (B, Lq, dim) and Q's grid."""
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).unbind(2)
        q, q_grid = pool_heads(q, grid, self.pool_q, self.norm_q, self.has_cls)
        k, k_grid = pool_heads(k, grid, self.pool_k, self.norm_k, self.has_cls)
        v, _ = pool_heads(v, grid, self.pool_v, self.norm_v, self.has_cls)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, d)

        bias = None
        if self.rel_pos_h is not None:
            skip = 1 if self.has_cls else 0
            terms = relative_position_terms(q[:, :, skip:], q_grid, k_grid, self.rel_pos_t,
                                            self.rel_pos_h, self.rel_pos_w)
            bias = relative_position_bias(terms, k_grid, self.rel_pos_t is not None, skip)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        if self.residual_pool:
            out = self.add_pooled_query(out, q)
        return self.proj(out.transpose(1, 2).flatten(2)), q_grid

    def add_pooled_query(self, out: Tensor, q: Tensor) -> Tensor:
        """MViTv2's residual pooling connection: the pooled query added to the attention's
        output, the class token's row too only where the published model does."""
        if self.has_cls and not self.residual_with_cls:
            return torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
        return out + q
