"""Attention in bf16 on the CPU as two GEMMs around a softmax, in chunks of queries.

Why: torch's fused CPU attention kernel gains little from bf16. On a Zen 5 with
avx512_bf16 it took 179 ms of a 379 ms B-16x4 forward in bf16 (about 100 to 150 GFLOP/s),
while bf16 GEMMs run at 400 to 750 GFLOP/s there. Written as q.k (a bf16 GEMM), a softmax
and p.v (another bf16 GEMM), the same sixteen calls took 81 ms instead of 185, and the
forward ran 1.37x faster (v2-S-16x4: 1.46x). Chunks of 1024 queries keep each
block of scores near the caches; whole, stage 1's scores are 25,089 x 393, and four times
as many keys in each stage's first block made larger blocks slower again. On a CPU with
AMX, whose GEMMs take a fraction of the time, chunks of 4096 were faster (see
AMX_QUERY_CHUNK). Each chunk's p.v is written into the output in place: concatenating the
chunks took about 2.5 of B-16x4's 150 ms bf16 forward there (1.016x).

What it changes: the keys are scaled by 1/sqrt(d) in bf16, and the scores are rounded to
bf16 before the softmax (which computes in fp32 inside); the fused kernel keeps the scores
in fp32. Measured on trained weights in benchmarks/RESULTS.md ("bf16 attention"). Only bf16
CPU inference on a CPU with bf16 in hardware takes this path (takes_gemm_path).

Except at many keys on a CPU with AMX (fused_is_faster): there torch's fused kernel packs
its bf16 GEMMs for AMX, while oneDNN's q.k GEMM against 1,569 transposed keys ran at a
fifth to a half of its rate at 785. On an Intel Xeon with AMX (2 cores), B-16x4's
1,569-key calls took 11.6 against 42.6 ms (2 x 6,273 queries) and 10.3 against 34.6 ms
(4 x 1,569); at 393 keys the GEMM path stayed ahead (3.3 against 3.8 ms), and on a Zen 4
(avx512_bf16, no AMX) the fused kernel was slower at every shape. The whole bf16 forward
there: B-16x4 1.04-1.10x at batch 1, 1.19x at batch 8, v2-S-16x4 1.08x
(benchmarks/RESULTS.md, "Intel Xeon with AMX").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...cpu_gates import gates

# Queries per chunk: of 512, 1024, 2048 and 4096, 1024 and 2048 were fastest at B-16x4's
# shapes on a Zen 5. On an Intel Xeon with AMX, whose GEMMs take a fifth of the time, a call's
# fixed costs weigh more: 4096 ran B-16x4's bf16 forward 1.02x faster, v2-S-16x4's 1.04x.
QUERY_CHUNK = 1024
AMX_QUERY_CHUNK = 4096
# Keys from which the fused kernel runs instead, on CPUs with AMX: B-16x4 and v2-S-16x4 have
# 393 or 1,569 (and at 785, measured alone, the two paths were within 1.35x either way).
FUSED_FROM_KEYS = 1024


def takes_gemm_path(q: Tensor) -> bool:
    """bf16 inference on a CPU with bf16 in hardware only. Elsewhere the fused kernel is
    exact (fp32), needed (gradients), or not measured against this path: GPUs, and CPUs
    that emulate bf16, where a bf16 GEMM ran at a tenth of fp32's rate."""
    return (q.dtype == torch.bfloat16 and q.device.type == "cpu"
            and not torch.is_grad_enabled() and gates().native_bf16)


def fused_is_faster(k: Tensor) -> bool:
    """Whether torch's fused kernel beats the GEMM path for these keys (see the module's
    docstring): many keys, on a CPU with AMX."""
    return k.shape[-2] >= FUSED_FROM_KEYS and gates().amx


def query_chunk() -> int:
    """Queries per chunk of the GEMM path, on this CPU."""
    return AMX_QUERY_CHUNK if gates().amx else QUERY_CHUNK


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """softmax(q.k * scale) v for (B, heads, L, d) tensors, as F.scaled_dot_product_attention
    computes it (scale defaults to 1/sqrt(d)), through the GEMM path where it pays: in
    bf16 here, in fp32 through oneDNN (fp32_attention)."""
    if not takes_gemm_path(q):
        from .fp32_attention import attend as attend_fp32, takes_onednn_path

        if takes_onednn_path(q, k):
            return attend_fp32(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    if fused_is_faster(k):
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return attend_as_gemms(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)


def attend_as_gemms(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """The GEMM path: q.k and p.v as bf16 GEMMs around a softmax, chunk by chunk."""
    keys = (k if scale == 1.0 else k * scale).transpose(-2, -1)  # the few keys, not the queries
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    chunk = query_chunk()
    for start in range(0, q.shape[-2], chunk):  # each chunk's p.v written in place
        rows = slice(start, start + chunk)
        torch.matmul(torch.softmax(torch.matmul(q[..., rows, :], keys), dim=-1), v,
                     out=out[..., rows, :])
    return out
