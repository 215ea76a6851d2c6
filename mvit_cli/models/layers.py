"""Building blocks shared by both MViT generations: token pooling, pooling attention, the block.

Tokens travel as (B, L, C) with an optional class token first, together with the (T, H, W)
grid the other L-1 tokens form. Pooling lays the grid part out as a channels-last
(B, C, T, H, W) cube, which is the token order itself, pools it, and reads it back.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import BlockSetting, MViTConfig, PoolMode, Triple, conv_output_grid
from .windows import read_positions, zero_padding

Grid = tuple[int, int, int]

# Tokens per chunk of the per-token steps in CPU inference (see MultiscaleBlock).
CPU_TOKEN_CHUNK = 4096


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


def relative_position_terms(q: Tensor, q_grid: Grid, k_grid: Grid, rel_t: Tensor | None,
                            rel_h: Tensor, rel_w: Tensor) -> Tensor:
    """MViTv2's decomposed relative positions, kept decomposed.

    The bias of query q for key k is q·R_t[t(q), t(k)] + q·R_h[h(q), h(k)] + q·R_w[w(q), w(k)]:
    each term depends on the query and one coordinate of the key. Returned is every such
    term, (B, heads, Lq, Tk + Hk + Wk), the key coordinates in that order, from q given as
    (B, heads, Lq, d) over grid tokens only. Image models have no temporal table (one frame).
    """
    b, heads, _, dim = q.shape
    q = q.reshape(b, heads, *q_grid, dim)
    terms = [torch.einsum("bnthwc,hkc->bnthwk", q, _axis_table(rel_h, q_grid[1], k_grid[1])),
             torch.einsum("bnthwc,wkc->bnthwk", q, _axis_table(rel_w, q_grid[2], k_grid[2]))]
    if rel_t is not None:
        terms.insert(0, torch.einsum("bnthwc,tkc->bnthwk", q,
                                     _axis_table(rel_t, q_grid[0], k_grid[0])))
    return torch.cat(terms, dim=-1).flatten(2, 4)


@lru_cache(maxsize=64)
def key_coordinates(k_grid: Grid, temporal: bool) -> Tensor:
    """(Lk, [Tk +] Hk + Wk): for each grid key, ones at its t (if temporal), h and w columns,
    so that terms @ key_coordinates.T is the full (Lq, Lk) bias."""
    t, h, w = (torch.arange(n) for n in k_grid)
    columns = [h.repeat_interleave(w.numel()).repeat(t.numel()), w.repeat(t.numel() * h.numel())]
    if temporal:
        columns.insert(0, t.repeat_interleave(h.numel() * w.numel()))
    sizes = list(k_grid) if temporal else list(k_grid[1:])
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    onehot = torch.zeros(columns[0].numel(), sum(sizes))
    rows = torch.arange(columns[0].numel())
    for column, offset in zip(columns, offsets, strict=True):
        onehot[rows, column + offset] = 1.0
    return onehot


def attention_with_full_bias(q: Tensor, k: Tensor, v: Tensor, terms: Tensor, k_grid: Grid,
                             temporal: bool, skip: int) -> Tensor:
    """The plain computation of MViTv2's attention: the whole (Lq, Lk) bias as a mask, with
    zeros in the class token's row and column (it takes no relative position)."""
    sizes = k_grid if temporal else k_grid[1:]
    parts = terms.split(list(sizes), dim=-1)
    bias = (parts[-2][..., :, None] + parts[-1][..., None, :]).unsqueeze(-3)
    if temporal:
        bias = parts[0][..., :, None, None] + bias
    bias = bias.expand(*terms.shape[:-1], *k_grid).flatten(-3)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=F.pad(bias, (skip, 0, skip, 0)))


def attention_with_relative_positions(q: Tensor, k: Tensor, v: Tensor, terms: Tensor,
                                      k_grid: Grid, temporal: bool, skip: int) -> Tensor:
    """softmax(q·k / sqrt(d) + bias) v for MViTv2's bias, never building the (Lq, Lk) bias.

    Why: the full bias is large (79 MB per clip in v2-S-16x4's second stage, built, padded
    and read back in every block, about a third of that model's CPU time). Appending each
    query's terms to the query and each key's one-hot coordinates to the key makes the extra
    part of their dot product exactly the bias, so one fused attention kernel, with no mask,
    does it all for 22 to 36 more dimensions. The first `skip` rows (the class token) get
    zeros: it takes no relative position. Values get zero dimensions too (the fused CPU
    kernel wants equal widths), and the width is padded to a multiple of 8 for GPU kernels.
    """
    dim, extra = q.shape[-1], terms.shape[-1]
    pad = -(dim + extra) % 8
    terms = F.pad(terms, (0, pad, skip, 0))
    coordinates = key_coordinates(k_grid, temporal).to(k)
    coordinates = F.pad(coordinates, (0, pad, skip, 0)).expand(*k.shape[:-1], -1)
    q = torch.cat((q * dim ** -0.5, terms), dim=-1)
    k = torch.cat((k, coordinates), dim=-1)
    v = F.pad(v, (0, extra + pad))
    return F.scaled_dot_product_attention(q, k, v, scale=1.0)[..., :dim]


