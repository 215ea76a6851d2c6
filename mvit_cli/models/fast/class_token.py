"""When the head reads the class token alone, the last block computes only its row.

Why: the last block's queries, its output projection, MLP and skip path are per token, and
the head reads one of them; every token still gives keys and values (the class token attends
to all of them). In B-16x4 that skips 48 of the 49 rows of stage 4's last block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..config import conv_output_grid
from ..pooling import Grid
from .patch_embedding import embed

if TYPE_CHECKING:
    from ..attention import PoolingAttention
    from ..model import MultiscaleTransformer


def class_token_query(attn: PoolingAttention, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
    """The class token's query alone: it skips pooling, but not the norm after it."""
    from .kv_windows import project

    q = project(attn, x[:, :1], slice(0, 1)).view(x.shape[0], 1, attn.num_heads, -1)
    q_grid = grid
    if attn.pool_q is not None:
        kernel, stride = attn.q_pooling
        q_grid = conv_output_grid(grid, kernel, stride, tuple(k // 2 for k in kernel))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
    return q, q_grid


def reads_class_token_only(model: MultiscaleTransformer) -> bool:
    return model.cfg.head_pool == "cls" and model.cls_token is not None


def last_block(model: MultiscaleTransformer, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
    """The model's last block, the class token's row alone: (B, 1, C)."""
    from .block import block

    return block(model.blocks[-1], x, grid, class_token_only=True)


def forward_features(model: MultiscaleTransformer, x: Tensor) -> Tensor:
    """`MultiscaleTransformer.forward_features`, with the last block on the class token."""
    tokens, grid = embed(model, x)
    if not reads_class_token_only(model):
        return model.pool_head(model.run_blocks(tokens, grid)[0])
    tokens, grid = model.run_blocks(tokens, grid, stop=len(model.blocks) - 1)
    return model.pool_head(last_block(model, tokens, grid)[0])
