"""glibc's malloc asked to keep freed memory for reuse, in a process that runs the model on
the CPU.

Why: every forward allocates its activations and frees them again, in blocks large enough
that glibc gives them back to the kernel (munmap above its adaptive mmap threshold, and a
trim of the heap's top), so the next forward receives every page again as a fresh, zeroed
page: tens of thousands of minor page faults per forward. With the mmap threshold at
glibc's ceiling and the trim threshold far above a forward's activations, a forward faults
about once, runs faster in bf16 and fp32 alike, and peaks at about the same memory
(benchmarks/RESULTS.md, "Page faults"). Both are set: either alone switches off glibc's
adaptive threshold and faulted more than before.

What it costs: memory freed below the peak stays with the process, for reuse, until it
exits. `MVIT_KEEP_FREED_MEMORY=0` leaves malloc as it is. Elsewhere than glibc (macOS,
musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for it on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024  # grow the heap in steps this large, fewer brk calls

_applied: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; whether they are in force."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    if os.environ.get("MVIT_KEEP_FREED_MEMORY", "1").strip() == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no glibc: nothing to set
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD)))
