"""A checkpoint file, end to end: read (never running code), converted to native names once,
then fitted to its architecture and built (`loading`). Each step is one call, in that order.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ..models.config import MViTConfig
from .layouts import Layout, native_state, to_native
from .loading import Checkpoint, LoadedFile, architecture_of_state, fit_file
from .reader import CheckpointError, read_checkpoint


def read_weights(path: str | Path) -> Checkpoint:
    """Read a checkpoint file (never running code from it) and convert it to native names."""
    source = str(path)
    tensors, metadata = read_checkpoint(path)
    try:
        layout, state = native_state(tensors)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return Checkpoint(state, layout, metadata, source)


def architecture_from_shapes(tensors: dict[str, Tensor], layout: Layout,
                             source: str) -> MViTConfig:
    """The known architecture whose every tensor fits a file's (tensors in `layout`)."""
    try:
        state = to_native(tensors, layout)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    return architecture_of_state(Checkpoint(state, layout, {}, source))


def load_file(path: str | Path, architecture: str | MViTConfig | None = None,
              num_classes: int | None = None) -> LoadedFile:
    """The model a checkpoint file makes: read once, converted once, fitted once (how the
    architecture is decided: `loading.fit_file`)."""
    return fit_file(read_weights(path), architecture, num_classes)
