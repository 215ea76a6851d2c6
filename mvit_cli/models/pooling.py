"""The paper's pooling operator P(.; Theta) on token sequences.

Tokens travel as (B, L, C) with an optional class token first, together with the (T, H, W)
grid the other L-1 tokens form. Pooling lays the grid part out as a channels-last
(B, C, T, H, W) cube, which is the token order itself, pools it, and reads it back; the class
token is never pooled.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import PoolMode, Triple

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


def pool_heads(x: Tensor, grid: Grid, pool: nn.Module | None, norm: nn.Module | None,
               has_cls: bool) -> tuple[Tensor, Grid]:
    """P(.; Theta) applied to each head of Q, K or V, given as (B, L, heads, d), then the
    LayerNorm that follows it in conv pooling.

    A head's channels are pooled with that head's kernel; all heads go side by side as the
    channels of one grouped convolution (each head's kernel repeated), which is the same
    depthwise operator without moving the heads apart.
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
                                      has_cls)
    tokens = tokens.view(batch, -1, heads, dim)
    # The norm sees the class token too, as in the published models.
    return (norm(tokens) if norm is not None else tokens), pooled_grid


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


def skip_pool(stride: Triple) -> nn.Module | None:
    """The residual path's pooling at a Q-pooling block: max pool, kernel s + 1 where s > 1,
    so the skip lands on Q's grid."""
    if stride == (1, 1, 1):
        return None
    kernel = tuple(s + 1 if s > 1 else s for s in stride)
    return nn.MaxPool3d(kernel, stride, tuple(k // 2 for k in kernel))
