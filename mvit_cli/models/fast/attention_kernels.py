"""softmax(q.k * scale) v on the fast paths: the one entry every fast attention calls, which
picks the kernel for the dtype, the CPU and the number of keys.

- fp32 CPU inference where oneDNN's GEMMs beat MKL's: q.k and p.v through oneDNN, head by
  head (fp32_attention.py; only the order of the sums changes).
- bf16 CPU inference on a CPU with bf16 in hardware: two bf16 GEMMs around a softmax
  (bf16_attention.py; the scores are rounded to bf16), except at many keys on a CPU with
  AMX, where torch's fused kernel packs its GEMMs for the tiles and was faster (from
  `fused_from_keys` keys, tuning.py; benchmarks/RESULTS.md, "The fast paths' figures",
  the fused kernel at many keys on AMX; on a Zen 4 without AMX the fused kernel was slower
  at every shape).
- Everywhere else (GPUs, gradients, emulated bf16, MKL's fp32): torch's fused kernel.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from . import bf16_attention, fp32_attention
from .tuning import tuning


def fused_is_faster(k: Tensor) -> bool:
    """Whether torch's fused kernel beats the bf16 GEMM path for these keys: many keys, on
    a CPU with AMX (the only kind whose row sets `fused_from_keys`)."""
    threshold = tuning().fused_from_keys
    return threshold is not None and k.shape[-2] >= threshold


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """softmax(q.k * scale) v for (B, heads, L, d) tensors, as F.scaled_dot_product_attention
    computes it (scale defaults to 1/sqrt(d)), through the kernel that pays here."""
    if not bf16_attention.takes_gemm_path(q):
        if fp32_attention.takes_onednn_path(q, k):
            return fp32_attention.attend(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if fused_is_faster(k):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return bf16_attention.attend_as_gemms(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)
