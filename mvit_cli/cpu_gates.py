"""What this CPU can do, asked in one place: the gates that choose mvit's CPU paths.

Why one place: which exact fast path a forward takes, and whether `auto` picks bf16, depend
on the CPU (bf16 in hardware, AMX tiles, whether oneDNN's fp32 GEMMs beat MKL's). Asked where
each path is chosen, a test suite run on one CPU kind checks only that kind's paths: on an AMD
CPU with AVX-512 the fp32 linears all go through oneDNN, and the reference block's own code
never runs. Every gate reads `gates()`, and `forced(...)` sets any of them for the length of
a `with`, so the tests run every path on any CPU.

Each probe is asked once per process and kept in a module global rather than behind
functools.cache: Dynamo reads a set global as a constant, but traces into a cached function,
and the probes break its graph (`compile_for_inference` asks before compiling).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator


@dataclass(frozen=True)
class CpuGates:
    """The answers the CPU paths are chosen by.

    native_bf16: bf16 in hardware (AVX512-BF16 or AMX). Elsewhere torch emulates bf16, far
        slower than fp32 (measured on a Zen 3: benchmarks/RESULTS.md): bf16 attention as
        GEMMs, the packed bf16 linears and `auto` choosing bf16 all need it.
    amx: AMX tiles (Intel Sapphire Rapids and later), where torch's fused attention packs its
        bf16 GEMMs for AMX and each oneDNN call's fixed cost weighs more: the fused kernel at
        many keys, and longer chunks (models/fast/tuning.py: AMX's row).
    onednn_fp32: oneDNN's fp32 GEMMs beat MKL's, torch's default for fp32 linears: on AMD CPUs
        with AVX-512, where MKL takes a slower code path than on Intel's (benchmarks/RESULTS.md,
        "fp32 through oneDNN"). Not measured elsewhere, so elsewhere no. Packed fp32 linears
        and fp32 attention through oneDNN (packed_linear.py, fp32_attention.py).
    onednn_bf16: torch's oneDNN runs bf16 GEMMs here (packed bf16 linears).
    """

    native_bf16: bool
    amx: bool
    onednn_fp32: bool
    onednn_bf16: bool


_GATES: CpuGates | None = None


def gates() -> CpuGates:
    """This CPU's gates: probed on first use, or as `forced` set them."""
    global _GATES
    if _GATES is None:
        _GATES = probe()
    return _GATES


@contextmanager
def forced(**values: bool) -> Iterator[CpuGates]:
    """Take the CPU paths as if this CPU answered `values` (the other gates as probed), for
    tests. A path forced on where the CPU lacks its instructions runs emulated (bf16 on a CPU
    without it: the same numbers, slower) or fails (oneDNN's bf16 GEMMs without AVX-512)."""
    global _GATES
    before = gates()
    _GATES = replace(before, **values)
    try:
        yield _GATES
    finally:
        _GATES = before


def probe() -> CpuGates:
    """Ask the CPU and torch's build. The only function here that does."""
    import torch

    cpu = torch.cpu
    amx = bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    native_bf16 = amx or bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    packing = _onednn_packing_ops()
    return CpuGates(
        native_bf16=native_bf16,
        amx=amx,
        onednn_fp32=packing and onednn_fp32_faster(_cpu_vendor(),
                                                   torch.backends.cpu.get_cpu_capability()),
        onednn_bf16=packing and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    )


def onednn_fp32_faster(vendor: str, capability: str) -> bool:
    """The rule for `onednn_fp32`, from /proc/cpuinfo's vendor_id and torch's CPU capability
    ("AVX512", "AVX2", ...): measured faster on AMD with AVX-512 only (a Zen 5, at B-16x4's
    shapes: benchmarks/RESULTS.md, "fp32 through oneDNN")."""
    return vendor == "AuthenticAMD" and capability.startswith("AVX512")


def _onednn_packing_ops() -> bool:
    """Whether this torch has the oneDNN ops that pack a weight once and run the GEMM with
    fused post-ops (models/fast/packed_linear.py)."""
    import torch

    ops = torch.ops.mkldnn
    return hasattr(ops, "_linear_pointwise") and hasattr(ops, "_reorder_linear_weight")


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return ""
