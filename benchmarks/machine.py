"""What machine a benchmark ran on, named as its results should name it."""

from __future__ import annotations

import os
import platform

# The flags that decide which kernels run: without avx512_bf16 or AMX, bf16 is emulated.
KERNEL_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_model() -> str:
    """The CPU's model name, family and model numbers and kernel-deciding flags (Linux:
    /proc/cpuinfo), and its core count. A VM may call every EPYC just "AMD EPYC"; the
    family and model (25/1 a Zen 3, 26/2 a Zen 5) and the flags tell them apart."""
    name, fields = platform.processor() or platform.machine(), {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in fields:
                    fields[key] = value.strip()
                if not line.strip() and fields:
                    break
    except OSError:
        pass
    name = fields.get("model name", name)
    if "cpu family" in fields:
        flags = set(fields.get("flags", "").split())
        present = ", ".join(flag for flag in KERNEL_FLAGS if flag in flags) or "no AVX2"
        name += f", family {fields['cpu family']} model {fields.get('model', '?')} ({present})"
    return f"{name} ({os.cpu_count()} cores)"
