"""A block's per-token steps in chunks of tokens, in CPU inference.

Why: from the attention's output projection on, every step works on each token alone, and in
early stages the tensors between steps are large (B-16x4's stage-1 MLP hidden layer is 38 MB
per clip). Chunks of a few thousand tokens stay in the CPU's caches between steps and reuse
the same memory instead of fresh pages. Per token the arithmetic is unchanged. Only without
autograd: training keeps one pass, as DropPath drops a sample's whole branch. Not under
export either: in a graph the chunks' writes become scatters (OpenVINO spent 4 ms of a
B-16x4 clip on them), and the graph's compiler plans its own memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ...cpu_gates import gates
from .packed_linear import after_attention

if TYPE_CHECKING:
    from ..block import MultiscaleBlock

CPU_TOKEN_CHUNK = 4096
# In bf16 on a CPU with AMX the GEMMs take so little time that each chunk's fixed costs (a
# oneDNN call is about 25 us, and the chunk's copy into the output) weigh more: chunks twice
# as long ran B-16x4's forward 1.016-1.020x faster on an Intel Xeon with AMX, v2-S-16x4's
# 1.017-1.022x (two alternating runs); in fp32 there they were 1.013x slower.
AMX_BF16_CHUNK_SCALE = 2


def token_chunk(x: Tensor) -> int:
    """Tokens per chunk for x on this CPU."""
    scale = AMX_BF16_CHUNK_SCALE if x.dtype == torch.bfloat16 and gates().amx else 1
    return CPU_TOKEN_CHUNK * scale


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
