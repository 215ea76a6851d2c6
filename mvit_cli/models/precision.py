"""Inference in bf16: the weights cast once, the head kept in fp32.

Why cast rather than autocast: autocast converts every weight to bf16 again at every call
and runs a chain of casts around each op; a model cast once reads half the bytes and casts
nothing, and ran faster than under autocast on a Zen 4 with avx512_bf16 (benchmarks/RESULTS.md,
"The fast paths' figures", casting for bf16). Inside the body, nothing needs fp32 weights:
torch's CPU LayerNorm and softmax compute bf16 inputs in fp32 inside. On CPUs with bf16 in
hardware the attention runs as bf16 GEMMs (fast/bf16_attention.py): torch's fused kernel
was no faster in bf16 than in fp32 there.

The final norm and the head stay in fp32 because scores are what users read: logits rounded
to bf16's 8 bits of mantissa would move every probability by up to about 1/256 of itself,
for a layer that costs nothing. `MultiscaleTransformer.pool_head` brings the tokens into
the norm's dtype, so either layout of dtypes runs without further casts.
"""

from __future__ import annotations

import torch
from torch import nn


def cast_for_inference(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Cast `model` in place to `dtype`, all but its final norm and head."""
    model.to(dtype)
    model.norm.float()
    model.head.float()
    return model
