"""Attention in bf16 on the CPU as two GEMMs around a softmax, in chunks of queries.

Why: torch's fused CPU attention kernel gains little from bf16. On a Zen 5 with
avx512_bf16 it took 179 ms of a 379 ms B-16x4 forward in bf16 (about 100 to 150 GFLOP/s),
while bf16 GEMMs run at 400 to 750 GFLOP/s there. Written as q.k (a bf16 GEMM), a softmax
and p.v (another bf16 GEMM), the same sixteen calls took 81 ms instead of 185, and the
forward ran 1.37x faster (v2-S-16x4: 1.46x). Chunks of 1024 queries keep each
block of scores near the caches; whole, stage 1's scores are 25,089 x 393, and four times
as many keys in each stage's first block made larger blocks slower again.

What it changes: the keys are scaled by 1/sqrt(d) in bf16, and the scores are rounded to
bf16 before the softmax (which computes in fp32 inside); the fused kernel keeps the scores
in fp32. Measured on trained weights in benchmarks/RESULTS.md ("bf16 attention"). Only bf16
CPU inference on a CPU with bf16 in hardware takes this path (takes_gemm_path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Queries per chunk: of 512, 1024, 2048 and 4096, 1024 and 2048 were fastest at B-16x4's shapes.
QUERY_CHUNK = 1024


def takes_gemm_path(q: Tensor) -> bool:
    """bf16 inference on a CPU with bf16 in hardware only. Elsewhere the fused kernel is
    exact (fp32), needed (gradients), or not measured against this path: GPUs, and CPUs
    that emulate bf16, where a bf16 GEMM ran at a tenth of fp32's rate."""
    return (q.dtype == torch.bfloat16 and q.device.type == "cpu"
            and not torch.is_grad_enabled() and _native_bf16())


def _native_bf16() -> bool:
    """The CPU probe, asked once. Kept in a module global rather than a functools.cache
    because Dynamo reads a set global as a constant but traces into a cached function, and
    the probe breaks its graph (`compile_for_inference` asks once before compiling)."""
    global _NATIVE_BF16
    if _NATIVE_BF16 is None:
        from ...devices import native_bf16_cpu

        _NATIVE_BF16 = native_bf16_cpu()
    return _NATIVE_BF16


_NATIVE_BF16: bool | None = None


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float | None = None) -> Tensor:
    """softmax(q.k * scale) v for (B, heads, L, d) tensors, as F.scaled_dot_product_attention
    computes it (scale defaults to 1/sqrt(d)), through the GEMM path where it pays: in
    bf16 here, in fp32 through oneDNN (fp32_attention)."""
    if not takes_gemm_path(q):
        from .fp32_attention import attend as attend_fp32, takes_onednn_path

        if takes_onednn_path(q, k):
            return attend_fp32(q, k, v, q.shape[-1] ** -0.5 if scale is None else scale)
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    keys = (k if scale == 1.0 else k * scale).transpose(-2, -1)  # the few keys, not the queries
    chunks = [torch.matmul(torch.softmax(torch.matmul(q[..., start:start + QUERY_CHUNK, :], keys),
                                         dim=-1), v)
              for start in range(0, q.shape[-2], QUERY_CHUNK)]
    return torch.cat(chunks, dim=-2) if len(chunks) > 1 else chunks[0]
