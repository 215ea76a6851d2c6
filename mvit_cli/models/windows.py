"""Which grid positions a strided pooling kernel actually reads.

Why this exists: the early stages pool K and V with a stride larger than the kernel (1x8x8
and 1x4x4 strides with 3x3x3 kernels in B-16x4), so along those axes each window reads 3 of
every 8 (or 4) positions. Projecting K and V at the positions no window reads is wasted work:
86% of stage 1's K/V projection in B-16x4, 44% of the next block's. `ReadPositions` lists the
positions that are read and how to lay them out, between zero padding, so the *same*
convolution run with stride equal to its kernel gives exactly the original pooled values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

Triple = tuple[int, int, int]


@dataclass(frozen=True)
class AxisPlan:
    """One axis: the kept positions, zero padding around them, the conv's stride and padding."""

    kept: tuple[int, ...]
    pad_front: int  # explicit zeros before the kept positions (the conv then pads nothing)
    pad_back: int
    stride: int
    conv_padding: int
    gathered: bool  # laid out anew (False: the axis as it is, the original conv)

    @property
    def length(self) -> int:
        return self.pad_front + len(self.kept) + self.pad_back


def plan_axis(length: int, kernel: int, stride: int) -> AxisPlan:
    """Windows [s*i - p, s*i - p + k) with p = k // 2, as in the paper's pooling operator.

    When s > k the windows are disjoint and leave gaps: keep only what they cover and pad the
    ends explicitly, so the kept run tiles into windows of exactly k (stride k, no padding).
    Otherwise every position is read: keep the axis as it is.
    """
    padding = kernel // 2
    if stride <= kernel:
        return AxisPlan(tuple(range(length)), 0, 0, stride, padding, gathered=False)
    windows = (length + 2 * padding - kernel) // stride + 1
    covered = [stride * i - padding + j for i in range(windows) for j in range(kernel)]
    kept = tuple(p for p in covered if 0 <= p < length)
    front = sum(1 for p in covered[:kernel] if p < 0)
    back = sum(1 for p in covered[-kernel:] if p >= length)
    return AxisPlan(kept, front, back, kernel, 0, gathered=True)


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
    def padded_grid(self) -> Triple:
        return tuple(axis.length for axis in self.axes)  # type: ignore[return-value]

    @property
    def stride(self) -> Triple:
        return tuple(axis.stride for axis in self.axes)  # type: ignore[return-value]

    @property
    def conv_padding(self) -> Triple:
        return tuple(axis.conv_padding for axis in self.axes)  # type: ignore[return-value]

    def token_indices(self, device: torch.device) -> Tensor:
        """Flat grid indices (T, H, W order) laid out as the padded grid: kept positions where
        they go, and index 0 as a stand-in at padding (`zero_padding` then clears those)."""
        return _token_indices(self, str(device))


@lru_cache(maxsize=256)
def read_positions(grid: Triple, kernel: Triple, stride: Triple) -> ReadPositions:
    return ReadPositions(grid, tuple(plan_axis(n, k, s)  # type: ignore[arg-type]
                                     for n, k, s in zip(grid, kernel, stride, strict=True)))


@lru_cache(maxsize=256)
def _token_indices(plan: ReadPositions, device: str) -> Tensor:
    def axis_positions(axis: AxisPlan) -> Tensor:
        return torch.tensor([0] * axis.pad_front + list(axis.kept) + [0] * axis.pad_back)

    _, height, width = plan.grid
    t, h, w = (axis_positions(axis) for axis in plan.axes)
    flat = t[:, None, None] * (height * width) + h[None, :, None] * width + w[None, None, :]
    return flat.flatten().to(device)


def zero_padding(cube: Tensor, plan: ReadPositions) -> Tensor:
    """Clear, in place, the padding of a (B, C, *padded_grid) cube; returns it."""
    for dim, axis in enumerate(plan.axes, start=2):
        if axis.pad_front:
            cube.narrow(dim, 0, axis.pad_front).zero_()
        if axis.pad_back:
            cube.narrow(dim, axis.length - axis.pad_back, axis.pad_back).zero_()
    return cube
