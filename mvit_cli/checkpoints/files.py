"""A checkpoint file as a whole: which architecture it is for, and the model it makes.

Our own safetensors say their architecture in their metadata. Files of other publishers
(torchvision, SlowFast, pytorchvideo, timm) say nothing, but their tensors' names and shapes
decide it: the depth, widths, kernels, position tables and relative-position tables of each
architecture are distinct. So each known architecture of the same depth is tried as a
shape-only model on the meta device (no memory, no arithmetic), and the one whose every
tensor fits is the answer. (Which names the head's outputs carry: `mvit_cli.labels`.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ..models.architectures import ARCHITECTURES, BUILTIN, get_config, same_architecture
from ..models.config import MViTConfig
from .layouts import Layout, detect_layout, to_native
from .loading import Checkpoint, convert, expected_shapes, file_config, fit_report, load_model
from .metadata import META_ARCHITECTURE
from .reader import CheckpointError, read_checkpoint

def _depth(tensors: dict[str, Tensor]) -> int:
    """Blocks in a file of any layout: numbered across the network, or within stages (timm)."""
    staged = {m.groups() for m in map(re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.").match,
                                      tensors) if m}
    if staged:
        return len(staged)
    return len({m.group(1) for m in map(re.compile(r"^blocks\.(\d+)\.").match, tensors) if m})


# Config fields that name or describe a network without changing what it computes.
_NOT_THE_NETWORK = dict(name="", paper_params_m=None, paper_gflops=None, dataset="",
                        head_dropout=0.0, drop_path=0.0)


def _head_size(tensors: dict[str, Tensor], layout: Layout, cfg: MViTConfig) -> int | None:
    head = to_native(tensors, layout, cfg).get("head.weight")
    return int(head.shape[0]) if head is not None else None


def _fits(tensors: dict[str, Tensor], layout: Layout, cfg: MViTConfig) -> bool:
    try:
        state = to_native(tensors, layout, cfg)
    except (ValueError, RuntimeError, IndexError):
        return False
    head = state.get("head.weight")
    if head is None or head.ndim != 2:
        return False
    return fit_report(state, expected_shapes(replace(cfg, num_classes=head.shape[0]))).fits


def architecture_from_shapes(tensors: dict[str, Tensor], layout: Layout,
                             source: str) -> MViTConfig:
    """The known architecture whose every tensor fits the file's; one clear error otherwise."""
    depth = _depth(tensors)
    matches = [cfg for cfg in ARCHITECTURES.values()
               if cfg.depth == depth and _fits(tensors, layout, cfg)]
    # Entries that differ only in name and head size are one network: keep the one whose
    # head is the file's size, else the first.
    head = _head_size(tensors, layout, matches[0]) if matches else None
    distinct: dict[MViTConfig, MViTConfig] = {}
    for cfg in sorted(matches, key=lambda c: c.num_classes != head):
        distinct.setdefault(replace(cfg, num_classes=0, **_NOT_THE_NETWORK), cfg)
    matches = list(distinct.values())
    builtin = [cfg for cfg in matches if cfg.name in BUILTIN]
    if len(matches) == 1:
        return matches[0]
    if len(builtin) == 1:  # a registered variant with the same shapes: the builtin wins
        return builtin[0]
    if not matches:
        raise CheckpointError(f"{source}: its tensors ({layout.name} layout, {depth} blocks) "
                              "fit none of the known architectures (mvit models); name one "
                              "with --model")
    names = ", ".join(cfg.name for cfg in matches)
    raise CheckpointError(f"{source}: its tensors fit several architectures ({names}); "
                          "choose one with --model")


def architecture_of(tensors: dict[str, Tensor], metadata: dict[str, str], layout: Layout,
                    source: str) -> tuple[MViTConfig, str]:
    """A file's architecture, as its metadata records it, else as its shapes decide; and
    which of the two said it."""
    recorded = file_config(source, metadata)
    if recorded is not None:
        return recorded, "recorded in the file"
    if metadata.get(META_ARCHITECTURE):
        try:
            return get_config(metadata[META_ARCHITECTURE]), "recorded in the file"
        except ValueError:
            pass  # an architecture this installation does not know: let the shapes decide
    return architecture_from_shapes(tensors, layout, source), "by its tensors' shapes"


@dataclass
class LoadedFile:
    model: "torch.nn.Module"
    checkpoint: Checkpoint
    cfg: MViTConfig  # the architecture the file was loaded as (head size aside)
    architecture_from: str  # "as given", "recorded in the file" or "by its tensors' shapes"


def load_file(path: str | Path, architecture: str | MViTConfig | None = None,
              num_classes: int | None = None) -> LoadedFile:
    """The model a checkpoint file makes, read once.

    Without `architecture`, the file decides (its metadata, else its shapes). With a name,
    a file of ours that records another architecture is refused, and one that records the
    same name supplies its exact config (a model trained at other frames or sizes). An
    explicit `MViTConfig` is used as given.
    """
    source = str(path)
    tensors, metadata = read_checkpoint(path)
    try:
        layout = detect_layout(tensors)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    how = "as given"
    if architecture is None:
        cfg, how = architecture_of(tensors, metadata, layout, source)
    else:
        cfg = architecture if isinstance(architecture, MViTConfig) else get_config(architecture)
        recorded_name = metadata.get(META_ARCHITECTURE)
        if recorded_name and not same_architecture(recorded_name, cfg.name):
            raise CheckpointError(f"{source}: holds weights for {recorded_name}, not {cfg.name}")
        recorded = file_config(source, metadata)
        if (recorded is not None and not isinstance(architecture, MViTConfig)
                and same_architecture(recorded.name, cfg.name)):
            cfg = recorded
    checkpoint = convert(tensors, metadata, cfg, source)
    return LoadedFile(load_model(cfg, checkpoint, num_classes), checkpoint, cfg, how)
