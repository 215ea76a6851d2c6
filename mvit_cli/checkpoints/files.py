"""A checkpoint file as a whole: read, converted to native names, its architecture decided,
and the model it makes; each step once.

Our own safetensors say their architecture in their metadata. Files of other publishers
(torchvision, SlowFast, pytorchvideo, timm) say nothing, but their tensors' names and shapes
decide it: the depth, widths, kernels, position tables and relative-position tables of each
architecture are distinct. So each known architecture of the same depth is tried as a
shape-only model on the meta device (no memory, no arithmetic), and the one whose every
tensor fits is the answer. The file is converted to native names once, before any
architecture is tried: names depend on the layout alone. (Which names the head's outputs carry: `mvit_cli.labels`.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from ..models.architectures import ARCHITECTURES, BUILTIN, get_config, same_architecture
from ..models.config import MViTConfig
from .layouts import Layout, native_state, to_native
from .loading import Checkpoint, expected_shapes, file_config, fit_report, load_model
from .metadata import META_ARCHITECTURE
from .reader import CheckpointError, read_checkpoint


def convert(tensors: dict[str, Tensor], metadata: dict[str, str], source: str) -> Checkpoint:
    """A file's tensors in native names: its layout detected and converted, once."""
    try:
        layout, state = native_state(tensors)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return Checkpoint(state, layout, metadata, source)


def read_weights(path: str | Path) -> Checkpoint:
    """Read a checkpoint file (never running code from it) and convert it to native names."""
    tensors, metadata = read_checkpoint(path)
    return convert(tensors, metadata, str(path))


def _depth(state: dict[str, Tensor]) -> int:
    """Blocks in a state dict of native names (numbered across the network)."""
    return len({m.group(1) for m in map(re.compile(r"^blocks\.(\d+)\.").match, state) if m})


# Config fields that name or describe a network without changing what it computes.
_NOT_THE_NETWORK = dict(name="", paper_params_m=None, paper_gflops=None, dataset="",
                        head_dropout=0.0, drop_path=0.0)


def _fits(state: dict[str, Tensor], cfg: MViTConfig) -> bool:
    head = state.get("head.weight")
    if head is None or head.ndim != 2:
        return False
    return fit_report(state, expected_shapes(replace(cfg, num_classes=head.shape[0]))).fits


def architecture_from_shapes(tensors: dict[str, Tensor], layout: Layout,
                             source: str) -> MViTConfig:
    """The known architecture whose every tensor fits a file's (tensors in `layout`)."""
    try:
        state = to_native(tensors, layout)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return _architecture_of_state(Checkpoint(state, layout, {}, source))


def _architecture_of_state(checkpoint: Checkpoint) -> MViTConfig:
    """The known architecture whose every tensor fits the checkpoint's; one clear error
    otherwise."""
    state, layout, source = checkpoint.state, checkpoint.layout, checkpoint.source
    depth = _depth(state)
    matches = [cfg for cfg in ARCHITECTURES.values() if cfg.depth == depth and _fits(state, cfg)]
    # Entries that differ only in name and head size are one network: keep the one whose
    # head is the file's size, else the first.
    head = checkpoint.num_classes
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


def architecture_of(checkpoint: Checkpoint) -> tuple[MViTConfig, str]:
    """A file's architecture, as its metadata records it, else as its shapes decide; and
    which of the two said it."""
    metadata, source = checkpoint.metadata, checkpoint.source
    recorded = file_config(source, metadata)
    if recorded is not None:
        return recorded, "recorded in the file"
    if metadata.get(META_ARCHITECTURE):
        try:
            return get_config(metadata[META_ARCHITECTURE]), "recorded in the file"
        except ValueError:
            pass  # an architecture this installation does not know: let the shapes decide
    return _architecture_of_state(checkpoint), "by its tensors' shapes"


@dataclass
class LoadedFile:
    model: "torch.nn.Module"
    checkpoint: Checkpoint
    cfg: MViTConfig  # the architecture the file was loaded as (head size aside)
    architecture_from: str  # "as given", "recorded in the file" or "by its tensors' shapes"


def load_file(path: str | Path, architecture: str | MViTConfig | None = None,
              num_classes: int | None = None) -> LoadedFile:
    """The model a checkpoint file makes: read once, converted once, fitted once.

    Without `architecture`, the file decides (its metadata, else its shapes). With a name,
    a file of ours that records another architecture is refused, and one that records the
    same name supplies its exact config (a model trained at other frames or sizes). An
    explicit `MViTConfig` is used as given.
    """
    checkpoint = read_weights(path)
    how = "as given"
    if architecture is None:
        cfg, how = architecture_of(checkpoint)
    else:
        source, metadata = checkpoint.source, checkpoint.metadata
        cfg = architecture if isinstance(architecture, MViTConfig) else get_config(architecture)
        recorded_name = metadata.get(META_ARCHITECTURE)
        if recorded_name and not same_architecture(recorded_name, cfg.name):
            raise CheckpointError(f"{source}: holds weights for {recorded_name}, not {cfg.name}")
        recorded = file_config(source, metadata)
        if (recorded is not None and not isinstance(architecture, MViTConfig)
                and same_architecture(recorded.name, cfg.name)):
            cfg = recorded
    return LoadedFile(load_model(cfg, checkpoint, num_classes), checkpoint, cfg, how)
