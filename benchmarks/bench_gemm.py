"""This CPU's matmul rate in fp32 and bf16, at the GEMM shapes B-16x4 runs.

    python benchmarks/bench_gemm.py

The floors quoted in RESULTS.md (the time a forward would take if every FLOP ran at the
peak rate) come from these numbers, so they are measured on the machine the other results
come from rather than assumed. Shapes: tokens x width @ width x 4 width, the MLPs of
B-16x4's four stages at batch 1 (after the first, queries are pooled: 25088, 6272, 1568
and 392 tokens; widths 96, 192, 384 and 768), and one square 2048 GEMM as the best case.
Each is run five times for about 0.2 s after a warm-up; the median is reported.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from machine import cpu_model

SHAPES = ((25088, 96, 384), (6272, 192, 768), (1568, 384, 1536), (392, 768, 3072),
          (2048, 2048, 2048))


def rate(m: int, k: int, n: int, dtype: torch.dtype) -> float:
    """GFLOP/s of `F.linear` on (m, k) tokens with an (n, k) weight and a bias, in `dtype`.

    The model's own call (nn.Linear): its weight is stored (out, in), so the GEMM reads it
    transposed. A plain (m, k) @ (k, n) can take another kernel: with bf16 on a CPU without
    native bf16, 1 GFLOP/s here against 18 for the Linear layout.
    """
    x, w, b = (torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype),
               torch.randn(n, dtype=dtype))
    for _ in range(3):
        F.linear(x, w, b)
    runs = []
    for _ in range(5):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.2:
            F.linear(x, w, b)
            count += 1
        runs.append(2 * m * k * n * count / (time.perf_counter() - started) / 1e9)
    return statistics.median(runs)


def main() -> None:
    print(f"# {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| m x k x n | fp32 GFLOP/s | bf16 GFLOP/s |")
    print("|---|---|---|")
    for m, k, n in SHAPES:
        print(f"| {m} x {k} x {n} | {rate(m, k, n, torch.float32):.0f} | "
              f"{rate(m, k, n, torch.bfloat16):.0f} |", flush=True)


if __name__ == "__main__":
    main()
