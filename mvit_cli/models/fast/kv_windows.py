"""K and V projected only at the grid positions a strided pooling window reads.

Why this exists: the early stages pool K and V with a stride larger than the kernel (1x8x8
and 1x4x4 strides with 3x3x3 kernels in B-16x4), so along those axes each window reads 3 of
every 8 (or 4) positions. Projecting K and V at the positions no window reads is wasted work:
most of stage 1's K/V projection in B-16x4, and much of the next block's. `ReadPositions`
lists the positions that are read; with the convolution's own zero padding (kernel // 2 at
each end, as in the original) the kept run tiles into windows of exactly the kernel, so the
*same* convolution run with stride equal to its kernel gives exactly the original pooled
values.

Why the convolution pads the zeros: written in place into a gathered grid with stand-ins,
they became scatters and transposes in an exported graph that cost OpenVINO a noticeable
part of a B-16x4 clip. An explicit F.pad cost it almost nothing, but in eager torch its fill
and copy of the whole padded cube cost a measurable part of the bf16 forward on an Intel
Xeon with AMX; the convolution's padding costs neither (benchmarks/RESULTS.md, "The fast
paths' figures", K/V at read positions).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling import Grid, pool_heads, pool_tokens
from .packed_linear import linear

if TYPE_CHECKING:
    from ..attention import PoolingAttention

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class AxisPlan:
    """One axis: the kept positions, and the conv's stride and zero padding over them."""

    kept: tuple[int, ...]
    stride: int
    conv_padding: int
    gathered: bool  # laid out anew (False: the axis as it is, the original conv)


def plan_axis(length: int, kernel: int, stride: int) -> AxisPlan:
    """Windows [s*i - p, s*i - p + k) with p = k // 2, as in the paper's pooling operator.

    When s > k the windows are disjoint and leave gaps: keep only what they cover, so that
    with the same padding p the kept run tiles into windows of exactly k (stride k). The
    first window starts p before the run, as before; the last ends at most p after it
    (s (w - 1) <= length + 2p - k), and zeros the padding adds beyond that are fewer than k,
    so they start no window. Otherwise every position is read: keep the axis as it is.
    """
    padding = kernel // 2
    if stride <= kernel:
        return AxisPlan(tuple(range(length)), stride, padding, gathered=False)
    windows = (length + 2 * padding - kernel) // stride + 1
    covered = [stride * i - padding + j for i in range(windows) for j in range(kernel)]
    kept = tuple(p for p in covered if 0 <= p < length)
    return AxisPlan(kept, kernel, padding, gathered=True)


@dataclass(frozen=True)
class ReadPositions:
    """Per-axis plans for pooling a (T, H, W) grid, and the flat token indices they keep."""

    grid: Triple
    axes: tuple[AxisPlan, AxisPlan, AxisPlan]

    @property
    def gathers(self) -> bool:
        """Whether the tokens are laid out anew (some axis's windows leave gaps). On tiny
        grids that can keep every position and still need the padded layout."""
        return any(axis.gathered for axis in self.axes)

    @property
    def kept_grid(self) -> Triple:
        return tuple(len(axis.kept) for axis in self.axes)  # type: ignore[return-value]

    @property
    def stride(self) -> Triple:
        return tuple(axis.stride for axis in self.axes)  # type: ignore[return-value]

    @property
    def conv_padding(self) -> Triple:
        return tuple(axis.conv_padding for axis in self.axes)  # type: ignore[return-value]

    def token_indices(self, device: torch.device) -> Tensor:
        """Flat grid indices (T, H, W order) of the kept positions, laid out as the kept grid."""
        return _token_indices(self, str(device))


@lru_cache(maxsize=256)
def read_positions(grid: Triple, kernel: Triple, stride: Triple) -> ReadPositions:
    return ReadPositions(grid, tuple(plan_axis(n, k, s)  # type: ignore[arg-type]
                                     for n, k, s in zip(grid, kernel, stride, strict=True)))


@lru_cache(maxsize=256)
def _token_indices(plan: ReadPositions, device: str) -> Tensor:
    _, height, width = plan.grid
    t, h, w = (torch.tensor(axis.kept) for axis in plan.axes)
    flat = t[:, None, None] * (height * width) + h[None, :, None] * width + w[None, None, :]
    return flat.flatten().to(device)


def project(attn: PoolingAttention, x: Tensor, parts: slice) -> Tensor:
    """Rows `parts` of the fused Q|K|V projection (0:1 is Q, 1:3 is K and V)."""
    dim = attn.num_heads * attn.head_dim
    return linear(attn.qkv, x, slice(parts.start * dim, parts.stop * dim))


def keys_values(attn: PoolingAttention, x: Tensor, grid: Grid) -> tuple[Tensor, Tensor, Grid]:
    """Pooled K and V (B, Lk, heads, d), projected only where a pooling window reads them.

    The kept positions are gathered, projected and pooled by the same depthwise
    convolutions with stride = kernel; K and V go side by side as the channels of
    one convolution (one pass, no copies between). Other pooling modes, and grids whose
    windows leave no gaps, are projected whole.
    """
    conv_k, conv_v = attn.pool_k, attn.pool_v
    if not (isinstance(conv_k, nn.Conv3d) and isinstance(conv_v, nn.Conv3d)):
        return keys_values_everywhere(attn, x, grid)
    plan = read_positions(grid, conv_k.kernel_size, conv_k.stride)
    skip = 1 if attn.has_cls else 0
    grid_read = grid
    if plan.gathers:  # the kept positions alone, in grid order
        index = plan.token_indices(x.device) + skip
        if skip:
            index = torch.cat((index.new_zeros(1), index))
        x = x.index_select(1, index)
        grid_read = plan.kept_grid
    kv = project(attn, x, slice(1, 3))  # (B, skip + kept grid, 2 * dim)
    batch, _, channels = kv.shape
    weight = torch.cat((conv_k.weight.repeat(attn.num_heads, 1, 1, 1, 1),
                        conv_v.weight.repeat(attn.num_heads, 1, 1, 1, 1)))

    def operator(cube: Tensor) -> Tensor:
        return F.conv3d(cube, weight, None, plan.stride, plan.conv_padding, 1, channels)

    tokens, pooled_grid = pool_tokens(kv, grid_read, operator, attn.has_cls)
    tokens = tokens.view(batch, tokens.shape[1], 2, attn.num_heads, -1)
    k, v = tokens.unbind(2)
    if attn.norm_k is not None:
        k, v = attn.norm_k(k), attn.norm_v(v)
    return k, v, pooled_grid


def keys_values_everywhere(attn: PoolingAttention, x: Tensor, grid: Grid
                           ) -> tuple[Tensor, Tensor, Grid]:
    """Pooled K and V projected at every position: what this module saves work against."""
    batch, length, _ = x.shape
    kv = project(attn, x, slice(1, 3)).view(batch, length, 2, attn.num_heads, -1)
    k, k_grid = pool_heads(kv[:, :, 0], grid, attn.pool_k, attn.norm_k, attn.has_cls)
    v, _ = pool_heads(kv[:, :, 1], grid, attn.pool_v, attn.norm_v, attn.has_cls)
    return k, v, k_grid
