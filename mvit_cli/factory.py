"""`build_model`: the one entry point that turns a name (and weights) into a ready model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .checkpoints.loading import load_into, read_weights
from .checkpoints.reader import CheckpointError
from .models.architectures import get_config, same_architecture
from .models.config import MViTConfig
from .models.mvit import MultiscaleTransformer, MViT, MViTv2


def model_from_config(cfg: MViTConfig) -> MultiscaleTransformer:
    """An untrained model of the given architecture, in train mode (weights random)."""
    return (MViT if cfg.generation == 1 else MViTv2)(cfg)


def _resolve(name: str | MViTConfig, num_classes: int | None) -> MViTConfig:
    if isinstance(name, MViTConfig):
        return name if num_classes is None else replace(name, num_classes=num_classes)
    return get_config(name, num_classes)


def build_model(name: str | MViTConfig, weights: str | Path | None = None,
                num_classes: int | None = None) -> MultiscaleTransformer:
    """Build architecture `name`, optionally load `weights`, and return it in eval mode.

    `name` is an architecture name (see `mvit models`) or an `MViTConfig`. `weights` is a
    registry name (see `mvit weights list`; downloaded and cached on first use) or a
    checkpoint file in any supported layout (torchvision, SlowFast, pytorchvideo, timm or our
    own safetensors). Without `num_classes`, the classifier takes the size of the checkpoint's
    head, so fine-tuned checkpoints load as they are.
    """
    from .labels import labels_for_classes
    from .pretrained.store import resolve_weights

    cfg = _resolve(name, num_classes)
    if weights is None:
        return model_from_config(cfg).eval()
    path, entry = resolve_weights(weights)
    if entry is not None and not same_architecture(entry.architecture, cfg.name):
        raise CheckpointError(f"weights {entry.name!r} are for {entry.architecture}, not {cfg.name}")
    checkpoint = read_weights(path, cfg)
    if checkpoint.architecture and not same_architecture(checkpoint.architecture, cfg.name):
        raise CheckpointError(
            f"{path}: holds weights for {checkpoint.architecture}, not {cfg.name}")
    requested_classes = cfg.num_classes
    cfg = checkpoint.fit_config(cfg)
    if num_classes is not None:  # an explicit head size wins; a mismatch is then an error
        cfg = replace(cfg, num_classes=requested_classes)
    model = model_from_config(cfg)
    load_into(model, checkpoint, str(path), cfg.name)
    if checkpoint.labels:
        model.labels = checkpoint.labels
    elif entry is not None:
        model.labels = labels_for_classes(entry.labels, model.num_classes)
    model.weights_name = entry.name if entry is not None else str(path)
    return model.eval()
