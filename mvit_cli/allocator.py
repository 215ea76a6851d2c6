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
exits. Elsewhere than glibc (macOS, musl) this does nothing.

Who decides: malloc's settings are the whole process's, so a library must not change them
behind its host's back. The `mvit` command owns its process and asks for them
(`keep_freed_memory_in_cpu_runs`): its CPU runs set them. `mvit_cli.load()` in someone
else's program leaves malloc alone unless the program opts in, by calling
`mvit_cli.keep_freed_memory()` or by setting `MVIT_KEEP_FREED_MEMORY=1`.
`MVIT_KEEP_FREED_MEMORY=0` leaves malloc as it is, in the command and in a library alike.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling for it on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024
TOP_PAD = 64 * 1024 * 1024  # grow the heap in steps this large, fewer brk calls

ENVIRONMENT_VARIABLE = "MVIT_KEEP_FREED_MEMORY"

_applied: bool | None = None  # None: not tried yet
_in_cpu_runs = False  # asked for by the process's owner (the `mvit` command)


def keep_freed_memory() -> bool:
    """Set glibc's thresholds now, once per process; whether they are in force.

    The opt-in for a program that runs models on the CPU and accepts that freed memory
    stays with the process; `MVIT_KEEP_FREED_MEMORY=0` still says no."""
    global _applied
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def keep_freed_memory_in_cpu_runs() -> None:
    """Have every later run of a model on the CPU in this process set the thresholds: what
    the `mvit` command asks, as the owner of its process. Nothing is set until a run."""
    global _in_cpu_runs
    _in_cpu_runs = True


def asked_in_cpu_runs() -> bool:
    """Whether CPU runs here set the thresholds: the command asked, or the environment."""
    return _in_cpu_runs or _environment() == "1"


def before_cpu_run() -> bool:
    """Called where a model is placed on the CPU: set the thresholds if this process asked
    for them (never merely because a library was used); whether they are in force."""
    return keep_freed_memory() if asked_in_cpu_runs() else bool(_applied)


def _environment() -> str:
    return os.environ.get(ENVIRONMENT_VARIABLE, "").strip()


def _set_thresholds() -> bool:
    if _environment() == "0":
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
