"""Read a checkpoint file into a flat dict of tensors without ever running code from it.

safetensors files are read directly. Pickled files (`.pth`, `.pyth`) go through
`torch.load(weights_only=True)`, whose unpickler builds only tensors, containers and the
globals we allow. SlowFast and pytorchvideo pickles carry a few harmless extras next to the
weights (a yacs config node, numpy scalars in training state): those are allowed by name and
rebuilt as inert stand-ins, never imported from the packages that made them.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from ..errors import MvitError, first_line

# Nested places where training frameworks keep the model's weights, most specific first.
_STATE_DICT_KEYS = ("model_state", "state_dict", "model", "model_ema", "module")


class CheckpointError(MvitError, ValueError):
    """A file that is not a readable checkpoint, or whose weights do not fit; one-line message."""


class _InertConfigNode:
    """Stand-in for yacs/fvcore `CfgNode` pickled inside SlowFast checkpoints: plain data.

    A CfgNode is a dict subclass. The weights-only unpickler fills only real dicts, so the
    stand-in builds an OrderedDict: the config's keys and values arrive, its class does not.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


class _InertObject:
    """Stand-in for other harmless training-state objects: keeps their fields, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _numpy_scalar(dtype: Any, data: bytes = b"") -> float:
    """Rebuild a pickled numpy scalar (epoch counters, metrics) as a plain number."""
    import numpy as np

    return np.frombuffer(data, dtype=dtype)[0].item() if data else 0.0


def _numpy_dtype(name: str, align: bool = False, copy: bool = True) -> Any:
    import numpy as np

    return np.dtype(name)


# Globals seen in the published SlowFast / pytorchvideo pickles, each mapped to an inert
# stand-in. Anything not listed here makes loading fail with a clear error.
ALLOWED_PICKLE_GLOBALS: list[tuple[Any, str]] = [
    (_InertConfigNode, "yacs.config.CfgNode"),
    (_InertConfigNode, "fvcore.common.config.CfgNode"),
    (_InertConfigNode, "slowfast.config.defaults.CfgNode"),
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    (_numpy_scalar, "numpy._core.multiarray.scalar"),
    (_numpy_dtype, "numpy.dtype"),
    (_InertObject, "argparse.Namespace"),
]


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt", device="cpu") as reader:
        metadata = reader.metadata() or {}
        tensors = {key: reader.get_tensor(key) for key in reader.keys()}
    return tensors, metadata


def _read_pickle(path: Path) -> Any:
    with torch.serialization.safe_globals(ALLOWED_PICKLE_GLOBALS):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(9)
    # 8-byte little-endian header length, then the JSON header.
    return len(head) == 9 and head[8:9] == b"{"


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if not isinstance(obj, dict):
        return None
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in _STATE_DICT_KEYS:
        found = _find_state_dict(obj.get(key))
        if found:
            return found
    return None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (tensors, metadata) from a checkpoint file; metadata is empty for pickles.

    Raises CheckpointError with one line for a missing, empty, truncated or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        if _looks_like_safetensors(path):
            return _read_safetensors(path)
    except Exception as exc:  # safetensors reports truncation and bad headers variously
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None
    try:
        obj = _read_pickle(path)
    except pickle.UnpicklingError as exc:
        blocked = _blocked_global(str(exc))
        if blocked:
            raise CheckpointError(f"{path}: refused to load: the pickle asks for {blocked}, "
                                  "which is code, not weights") from None
        raise CheckpointError(f"{path}: not a readable checkpoint: truncated, corrupt or not a "
                              f"checkpoint at all ({_unpickler_reason(str(exc))})") from None
    except Exception as exc:  # noqa: BLE001 - arbitrary bytes fail inside the unpickler anyhow
        raise CheckpointError(f"{path}: not a readable checkpoint: truncated, corrupt or not a "
                              f"checkpoint at all ({type(exc).__name__}: {first_line(exc)})") from None
    state = _find_state_dict(obj)
    if state is None:
        raise CheckpointError(f"{path}: holds no model weights (no tensors under "
                              f"{', '.join(_STATE_DICT_KEYS)} or at the top level)")
    return dict(state), {}


def read_metadata(path: str | Path) -> dict[str, str]:
    """A checkpoint's own metadata without reading its tensors (only our safetensors have it).

    Raises CheckpointError for a missing, empty or unreadable safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if not _looks_like_safetensors(path):
        return {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as reader:
            return reader.metadata() or {}
    except Exception as exc:  # safetensors reports truncation and bad headers variously
        raise CheckpointError(f"{path}: not a readable safetensors file ({first_line(exc)})") from None


def _blocked_global(message: str) -> str | None:
    """The global a weights-only load refused (e.g. posix.system), if that was the failure."""
    match = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", message)
    return match.group(1) if match else None


def _unpickler_reason(message: str) -> str:
    """The unpickler's own complaint, without torch's general advice around it."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return lines[i + 1]
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip()
    return lines[0][:160] if lines else "unpickling failed"
