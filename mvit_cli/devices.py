"""Which device and number format a run uses, from the names users give.

Names are checked here, not by each front end: `load(device="foo")` and `mvit profile
--device foo` fail with the same one line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    import torch


# Every name a device goes by, for the CLI's parsing as for `load(device=...)`.
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?|mps")


def resolve_device(name: str) -> torch.device:
    """auto: CUDA, else Apple's MPS, else the CPU. `cuda:N` picks a GPU."""
    import torch

    name = str(name).strip().lower()
    if not DEVICE_NAME.fullmatch(name):
        raise UsageError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name}: no CUDA device is available (this torch: "
                             f"{torch.__version__})")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name}: there are {torch.cuda.device_count()} CUDA devices")
        return torch.device(name)
    if not _mps_available():  # name == "mps"
        raise UsageError("device mps: Apple's Metal (MPS) is not available here")
    return torch.device("mps")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# What bf16 must keep, measured on a weights' own clips, before `auto` picks it on a CPU:
# the same top label on 99.5% of clips, and no probability moved by more than 0.01.
BF16_AGREEMENT = 0.995
BF16_SCORE_CHANGE = 0.01


def bf16_passes(record: dict | None) -> bool:
    """Whether a weights' measured bf16 accuracy (their registry entry's `bf16`) clears
    BF16_AGREEMENT and BF16_SCORE_CHANGE."""
    if not record:
        return False
    return (float(record.get("top1_agreement", 0)) >= BF16_AGREEMENT
            and float(record.get("max_score_change", 1)) <= BF16_SCORE_CHANGE)


def resolve_precision(name: str, device: torch.device,
                      bf16_record: dict | None = None) -> torch.dtype:
    """auto: bf16 on CUDA GPUs that have it (fp16 attention can overflow); on a CPU with
    native bf16, bf16 only for weights whose measured bf16 accuracy passes (`bf16_record`,
    see bf16_passes); fp32 elsewhere."""
    import torch

    from .cpu_gates import gates

    name = str(name).strip().lower()
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if device.type == "cpu" and bf16_passes(bf16_record) and gates().native_bf16:
            return torch.bfloat16
        return torch.float32
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise UsageError(f"unknown precision {name!r}: use auto, fp32, bf16 or fp16")
    return dtypes[name]


def precision_name(dtype: torch.dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
