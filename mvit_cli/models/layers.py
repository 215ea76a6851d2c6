"""Building blocks shared by both MViT generations: token pooling, pooling attention, the block.

Tokens travel as (B, L, C) with an optional class token first, together with the (T, H, W)
grid the other L-1 tokens form. Pooling lays the grid part out as a channels-last
(B, C, T, H, W) cube, which is the token order itself, pools it, and reads it back.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import BlockSetting, MViTConfig, PoolMode, Triple

Grid = tuple[int, int, int]


def pool_tokens(x: Tensor, grid: Grid, pool: Callable[[Tensor], Tensor],
                has_cls: bool) -> tuple[Tensor, Grid]:
    """Pool the grid tokens of x (B, L, C) with a 3D operator; the class token skips it.

    In channels-last order a (B, C, T, H, W) cube is the token sequence itself, so the
    reshape is free; the one copy makes it exactly channels-last when x is a strided view
    (pooling kernels would otherwise transpose it to channels-first, far slower).
    """
    batch, _, channels = x.shape
    skip = 1 if has_cls else 0
    cube = x[:, skip:].reshape(batch, *grid, channels).permute(0, 4, 1, 2, 3)
    cube = pool(cube.contiguous(memory_format=torch.channels_last_3d))
    pooled_grid = (cube.shape[2], cube.shape[3], cube.shape[4])
    tokens = cube.permute(0, 2, 3, 4, 1).reshape(batch, -1, channels)
    if skip:
        tokens = torch.cat((x[:, :1], tokens), dim=1)
    return tokens, pooled_grid


def make_pool(mode: PoolMode, channels: int, kernel: Triple, stride: Triple) -> nn.Module:
    """The paper's pooling operator P(.; k, s, p) with p = k // 2, in one of its three forms."""
    padding = tuple(k // 2 for k in kernel)
    if mode == "conv":
        # Depthwise: every channel of a head is pooled with its own learnt kernel.
        return nn.Conv3d(channels, channels, kernel, stride, padding, groups=channels, bias=False)
    if mode == "max":
        return nn.MaxPool3d(kernel, stride, padding)
    if mode == "avg":
        # Explicit zero padding, then an unpadded average: the same numbers as AvgPool3d's
        # padding (which counts padded zeros), but it also accepts grids smaller than the
        # kernel, e.g. 2 frames of tokens with a temporal kernel of 3.
        pad = tuple(p for p in reversed(padding) for _ in range(2))
        return nn.Sequential(nn.ConstantPad3d(pad, 0.0), nn.AvgPool3d(kernel, stride))
    raise ValueError(f"unknown pooling mode {mode!r}")


def _relative_index(q_len: int, k_len: int) -> Tensor:
    """Index into a relative-position table for every (query, key) pair along one axis.

    When Q and K/V were pooled to different lengths, positions are rescaled to the finer of the
    two grids so a query and a key at the same place in the clip get the same distance.
    """
    q_ratio = max(k_len / q_len, 1.0)
    k_ratio = max(q_len / k_len, 1.0)
    dist = (torch.arange(q_len)[:, None] * q_ratio
            - (torch.arange(k_len)[None, :] + (1.0 - k_len)) * k_ratio)
    return dist.long()


def _resize_table(table: Tensor, length: int) -> Tensor:
    """Linearly resample a (n, d) relative-position table to `length` rows (other input sizes)."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear")
    return resized.squeeze(0).t()


def _axis_table(table: Tensor, q_len: int, k_len: int) -> Tensor:
    """(q_len, k_len, d) relative-position embeddings for one axis."""
    table = _resize_table(table, 2 * max(q_len, k_len) - 1)
    return table[_relative_index(q_len, k_len)]


def relative_position_bias(q: Tensor, q_grid: Grid, k_grid: Grid, rel_t: Tensor | None,
                           rel_h: Tensor, rel_w: Tensor) -> Tensor:
    """MViTv2's decomposed relative positions: bias[q, k] = q·R_t + q·R_h + q·R_w.

    q is (B, heads, Lq, d) over grid tokens only; returns (B, heads, Lq, Lk). Image models have
    no temporal table (their grid has one frame).
    """
    b, heads, _, dim = q.shape
    q = q.reshape(b, heads, *q_grid, dim)
    bias_h = torch.einsum("bnthwc,hkc->bnthwk", q, _axis_table(rel_h, q_grid[1], k_grid[1]))
    bias_w = torch.einsum("bnthwc,wkc->bnthwk", q, _axis_table(rel_w, q_grid[2], k_grid[2]))
    bias = bias_h[..., None, :, None] + bias_w[..., None, None, :]
    if rel_t is not None:
        bias_t = torch.einsum("bnthwc,tkc->bnthwk", q, _axis_table(rel_t, q_grid[0], k_grid[0]))
        bias = bias + bias_t[..., :, None, None]
    else:
        bias = bias.expand(*bias.shape[:5], k_grid[0], k_grid[1], k_grid[2])
    return bias.reshape(b, heads, q_grid[0] * q_grid[1] * q_grid[2], -1)


class PoolingAttention(nn.Module):
    """Multi-Head Pooling Attention: project to Q, K, V, pool each on the grid, attend.

    Pooling K and V shortens the sequence attended over; pooling Q sets the output grid.
    """

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

    def _pool(self, x: Tensor, grid: Grid, pool: nn.Module | None,
              norm: nn.Module | None) -> tuple[Tensor, Grid]:
        """Pool one of Q, K, V, given as a (B, L, heads, d) view of the fused projection.

        Heads go side by side as the channels of one grouped convolution, with each head's
        kernel repeated, so the grid is a channels-last view of the projection's output:
        pooling then needs no transposing copy, and its output is already in token order.
        (Per head this is exactly the paper's operator: a depthwise conv has no cross-talk.)
        """
        if pool is None:
            return x, grid
        batch, length, heads, dim = x.shape
        if isinstance(pool, nn.Conv3d):
            weight = pool.weight.repeat(heads, 1, 1, 1, 1)

            def operator(cube: Tensor) -> Tensor:
                return F.conv3d(cube, weight, None, pool.stride, pool.padding, 1, heads * dim)
        else:
            operator = pool
        tokens, pooled_grid = pool_tokens(x.reshape(batch, length, heads * dim), grid, operator,
                                          self.has_cls)
        tokens = tokens.view(batch, -1, heads, dim)
        # The norm sees the class token too, as in the published models.
        return (norm(tokens) if norm is not None else tokens), pooled_grid

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(2)  # each (B, L, heads, d), views

        q, q_grid = self._pool(q, grid, self.pool_q, self.norm_q)
        k, k_grid = self._pool(k, grid, self.pool_k, self.norm_k)
        v, _ = self._pool(v, grid, self.pool_v, self.norm_v)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, d)

        bias = None
        if self.rel_pos_h is not None:
            skip = 1 if self.has_cls else 0
            grid_bias = relative_position_bias(q[:, :, skip:], q_grid, k_grid, self.rel_pos_t,
                                               self.rel_pos_h, self.rel_pos_w)
            # The class token takes no relative position: pad its row and column with zeros.
            bias = F.pad(grid_bias, (skip, 0, skip, 0))

        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)

        if self.residual_pool:
            # MViTv2's residual pooling connection: the pooled query is added back.
            if self.has_cls and not self.residual_with_cls:
                out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
            else:
                out = out + q
        out = out.transpose(1, 2).reshape(batch, out.shape[2], -1)
        return self.proj(out), q_grid


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
    """Pre-norm transformer block whose attention may pool the grid and whose width may grow.

    When the width grows, the skip path is a Linear projection of the *normalised* input:
    after attention in MViTv2 (`dim_mul_in_att`), after the MLP in MViT v1.
    """

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
        self.proj = nn.Linear(setting.dim_in, setting.dim_out) if setting.dim_in != setting.dim_out else None
        self.pool_skip = None
        if setting.stride_q != (1, 1, 1):
            # Max pool with kernel s + 1 (s where s = 1) keeps the skip path on Q's grid.
            kernel = tuple(s + 1 if s > 1 else s for s in setting.stride_q)
            self.pool_skip = nn.MaxPool3d(kernel, setting.stride_q, tuple(k // 2 for k in kernel))

    def forward(self, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
        x_norm = self.norm1(x)
        x_attn, new_grid = self.attn(x_norm, grid)
        if self.proj is not None and self.widen_in_attention:
            x = self.proj(x_norm)
        if self.pool_skip is not None:
            x, _ = pool_tokens(x, grid, self.pool_skip, self.has_cls)
        x = x + self.drop_path(x_attn)

        x_norm = self.norm2(x)
        x_mlp = self.mlp(x_norm)
        if self.proj is not None and not self.widen_in_attention:
            x = self.proj(x_norm)
        return x + self.drop_path(x_mlp), new_grid


class PositionalEmbedding(nn.Module):
    """MViT v1's learnt absolute positions, separable: spatial (H*W) + temporal (T) + class.

    Stored at the trained grid; another input size gets them resampled (bicubic in space,
    linear in time), which is what lets v1 run on other frame counts and resolutions.
    """

    def __init__(self, dim: int, grid: Grid, has_cls: bool) -> None:
        super().__init__()
        self.grid = grid
        t, h, w = grid
        self.spatial = nn.Parameter(torch.zeros(h * w, dim))
        self.temporal = nn.Parameter(torch.zeros(t, dim))
        self.cls = nn.Parameter(torch.zeros(dim)) if has_cls else None
        for param in self.parameters():
            nn.init.trunc_normal_(param, std=0.02)

    def _grid_positions(self, grid: Grid) -> Tensor:
        t, h, w = self.grid
        spatial, temporal = self.spatial, self.temporal
        if grid[1:] != (h, w):
            spatial = F.interpolate(spatial.t().reshape(1, -1, h, w), size=grid[1:], mode="bicubic")
            spatial = spatial.flatten(2).squeeze(0).t()
        if grid[0] != t:
            temporal = _resize_table(temporal, grid[0])
        return (temporal[:, None, :] + spatial[None, :, :]).flatten(0, 1)

    def forward(self, tokens: Tensor, grid: Grid) -> Tensor:
        """tokens: (B, L, C) grid tokens, class token (if any) first."""
        pos = self._grid_positions(grid)
        if self.cls is not None:
            pos = torch.cat((self.cls[None, :], pos), dim=0)
        return tokens + pos
