"""The block with the exact fast paths: fast attention, the class token's row alone, the
per-token steps in chunks on the CPU, and in exported graphs the skip's max pool on the
token layout (graph_pooling). The reference is `MultiscaleBlock.forward` in
models/block.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..pooling import Grid
from .attention import attention
from .chunks import in_chunks
from .graph_pooling import pool_tokens_in_graph

if TYPE_CHECKING:
    from ..block import MultiscaleBlock


def block(blk: MultiscaleBlock, x: Tensor, grid: Grid,
          class_token_only: bool = False) -> tuple[Tensor, Grid]:
    """With `class_token_only` the output is the class token's row alone (see class_token);
    every token still feeds its attention."""
    x_norm = blk.norm1(x)
    attended, q_grid = attention(blk.attn, x_norm, grid, class_token_only)
    if class_token_only:  # the class token skips pooling: its skip path is its own row
        skip = blk.attention_skip(x[:, :1], x_norm[:, :1], None)
    else:
        skip = blk.attention_skip(x, x_norm, grid, pool=pool_tokens_in_graph)
    return in_chunks(blk, skip, attended), q_grid
