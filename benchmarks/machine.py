"""What machine a benchmark ran on, named as its results should name it."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), and its core count."""
    import os

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"
