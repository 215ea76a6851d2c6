"""Load a checkpoint of any supported layout into a model, strictly, with one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..models.config import MViTConfig
from .layouts import Layout, detect_layout, fit_to_shape, to_native
from .reader import CheckpointError, read_checkpoint

# Metadata keys of our own safetensors files.
META_FORMAT = "format"
META_ARCHITECTURE = "mvit.architecture"
META_LABELS = "mvit.labels"
FORMAT_NAME = "mvit"


@dataclass
class Checkpoint:
    """Weights in native names, with what the file said about itself."""

    state: dict[str, Tensor]
    layout: Layout
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        head = self.state.get("head.weight")
        return int(head.shape[0]) if head is not None else None

    @property
    def architecture(self) -> str | None:
        return self.metadata.get(META_ARCHITECTURE)

    @property
    def labels(self) -> list[str] | None:
        raw = self.metadata.get(META_LABELS)
        return json.loads(raw) if raw else None


def read_weights(path: str | Path, cfg: MViTConfig) -> Checkpoint:
    """Read a checkpoint file and convert it to native names for architecture `cfg`."""
    tensors, metadata = read_checkpoint(path)
    try:
        layout = detect_layout(tensors)
        state = to_native(tensors, layout, cfg)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return Checkpoint(state, layout, metadata)


def _listing(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_into(model: nn.Module, checkpoint: Checkpoint, source: str, arch_name: str) -> None:
    """Copy weights into `model`; any missing, unexpected or mis-shaped key is one clear error."""
    expected = model.state_dict()
    state = {k: fit_to_shape(v, expected[k].shape) if k in expected else v
             for k, v in checkpoint.state.items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if mismatched:
            problems.append(f"{len(mismatched)} with other shapes ({_listing(mismatched, 2)})")
        raise CheckpointError(
            f"{source}: {checkpoint.layout.name} checkpoint does not fit {arch_name}: "
            + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)


def save_native(model: nn.Module, path: str | Path, arch_name: str,
                labels: list[str] | None = None, extra: dict[str, str] | None = None) -> None:
    """Write a model as this project's own safetensors, with its architecture and labels inside."""
    metadata = {META_FORMAT: FORMAT_NAME, META_ARCHITECTURE: arch_name}
    if labels is not None:
        metadata[META_LABELS] = json.dumps(list(labels))
    metadata.update(extra or {})
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
