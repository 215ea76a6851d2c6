"""The whole network on the fast paths: what `MultiscaleTransformer.forward`,
`forward_features` and `run_blocks` run when `model.fast_paths` is on.

Why a plan of its own: the fast paths are functions of the reference modules' parameters,
so they depend on the reference and never the other way round. The model decides once, at
the top of its forward, which plan runs (models/plans.py); from there on this module calls
the fast form of every step, and the reference modules' own methods only for steps that
have no fast form (the norm and head, the skip's projection, DropPath in training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..pooling import Grid
from . import clip_batches
from .block import block
from .class_token import last_block, reads_class_token_only
from .patch_embedding import embed

if TYPE_CHECKING:
    from ..model import MultiscaleTransformer


def forward(model: MultiscaleTransformer, x: Tensor) -> Tensor:
    """Logits: in CPU inference a batch runs clip by clip (clip_batches), in lanes."""
    if (x.device.type == "cpu" and not torch.is_grad_enabled()
            and not torch.compiler.is_exporting() and x.shape[0] > 1):
        clips = clip_batches.map_clips(
            lambda clip: model.classify_features(forward_features(model, clip)), x.split(1))
        return torch.cat(clips)
    return model.classify_features(forward_features(model, x))


def forward_features(model: MultiscaleTransformer, x: Tensor) -> Tensor:
    """Pooled features, the last block on the class token alone where the head reads it
    alone (class_token)."""
    tokens, grid = embed(model, x)
    if not reads_class_token_only(model):
        return model.pool_head(run_blocks(model, tokens, grid)[0])
    tokens, grid = run_blocks(model, tokens, grid, stop=len(model.blocks) - 1)
    return model.pool_head(last_block(model, tokens, grid)[0])


def run_blocks(model: MultiscaleTransformer, x: Tensor, grid: Grid, start: int = 0,
               stop: int | None = None) -> tuple[Tensor, Grid]:
    """Blocks start..stop-1 (all by default), every token out."""
    for blk in model.blocks[start:stop]:
        x, grid = block(blk, x, grid)
    return x, grid
