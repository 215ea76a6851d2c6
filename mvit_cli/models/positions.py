"""Where tokens are: MViT v1's absolute embeddings and MViTv2's relative positions.

v1 adds learnt separable embeddings (space + time + class) after patchify. MViTv2 instead adds
to every attention logit a bias from the query's and key's relative offset, decomposed along
t, h and w: bias(q, k) = q . R_t[t(q) - t(k)] + q . R_h[h(q) - h(k)] + q . R_w[w(q) - w(k)]
(Li et al. 2022, eq. 4). Both are stored at the trained grid and resampled for other input
sizes: v1's spatial table bicubically, its temporal one and v2's tables linearly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .pooling import Grid


def resize_table(table: Tensor, length: int) -> Tensor:
    """Linearly resample a (n, d) table to `length` rows (for other input sizes)."""
    if table.shape[0] == length:
        return table
    resized = F.interpolate(table.t().unsqueeze(0), size=length, mode="linear")
    return resized.squeeze(0).t()


def relative_index(q_len: int, k_len: int) -> Tensor:
    """Index into a relative-position table for every (query, key) pair along one axis.

    When Q and K/V were pooled to different lengths, positions are rescaled to the finer of the
    two grids so a query and a key at the same place in the clip get the same distance.
    """
    q_ratio = max(k_len / q_len, 1.0)
    k_ratio = max(q_len / k_len, 1.0)
    dist = (torch.arange(q_len)[:, None] * q_ratio
            - (torch.arange(k_len)[None, :] + (1.0 - k_len)) * k_ratio)
    return dist.long()


def axis_table(table: Tensor, q_len: int, k_len: int) -> Tensor:
    """(q_len, k_len, d): R[offset(q, k)] for one axis, the table resampled to this grid."""
    table = resize_table(table, 2 * max(q_len, k_len) - 1)
    return table[relative_index(q_len, k_len)]


def relative_position_terms(q: Tensor, q_grid: Grid, k_grid: Grid, rel_t: Tensor | None,
                            rel_h: Tensor, rel_w: Tensor) -> Tensor:
    """The decomposed bias's three terms, kept apart: (B, heads, Lq, Tk + Hk + Wk).

    Each term depends on the query and one coordinate of the key, so it is computed per key
    coordinate, not per key. q is (B, heads, Lq, d) over grid tokens only. Image models have
    no temporal table (one frame).
    """
    b, heads, _, dim = q.shape
    q = q.reshape(b, heads, *q_grid, dim)
    terms = [torch.einsum("bnthwc,hkc->bnthwk", q, axis_table(rel_h, q_grid[1], k_grid[1])),
             torch.einsum("bnthwc,wkc->bnthwk", q, axis_table(rel_w, q_grid[2], k_grid[2]))]
    if rel_t is not None:
        terms.insert(0, torch.einsum("bnthwc,tkc->bnthwk", q,
                                     axis_table(rel_t, q_grid[0], k_grid[0])))
    return torch.cat(terms, dim=-1).flatten(2, 4)


def relative_position_bias(terms: Tensor, k_grid: Grid, temporal: bool, skip: int) -> Tensor:
    """The whole (B, heads, Lq, Lk) bias from the terms, with zeros in the class token's row
    and column (it takes no relative position)."""
    sizes = k_grid if temporal else k_grid[1:]
    parts = terms.split(list(sizes), dim=-1)
    bias = (parts[-2][..., :, None] + parts[-1][..., None, :]).unsqueeze(-3)
    if temporal:
        bias = parts[0][..., :, None, None] + bias
    bias = bias.expand(*terms.shape[:-1], *k_grid).flatten(-3)
    return F.pad(bias, (skip, 0, skip, 0))


class PositionalEmbedding(nn.Module):
    """MViT v1's learnt absolute positions, separable: spatial (H*W) + temporal (T) + class."""

    def __init__(self, dim: int, grid: Grid, has_cls: bool) -> None:
        super().__init__()
        self.grid = grid
        t, h, w = grid
        self.spatial = nn.Parameter(torch.zeros(h * w, dim))
        self.temporal = nn.Parameter(torch.zeros(t, dim))
        self.cls = nn.Parameter(torch.zeros(dim)) if has_cls else None
        for param in self.parameters():
            nn.init.trunc_normal_(param, std=0.02)

    def grid_positions(self, grid: Grid) -> Tensor:
        """(T*H*W, dim) positions of the grid tokens, resampled if `grid` is not the trained one."""
        t, h, w = self.grid
        spatial, temporal = self.spatial, self.temporal
        if grid[1:] != (h, w):
            spatial = F.interpolate(spatial.t().reshape(1, -1, h, w), size=grid[1:], mode="bicubic")
            spatial = spatial.flatten(2).squeeze(0).t()
        if grid[0] != t:
            temporal = resize_table(temporal, grid[0])
        return (temporal[:, None, :] + spatial[None, :, :]).flatten(0, 1)

    def forward(self, tokens: Tensor, grid: Grid) -> Tensor:
        """tokens: (B, L, C) grid tokens, class token (if any) first."""
        pos = self.grid_positions(grid)
        if self.cls is not None:
            pos = torch.cat((self.cls[None, :], pos), dim=0)
        return tokens + pos
