"""MViT and MViTv2 models, their configs and the table of named architectures.

The configs and the architecture table are plain Python; the networks themselves (torch) are
imported on first use, so naming an architecture costs no torch import.

The package is where the networks meet their exact fast paths: the reference modules
(model.py, block.py, attention.py, ...) never import models/fast, which imports them; the
package registers the fast plan (models/plans.py), loaded at the first forward that takes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

from .architectures import (ARCHITECTURES, UnknownArchitectureError, get_config,
                            register_architecture)
from .config import BlockSetting, MViTConfig, block_settings
from .plans import FastPlan, register_fast_plan

_NETWORKS = dict.fromkeys(("MViT", "MViTv2", "MultiscaleTransformer", "compile_for_inference",
                          "model_from_config"), ".model")
__getattr__ = lazy_exports(__name__, _NETWORKS)


def _load_fast_plan() -> FastPlan:
    from .fast import network

    return network


register_fast_plan(_load_fast_plan)

__all__ = [
    "ARCHITECTURES", "BlockSetting", "MViT", "MViTConfig", "MViTv2", "MultiscaleTransformer",
    "UnknownArchitectureError", "block_settings", "compile_for_inference", "get_config",
    "model_from_config", "register_architecture",
]

if TYPE_CHECKING:
    from .model import (MultiscaleTransformer, MViT, MViTv2, compile_for_inference,
                       model_from_config)

