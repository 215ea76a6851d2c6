"""Attention in fp32 CPU inference as oneDNN GEMMs around a softmax, head by head, in
chunks of queries, where oneDNN's fp32 GEMMs beat MKL's (AMD CPUs with AVX-512).

Why: torch's fused CPU attention kernel took a large share of B-16x4's fp32 forward once
its linears ran through oneDNN (packed_linear). Written as q.k and p.v through oneDNN's
inner product (the keys, and the values transposed, taken as the weights), the same shapes
ran faster on a Zen 5 (benchmarks/RESULTS.md, "The fast paths' figures", fp32 attention
through oneDNN); fp32 bmm, which runs on MKL there, was slower than the fused kernel. The
softmax is torch's, in fp32: only the order of the sums changes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .packed_linear import takes_packed_path
from .tuning import tuning


def takes_onednn_path(q: Tensor, k: Tensor) -> bool:
    return q.dtype == torch.float32 and takes_packed_path(q, k)


def attend(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """softmax(q.k * scale) v for (B, heads, L, d) fp32 tensors."""
    inner = torch.ops.mkldnn._linear_pointwise
    batch, heads, length, _ = q.shape
    out = q.new_empty(batch, heads, length, v.shape[-1])
    chunk = tuning().fp32_query_chunk
    for b in range(batch):
        for h in range(heads):
            keys = k[b, h] if scale == 1.0 else k[b, h] * scale  # (Lk, d): the weight of q.k
            keys, values_t = keys.contiguous(), v[b, h].t().contiguous()  # (d, Lk) for p.v
            queries = q[b, h]
            for start in range(0, length, chunk):
                rows = slice(start, start + chunk)
                scores = inner(queries[rows], keys, None, "none", [], "")
                out[b, h, rows] = inner(torch.softmax(scores, dim=-1), values_t, None,
                                        "none", [], "")
    return out
