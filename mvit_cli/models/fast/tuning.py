"""The fast paths' tuned constants, one row per CPU kind: chunk sizes and thresholds chosen
by measurement, each with the benchmark that chose it.

Why one table: these numbers were each picked by timing the fast paths on one kind of CPU,
and they differ where the CPU does (AMX's GEMMs take so little time that every call's fixed
cost weighs more). Kept apart from the code that reads them, every value a CPU kind gets
is in one place, and the tests shrink them all at once (tests/conftest.py,
`shrink_tuning`) so that small inputs still run every chunked loop and every branch.

The kind comes from the CPU's gates (cpu_gates): "amx" (AMX tiles, which also have bf16 in
hardware), "avx512-bf16" (bf16 in hardware without AMX), "other" (bf16 emulated). The
figures behind each value are in benchmarks/RESULTS.md, "The fast paths' figures", tuned
constants; `benchmarks/bench_fast_paths.py --tune NAME=VALUE` times another value.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...cpu_gates import CpuGates, gates


@dataclass(frozen=True)
class Tuning:
    """One CPU kind's values.

    bf16_query_chunk: queries per chunk of bf16 attention as GEMMs (bf16_attention.py):
        each chunk's scores stay near the caches. Set by
        benchmarks/bench_fast_paths.py --precision bf16 --tune bf16_query_chunk=N.
    fp32_query_chunk: queries per chunk of fp32 attention through oneDNN (fp32_attention.py),
        the bf16 chunk's size without AMX, for the same reason. Set by
        benchmarks/bench_fast_paths.py --tune fp32_query_chunk=N (fp32).
    fused_from_keys: the number of keys from which bf16 attention runs torch's fused kernel
        rather than the GEMMs (attention_kernels.py); None: never. On AMX the fused kernel
        packs its GEMMs for the tiles, and beat the GEMM path at many keys. Set by
        benchmarks/bench_fast_paths.py --precision bf16 --tune fused_from_keys=N (and its
        row bf16_attention), at B-16x4's and v2-S-16x4's numbers of keys.
    fp32_token_chunk, bf16_token_chunk: tokens per chunk of a block's per-token steps
        (chunks.py), in each dtype. Set by benchmarks/bench_fast_paths.py --tune
        fp32_token_chunk=N, and --precision bf16 --tune bf16_token_chunk=N.
    """

    bf16_query_chunk: int
    fp32_query_chunk: int
    fused_from_keys: int | None
    fp32_token_chunk: int
    bf16_token_chunk: int


# Without AMX: bench_fast_paths.py --precision bf16 on a Zen 5 chose the query chunk (of
# the sizes tried, the smallest of the fastest) and the token chunk (half and twice as long
# were both slower); the fused kernel was slower than the GEMMs at every shape measured (a
# Zen 4).
_WITHOUT_AMX = Tuning(bf16_query_chunk=1024, fp32_query_chunk=1024, fused_from_keys=None,
                      fp32_token_chunk=4096, bf16_token_chunk=4096)

TUNING: dict[str, Tuning] = {
    # bench_fast_paths.py --precision bf16 on an Intel Xeon with AMX: longer bf16 query and
    # token chunks (fp32's longer token chunks were slower there), and the fused kernel
    # from a threshold between B-16x4's two numbers of keys.
    "amx": Tuning(bf16_query_chunk=4096, fp32_query_chunk=1024, fused_from_keys=1024,
                  fp32_token_chunk=4096, bf16_token_chunk=8192),
    "avx512-bf16": _WITHOUT_AMX,
    # bf16 is emulated here and takes none of the bf16 paths; fp32's values as above.
    "other": _WITHOUT_AMX,
}


def cpu_kind(answers: CpuGates) -> str:
    """The table's row for a CPU that answers the gates so."""
    if answers.amx:
        return "amx"
    return "avx512-bf16" if answers.native_bf16 else "other"


def tuning() -> Tuning:
    """This CPU's values (as `cpu_gates.forced` or the tests' gates say, where set)."""
    return TUNING[cpu_kind(gates())]
