"""Load a checkpoint of any supported layout into a model, strictly, with one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..models.config import MViTConfig, config_to_json
from .layouts import Layout, detect_layout, fit_to_shape, to_native
from .reader import CheckpointError, read_checkpoint

# Metadata keys of our own safetensors files.
META_FORMAT = "format"
META_ARCHITECTURE = "mvit.architecture"
META_LABELS = "mvit.labels"
META_POOL_NORM_EPS = "mvit.pool_norm_eps"
META_CONFIG = "mvit.config"
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

    def fit_config(self, cfg: MViTConfig) -> MViTConfig:
        """The config these weights were trained under: head size and pool-norm eps."""
        changes: dict[str, object] = {}
        if self.num_classes and self.num_classes != cfg.num_classes:
            changes["num_classes"] = self.num_classes
        if META_POOL_NORM_EPS in self.metadata:
            changes["pool_norm_eps"] = float(self.metadata[META_POOL_NORM_EPS])
        elif cfg.generation == 1 and self.layout.v1_pool_norm_eps is not None:
            changes["pool_norm_eps"] = self.layout.v1_pool_norm_eps
        return replace(cfg, **changes) if changes else cfg


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


def save_native(model: nn.Module, path: str | Path, labels: list[str] | None = None,
                extra: dict[str, str] | None = None, half: bool = False) -> None:
    """Write a model as this project's own safetensors, with its architecture and labels inside."""
    cfg: MViTConfig = model.cfg
    metadata = {META_FORMAT: FORMAT_NAME, META_ARCHITECTURE: cfg.name,
                META_CONFIG: config_to_json(cfg)}
    if cfg.pool_norm_eps is not None:
        metadata[META_POOL_NORM_EPS] = repr(cfg.pool_norm_eps)
    if labels is not None:
        metadata[META_LABELS] = json.dumps(list(labels))
    metadata.update(extra or {})
    # half=True stores floats as float16 (half the file; loading casts back to float32).
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=metadata)
