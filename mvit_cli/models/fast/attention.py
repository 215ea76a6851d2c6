"""Pooling attention with the fast paths: K/V at read positions (kv_windows), relative
positions in the dot product (relative_dot) and the class token's row alone, all exact;
packed projections (packed_linear) and the kernel that pays on this CPU (attention_kernels)
in CPU inference. The reference is `PoolingAttention.forward` in models/attention.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..config import conv_output_grid
from ..pooling import Grid, pool_heads
from ..positions import relative_position_terms
from .attention_kernels import attend
from .kv_windows import keys_values, project
from .packed_linear import linear
from .relative_dot import attention_with_relative_positions

if TYPE_CHECKING:
    from ..attention import PoolingAttention


def attention(attn: PoolingAttention, x: Tensor, grid: Grid,
              class_token_only: bool = False) -> tuple[Tensor, Grid]:
    """The same as the reference; with `class_token_only`, only the class token queries
    (all tokens still give keys and values) and the output is its row alone."""
    batch = x.shape[0]
    q, q_grid = _query(attn, x, grid, class_token_only)
    k, v, k_grid = keys_values(attn, x, grid)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, L, d)
    if attn.rel_pos_h is not None and not class_token_only:
        skip = 1 if attn.has_cls else 0
        terms = relative_position_terms(q[:, :, skip:], q_grid, k_grid, attn.rel_pos_t,
                                        attn.rel_pos_h, attn.rel_pos_w)
        out = attention_with_relative_positions(q, k, v, terms, k_grid,
                                                attn.rel_pos_t is not None, skip)
    else:  # no relative positions, or the class token alone (which takes none)
        out = attend(q, k, v)
    if attn.residual_pool:
        if not class_token_only:
            out = attn.add_pooled_query(out, q)
        elif attn.residual_with_cls:
            out = out + q
    return linear(attn.proj, out.transpose(1, 2).reshape(batch, out.shape[2], -1)), q_grid


def _query(attn: PoolingAttention, x: Tensor, grid: Grid,
           class_token_only: bool) -> tuple[Tensor, Grid]:
    if class_token_only:
        return class_token_query(attn, x, grid)
    q = project(attn, x, slice(0, 1)).view(x.shape[0], x.shape[1], attn.num_heads, -1)
    return pool_heads(q, grid, attn.pool_q, attn.norm_q, attn.has_cls)


def class_token_query(attn: PoolingAttention, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
    """The class token's query alone (class_token.py): it skips pooling, but not the norm
    after it. Q's grid is the one pooling gives the other tokens."""
    q = project(attn, x[:, :1], slice(0, 1)).view(x.shape[0], 1, attn.num_heads, -1)
    q_grid = grid
    if attn.pool_q is not None:
        kernel, stride = attn.q_pooling
        q_grid = conv_output_grid(grid, kernel, stride, tuple(k // 2 for k in kernel))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
    return q, q_grid
