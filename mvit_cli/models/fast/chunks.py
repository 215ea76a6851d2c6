"""A block's per-token steps in chunks of tokens, in CPU inference.

Why: from the attention's output projection on, every step works on each token alone, and in
early stages the tensors between steps are large (B-16x4's stage-1 MLP hidden layer holds
four times the stage's width per token). Chunks of a few thousand tokens stay in the CPU's
caches between steps and reuse the same memory instead of fresh pages. Per token the
arithmetic is unchanged. Only without autograd: training keeps one pass, as DropPath drops a
sample's whole branch. Not under export either: in a graph the chunks' writes become
scatters, which OpenVINO spent measurable time on, and the graph's compiler plans its own
memory. The chunk's length per CPU kind and dtype: tuning.py (longer in bf16 on AMX, where
each chunk's fixed costs weigh more against GEMMs that take little time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .packed_linear import after_attention
from .tuning import tuning

if TYPE_CHECKING:
    from ..block import MultiscaleBlock


def token_chunk(x: Tensor) -> int:
    """Tokens per chunk for x on this CPU."""
    values = tuning()
    return values.bf16_token_chunk if x.dtype == torch.bfloat16 else values.fp32_token_chunk


def in_chunks(blk: MultiscaleBlock, skip: Tensor, attended: Tensor) -> Tensor:
    """`blk.after_attention(skip, attended)`, chunk by chunk where that pays (its fused
    form where packed_linear is taken)."""
    length, chunk = skip.shape[1], token_chunk(skip)
    if (skip.device.type != "cpu" or blk.training or torch.is_grad_enabled()
            or length <= chunk or torch.compiler.is_exporting()):
        return after_attention(blk, skip, attended)
    out = skip.new_empty(skip.shape[0], length, blk.mlp.fc2.out_features)
    for start in range(0, length, chunk):
        rows = slice(start, start + chunk)
        after_attention(blk, skip[:, rows], attended[:, rows], out=out[:, rows])
    return out
