"""Max pooling on the token layout itself, in exported graphs (ONNX, OpenVINO).

Why: a graph's MaxPool takes channels-first cubes, so each skip pooling at a stage's first
block became a transpose of the whole stage's tokens, the pool, and a transpose back, which
cost OpenVINO a measurable part of a B-16x4 bf16 clip. Written as padding with -inf and the
maxima of strided slices, one axis at a time, on the (B, T, H, W, C) tokens, the graph needs
no transpose, and the clip ran faster (benchmarks/RESULTS.md, "The fast paths' figures",
max pooling on the token layout). Exact: a maximum is a maximum, in any order. Eager
torch keeps `F.max_pool3d` on the channels-last cube, which is fast there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _triple

from ..pooling import Grid, pool_tokens


def pool_tokens_in_graph(x: Tensor, grid: Grid, pool, has_cls: bool) -> tuple[Tensor, Grid]:
    """`pooling.pool_tokens`, with max pools (no dilation, floor mode) on the token layout
    while exporting; everything else as pool_tokens does it."""
    if not (torch.compiler.is_exporting() and isinstance(pool, nn.MaxPool3d)
            and _triple(pool.dilation) == (1, 1, 1) and not pool.ceil_mode):
        return pool_tokens(x, grid, pool, has_cls)
    batch, _, channels = x.shape
    skip = 1 if has_cls else 0
    cube = max_pool_grid(x[:, skip:].reshape(batch, *grid, channels), _triple(pool.kernel_size),
                         _triple(pool.stride), _triple(pool.padding))
    tokens = cube.reshape(batch, -1, channels)
    if skip:
        tokens = torch.cat((x[:, :1], tokens), dim=1)
    return tokens, (cube.shape[1], cube.shape[2], cube.shape[3])


def max_pool_grid(cube: Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int],
                  padding: tuple[int, int, int]) -> Tensor:
    """F.max_pool3d's numbers for a (B, T, H, W, C) cube, axis by axis."""
    for axis, (k, s, p) in enumerate(zip(kernel, stride, padding, strict=True), start=1):
        if k == 1 and s == 1:
            continue
        length = cube.shape[axis] + 2 * p
        windows = (length - k) // s + 1
        # F.pad lists the last dimension first: C, then W, H, T.
        padded = F.pad(cube, [0, 0] * (4 - axis) + [p, p], value=float("-inf")) if p else cube
        before = (slice(None),) * axis
        parts = [padded[before + (slice(j, j + s * (windows - 1) + 1, s),)] for j in range(k)]
        cube = parts[0]
        for part in parts[1:]:
            cube = torch.maximum(cube, part)
    return cube
