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

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """auto: CUDA, else Apple's MPS, else the CPU. `cuda:N` picks a GPU."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name}: no CUDA device is available (this torch: "
                             f"{torch.__version__})")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UsageError(f"device {name}: there are {torch.cuda.device_count()} CUDA devices")
        return torch.device(name)
    if name == "mps":
        if not _mps_available():
            raise UsageError("device mps: Apple's Metal (MPS) is not available here")
        return torch.device("mps")
    raise UsageError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on CUDA GPUs that have it (fp16 attention can overflow), fp32 elsewhere."""
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in dtypes:
        raise UsageError(f"unknown precision {name!r}: use auto, fp32, bf16 or fp16")
    return dtypes[name]


def precision_name(dtype: torch.dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
