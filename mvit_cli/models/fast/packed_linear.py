"""Linear layers in CPU inference through oneDNN: weights packed once, and the MLP's GELU
and residual add done on the GEMM's output before it is written.

Why, in bf16: `F.linear` hands oneDNN a plain weight on every call, and the GELU and the add
that follow each read and write the whole activation once more. Packed once
(`mkldnn._reorder_linear_weight`, as inductor's freezing does), a single GEMM ran at a
higher rate, and with the GELU and the residual add fused as oneDNN post-ops B-16x4's and
v2-S-16x4's bf16 forwards ran faster on a Zen 5 with avx512_bf16 (benchmarks/RESULTS.md,
"Packed bf16 linears", and "The fast paths' figures", packed linears).

Why, in fp32: there `F.linear` runs MKL's GEMM, which on AMD CPUs takes a slower code path
than on Intel's: on a Zen 5 (AVX-512) it reached about half oneDNN's rate at B-16x4's shapes,
and the whole fp32 forward ran faster through oneDNN (benchmarks/RESULTS.md, "fp32 through
oneDNN"). Taken where that was measured: AMD CPUs with AVX-512 (cpu_gates: onednn_fp32);
elsewhere MKL stays.

What it changes: in bf16, the fused GELU and add work on the GEMM's fp32 result and round
once to bf16, where the unfused ops round the GEMM's output first; the logits move within
bf16's rounding. In fp32, only the order of the sums: logits within fp32 rounding of fp64
either way. The packed copy of a weight is cached beside it and made again when the weight
changes (its storage or version: `.to()`, `load_state_dict`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary

from ...cpu_gates import gates
from .bf16_attention import takes_gemm_path

if TYPE_CHECKING:
    from ..block import MultiscaleBlock

# weight -> {rows: (alias of the packed storage, its version, packed rows)}; forgotten with
# the weight
_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()  # by identity: tensors' == is elementwise


def takes_packed_path(x: Tensor, weight: Tensor) -> bool:
    """CPU inference with activations and weights in one dtype (under autocast a bf16 input
    meets an fp32 weight, which oneDNN refuses; F.linear casts it): bf16 where the bf16
    attention's GEMMs are taken and torch's oneDNN runs bf16, fp32 where oneDNN's GEMMs
    beat MKL's. Not under torch.compile (asked first, so that Dynamo never traces the
    rest): inductor cannot lower an opaque packed weight, and with frozen weights it packs
    and fuses itself."""
    if torch.compiler.is_compiling() or weight.dtype != x.dtype:
        return False
    if x.dtype == torch.bfloat16:
        return takes_gemm_path(x) and gates().onednn_bf16
    return (x.dtype == torch.float32 and x.device.type == "cpu"
            and not torch.is_grad_enabled() and gates().onednn_fp32)


def linear(layer: nn.Linear, x: Tensor, rows: slice | None = None, *, gelu: bool = False,
           add: Tensor | None = None) -> Tensor:
    """layer(x), of output rows `rows` only if given; then the exact (erf) GELU if `gelu`,
    then `+ add` if given (not both)."""
    weight, bias = layer.weight, layer.bias
    if rows is not None:
        weight = weight[rows]
        bias = bias[rows] if bias is not None else None
    if not takes_packed_path(x, weight):
        out = F.linear(x, weight, bias)
        out = F.gelu(out) if gelu else out
        return out + add if add is not None else out
    packed = packed_weight(layer.weight, rows)
    if add is not None:
        return torch.ops.mkldnn._linear_pointwise.binary(x, add, packed, bias, "add")
    if gelu:
        return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "gelu", [], "none")
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")


def after_attention(blk: MultiscaleBlock, skip: Tensor, attended: Tensor,
                    out: Tensor | None = None) -> Tensor:
    """`blk.after_attention`, with fc1's GELU and the MLP's residual add fused into the
    GEMMs where the packed path is taken (inference: DropPath is the identity there)."""
    exact_gelu = isinstance(blk.mlp.act, nn.GELU) and blk.mlp.act.approximate == "none"
    if blk.training or not exact_gelu or not takes_packed_path(skip, blk.mlp.fc1.weight):
        return blk.after_attention(skip, attended, out)
    x = skip + attended
    x_norm = blk.norm2(x)
    if blk.proj is not None and not blk.widen_in_attention:
        x = linear(blk.proj, x_norm)
    mlp = blk.mlp
    result = linear(mlp.fc2, linear(mlp.fc1, x_norm, gelu=True), add=x)
    return out.copy_(result) if out is not None else result


def packed_weight(weight: Tensor, rows: slice | None = None) -> Tensor:
    """oneDNN's packed layout of `weight` (its rows `rows`), made once per weight value.

    The cache holds an alias of the storage it packed, so that storage cannot be freed and
    its address reused by a new weight while the entry stands: a changed storage pointer
    or version always means new values. Weights made under inference_mode keep no version,
    so they are not cached: oneDNN takes them as they are (the fusions still apply)."""
    part = weight[rows] if rows is not None else weight
    if weight.is_inference():  # no version to watch: oneDNN packs it call by call
        return part.contiguous()
    key = (rows.start, rows.stop) if rows is not None else None
    made = _PACKED.setdefault(weight, {})
    entry = made.get(key)
    if (entry is None or entry[0].data_ptr() != weight.data_ptr()
            or entry[1] != weight._version):
        packed = torch.ops.mkldnn._reorder_linear_weight(part.detach().contiguous(), None)
        made[key] = entry = (weight.detach(), weight._version, packed)
    return entry[2]
