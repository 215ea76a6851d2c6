"""Reading, converting and writing MViT checkpoints in every layout users have on disk.

Names are imported on first use (they need torch); `metadata` is plain Python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("load_file", "read_weights"), ".files"),
    **dict.fromkeys(("LAYOUTS", "LAYOUTS_BY_NAME", "Layout", "detect_layout", "from_native",
                     "to_native"), ".layouts"),
    **dict.fromkeys(("Checkpoint", "LoadedFile", "architecture_of", "load_into", "load_model",
                     "save_native"), ".loading"),
    **dict.fromkeys(("CheckpointError", "read_checkpoint", "read_metadata"), ".reader"),
}
__all__ = [
    "LAYOUTS", "LAYOUTS_BY_NAME", "Checkpoint", "CheckpointError", "Layout", "LoadedFile",
    "architecture_of", "detect_layout", "from_native", "load_file", "load_into", "load_model",
    "read_checkpoint", "read_metadata", "read_weights", "save_native", "to_native",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .files import load_file, read_weights
    from .layouts import LAYOUTS, LAYOUTS_BY_NAME, Layout, detect_layout, from_native, to_native
    from .loading import (Checkpoint, LoadedFile, architecture_of, load_into, load_model,
                          save_native)
    from .reader import CheckpointError, read_checkpoint, read_metadata
