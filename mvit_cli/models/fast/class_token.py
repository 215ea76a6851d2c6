"""When the head reads the class token alone, the last block computes only its row.

Why: the last block's queries, its output projection, MLP and skip path are per token, and
the head reads one of them; every token still gives keys and values (the class token attends
to all of them). In B-16x4 that skips all but one of the rows of stage 4's last block. The
class token's query: `attention.class_token_query`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from ..pooling import Grid
from .block import block

if TYPE_CHECKING:
    from ..model import MultiscaleTransformer


def reads_class_token_only(model: MultiscaleTransformer) -> bool:
    return model.cfg.head_pool == "cls" and model.cls_token is not None


def last_block(model: MultiscaleTransformer, x: Tensor, grid: Grid) -> tuple[Tensor, Grid]:
    """The model's last block, the class token's row alone: (B, 1, C)."""
    return block(model.blocks[-1], x, grid, class_token_only=True)
