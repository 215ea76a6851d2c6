"""Reading, converting and writing MViT checkpoints in every layout users have on disk."""

from .layouts import LAYOUTS, LAYOUTS_BY_NAME, Layout, detect_layout, from_native, to_native
from .loading import Checkpoint, load_into, read_weights, save_native
from .reader import CheckpointError, read_checkpoint, read_metadata

__all__ = [
    "LAYOUTS", "LAYOUTS_BY_NAME", "Checkpoint", "CheckpointError", "Layout", "detect_layout",
    "from_native", "load_into", "read_checkpoint", "read_metadata", "read_weights",
    "save_native", "to_native",
]
