"""MViT and MViTv2 models, their configs and the table of named architectures.

The configs and the architecture table are plain Python; the networks themselves (torch) are
imported on first use, so naming an architecture costs no torch import.

The reference modules (model.py, block.py, attention.py, ...) never import models/fast,
which imports them; the fast plan is registered from above both (mvit_cli/__init__.py, see
models/plans.py) and loaded at the first forward that takes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

from .architectures import (ARCHITECTURES, UnknownArchitectureError, get_config,
                            register_architecture)
from .config import BlockSetting, MViTConfig, block_settings

_NETWORKS = dict.fromkeys(("MViT", "MViTv2", "MultiscaleTransformer", "compile_for_inference",
                          "model_from_config"), ".model")
__getattr__ = lazy_exports(__name__, _NETWORKS)

__all__ = [
    "ARCHITECTURES", "BlockSetting", "MViT", "MViTConfig", "MViTv2", "MultiscaleTransformer",
    "UnknownArchitectureError", "block_settings", "compile_for_inference", "get_config",
    "model_from_config", "register_architecture",
]

if TYPE_CHECKING:
    from .model import (MultiscaleTransformer, MViT, MViTv2, compile_for_inference,
                       model_from_config)

