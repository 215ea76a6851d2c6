"""Attention in bf16 on the CPU as two GEMMs around a softmax, in chunks of queries.

Why: torch's fused CPU attention kernel gains little from bf16: on a CPU with bf16 in
hardware it ran far below the rate of that CPU's bf16 GEMMs. Written as q.k (a bf16 GEMM),
a softmax and p.v (another bf16 GEMM), the same calls took less than half the time, and
B-16x4's and v2-S-16x4's bf16 forwards ran faster (benchmarks/RESULTS.md, "The fast paths'
figures", bf16 attention as GEMMs; measured on a Zen 5). Chunks of queries keep each block
of scores near the caches (their size: tuning.py); whole, stage 1's scores are one row per
query and token. Each chunk's p.v is written into the output in place, where concatenating
the chunks cost a measurable part of the forward.

What it changes: the keys are scaled by 1/sqrt(d) in bf16, and the scores are rounded to
bf16 before the softmax (which computes in fp32 inside); the fused kernel keeps the scores
in fp32. Measured on trained weights in benchmarks/RESULTS.md ("bf16 attention"). Only bf16
CPU inference on a CPU with bf16 in hardware takes this path (takes_gemm_path), and on a
CPU with AMX not at many keys (attention_kernels.py).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...cpu_gates import gates
from .tuning import tuning


def takes_gemm_path(q: Tensor) -> bool:
    """bf16 inference on a CPU with bf16 in hardware only. Elsewhere the fused kernel is
    exact (fp32), needed (gradients), or not measured against this path: GPUs, and CPUs
    that emulate bf16, where a bf16 GEMM ran far below fp32's rate."""
    return (q.dtype == torch.bfloat16 and q.device.type == "cpu"
            and not torch.is_grad_enabled() and gates().native_bf16)


def attend_as_gemms(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """The GEMM path: q.k and p.v as bf16 GEMMs around a softmax, chunk by chunk."""
    keys = (k if scale == 1.0 else k * scale).transpose(-2, -1)  # the few keys, not the queries
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    chunk = tuning().bf16_query_chunk
    for start in range(0, q.shape[-2], chunk):  # each chunk's p.v written in place
        rows = slice(start, start + chunk)
        torch.matmul(torch.softmax(torch.matmul(q[..., rows, :], keys), dim=-1), v,
                     out=out[..., rows, :])
    return out