def linear_onto(residual: Tensor, x: Tensor, layer: nn.Linear, out: Tensor | None = None) -> Tensor:
    """residual + layer(x), with the GEMM accumulating onto residual + bias (inference only).

    Why: a Linear first copies its bias into a fresh output, then runs the GEMM, and the
    residual add is one more pass over the tokens. Seeding the output with residual + bias
    and letting the GEMM add its product in place (beta = 1) does the same sum in one pass
    fewer and one allocation fewer; only the order of the fp32 additions differs.
    """
    if layer.bias is None:
        return torch.add(residual, layer(x), out=out)
    out = torch.add(residual, layer.bias, out=out)
    if out.is_contiguous():
        out.view(-1, out.shape[-1]).addmm_(x.reshape(-1, x.shape[-1]), layer.weight.t())
    else:  # a strided `out`, or a permuted residual whose layout the add kept
        out.add_(F.linear(x, layer.weight))
    return out


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
        # Exact shortcuts (see MultiscaleTransformer.shortcuts); off only to run the plain
        # computation, e.g. when counting FLOPs the papers' way.
        self.shortcuts = True
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

    def _pool(self, x: Tensor, grid: Grid, pool: nn.Module | None,
              norm: nn.Module | None) -> tuple[Tensor, Grid]:
        """Pool Q, K or V, given as a (B, L, heads, d) view of a projection.

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

    def _project(self, x: Tensor, parts: slice) -> Tensor:
        """Rows `parts` of the fused Q|K|V projection (0:1 is Q, 1:3 is K and V)."""
        dim = self.num_heads * self.head_dim
        rows = slice(parts.start * dim, parts.stop * dim)
        bias = self.qkv.bias[rows] if self.qkv.bias is not None else None
        return F.linear(x, self.qkv.weight[rows], bias)

    def _query(self, x: Tensor, grid: Grid, class_token_only: bool) -> tuple[Tensor, Grid]:
        batch = x.shape[0]
        if not class_token_only:
            q = self._project(x, slice(0, 1)).view(batch, x.shape[1], self.num_heads, -1)
            return self._pool(q, grid, self.pool_q, self.norm_q)
        # The class token skips pooling, but not the norm after it.
        q = self._project(x[:, :1], slice(0, 1)).view(batch, 1, self.num_heads, -1)
        q_grid = grid
        if self.pool_q is not None:
            kernel, stride = self.q_pooling
            q_grid = conv_output_grid(grid, kernel, stride, tuple(k // 2 for k in kernel))
            if self.norm_q is not None:
                q = self.norm_q(q)
        return q, q_grid

    def _keys_values(self, x: Tensor, grid: Grid) -> tuple[Tensor, Tensor, Grid]:
        """K and V, pooled; projected only where a pooling window reads them (see windows.py)."""
        conv_k, conv_v = self.pool_k, self.pool_v
        if not (self.shortcuts and isinstance(conv_k, nn.Conv3d) and isinstance(conv_v, nn.Conv3d)):
            batch, length, _ = x.shape
            kv = self._project(x, slice(1, 3)).view(batch, length, 2, self.num_heads, -1)
            k, k_grid = self._pool(kv[:, :, 0], grid, conv_k, self.norm_k)
            v, _ = self._pool(kv[:, :, 1], grid, conv_v, self.norm_v)
            return k, v, k_grid
        plan = read_positions(grid, conv_k.kernel_size, conv_k.stride)
        skip = 1 if self.has_cls else 0
        if plan.gathers:  # the kept positions, laid out between (stand-ins for) padding
            index = plan.token_indices(x.device) + skip
            if skip:
                index = torch.cat((index.new_zeros(1), index))
            x = x.index_select(1, index)
        kv = self._project(x, slice(1, 3))  # (B, skip + padded grid, 2 * dim)
        batch, _, channels = kv.shape
        # K and V side by side as the channels of one depthwise conv: one pass, no copies.
        weight = torch.cat((conv_k.weight.repeat(self.num_heads, 1, 1, 1, 1),
                            conv_v.weight.repeat(self.num_heads, 1, 1, 1, 1)))

        def operator(cube: Tensor) -> Tensor:
            if plan.gathers:
                zero_padding(cube, plan)
            return F.conv3d(cube, weight, None, plan.stride, plan.conv_padding, 1, channels)

        tokens, pooled_grid = pool_tokens(kv, plan.padded_grid, operator, self.has_cls)
        tokens = tokens.view(batch, tokens.shape[1], 2, self.num_heads, -1)
        k, v = tokens[:, :, 0], tokens[:, :, 1]
        if self.norm_k is not None:
            k, v = self.norm_k(k), self.norm_v(v)
        return k, v, pooled_grid

    def forward(self, x: Tensor, grid: Grid, class_token_only: bool = False) -> tuple[Tensor, Grid]:
        context, q_grid = self.attend(x, grid, class_token_only)
        return self.proj(context), q_grid

    def attend(self, x: Tensor, grid: Grid, class_token_only: bool = False) -> tuple[Tensor, Grid]:
        """Attention up to (not including) the output projection: (B, Lq, dim), Q's grid.

        x: (B, L, C) normalised tokens. With `class_token_only`, only the class token
        queries (all tokens still give keys and values): the output is its row alone."""
        batch = x.shape[0]
        q, q_grid = self._query(x, grid, class_token_only)
        k, v, k_grid = self._keys_values(x, grid)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, d)

        if self.rel_pos_h is not None and not class_token_only:
            skip = 1 if self.has_cls else 0
            terms = relative_position_terms(q[:, :, skip:], q_grid, k_grid, self.rel_pos_t,
                                            self.rel_pos_h, self.rel_pos_w)
            attention = (attention_with_relative_positions if self.shortcuts
                         else attention_with_full_bias)
            out = attention(q, k, v, terms, k_grid, self.rel_pos_t is not None, skip)
        else:  # no relative positions, or the class token alone (which takes none)
            out = F.scaled_dot_product_attention(q, k, v)

        if self.residual_pool:
            # MViTv2's residual pooling connection: the pooled query is added back.
            if class_token_only:
                out = out + q if self.residual_with_cls else out
            elif self.has_cls and not self.residual_with_cls:
                out = torch.cat((out[:, :, :1], out[:, :, 1:] + q[:, :, 1:]), dim=2)
            else:
                out = out + q
        return out.transpose(1, 2).reshape(batch, out.shape[2], -1), q_grid


class Mlp(nn.Module):
    def __init__(self, dim_in: int, hidden: int, dim_out: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim_out)

    def hidden(self, x: Tensor) -> Tensor:
        return self.act(self.fc1(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.hidden(x))


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

    def forward(self, x: Tensor, grid: Grid, class_token_only: bool = False) -> tuple[Tensor, Grid]:
        """With `class_token_only` the output is the class token's row alone (see
        MultiscaleTransformer.forward_features); every token still feeds its attention."""
        x_norm = self.norm1(x)
        context, new_grid = self.attn.attend(x_norm, grid, class_token_only)
        if class_token_only:  # the class token skips pooling: its skip path is its own row
            x, x_norm = x[:, :1], x_norm[:, :1]
        if self.proj is not None and self.widen_in_attention:
            x = self.proj(x_norm)
        if self.pool_skip is not None and not class_token_only:
            x, _ = pool_tokens(x, grid, self.pool_skip, self.has_cls)
        return self._per_token_rest(x, context), new_grid

    def _per_token_rest(self, skip: Tensor, context: Tensor) -> Tensor:
        """Everything after attention; in token chunks for CPU inference.

        Why chunks: from the attention's output projection on, every step works on each
        token alone, and in early stages the tensors between steps are large (B-16x4's
        stage-1 MLP hidden layer is 38 MB per clip). Chunks of a few thousand tokens stay in
        the CPU's caches between steps and reuse the same memory instead of fresh pages.
        Per token the arithmetic is unchanged. Only without autograd: training keeps one
        pass, as DropPath drops a sample's whole branch, which chunks would break.
        """
        length = skip.shape[1]
        if (skip.device.type != "cpu" or self.training or torch.is_grad_enabled()
                or length <= CPU_TOKEN_CHUNK):
            return self._after_attention(skip, context)
        out = skip.new_empty(skip.shape[0], length, self.mlp.fc2.out_features)
        for start in range(0, length, CPU_TOKEN_CHUNK):
            rows = slice(start, start + CPU_TOKEN_CHUNK)
            self._after_attention(skip[:, rows], context[:, rows], out=out[:, rows])
        return out

    def _after_attention(self, skip: Tensor, context: Tensor, out: Tensor | None = None) -> Tensor:
        if (self.attn.shortcuts and not self.training and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled(skip.device.type)):
            add_branch = linear_onto  # the residual adds ride in the GEMMs
        else:
            def add_branch(residual: Tensor, x: Tensor, layer: nn.Linear,
                           out: Tensor | None = None) -> Tensor:
                # Not in place: under autocast the branch is bf16 and the residual stays fp32.
                return torch.add(residual, self.drop_path(layer(x)), out=out)

        x = add_branch(skip, context, self.attn.proj)
        x_norm = self.norm2(x)
        hidden = self.mlp.hidden(x_norm)
        if self.proj is not None and not self.widen_in_attention:
            x = self.proj(x_norm)
        return add_branch(x, hidden, self.mlp.fc2, out=out)


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
