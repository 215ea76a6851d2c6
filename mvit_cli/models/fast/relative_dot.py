"""MViTv2's relative positions inside the attention's dot product.

Why: the full (Lq, Lk) bias is large (tens of megabytes per clip in v2-S-16x4's second
stage), built, padded and read back in every block: a large share of that model's CPU time
(benchmarks/RESULTS.md, "The fast paths' figures", relative positions). Appending each
query's decomposed terms to the query, and each key's one-hot coordinates to the key, makes
the extra part of their dot product exactly the bias, so one fused attention kernel with no
mask does it all, for 22 to 36 more dimensions.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from ..pooling import Grid
from .attention_kernels import attend


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


def attention_with_relative_positions(q: Tensor, k: Tensor, v: Tensor, terms: Tensor,
                                      k_grid: Grid, temporal: bool, skip: int) -> Tensor:
    """softmax(q.k / sqrt(d) + bias) v, never building the bias.

    The first `skip` rows (the class token) get zeros: it takes no relative position. Values
    get zero dimensions too (the fused CPU kernel wants equal widths), and the width is
    padded to a multiple of 8 for GPU kernels.
    """
    dim, extra = q.shape[-1], terms.shape[-1]
    pad = -(dim + extra) % 8
    terms = F.pad(terms, (0, pad, skip, 0))
    coordinates = key_coordinates(k_grid, temporal).to(k)
    coordinates = F.pad(coordinates, (0, pad, skip, 0)).expand(*k.shape[:-1], -1)
    q = torch.cat((q * dim ** -0.5, terms), dim=-1)
    k = torch.cat((k, coordinates), dim=-1)
    v = F.pad(v, (0, extra + pad))
    return attend(q, k, v, scale=1.0)[..., :dim]
