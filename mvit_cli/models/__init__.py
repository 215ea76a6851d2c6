"""MViT and MViTv2 models, their configs and the table of named architectures."""

from .architectures import (ARCHITECTURES, UnknownArchitectureError, get_config,
                            register_architecture)
from .config import BlockSetting, MViTConfig, block_settings
from .mvit import MultiscaleTransformer, MViT, MViTv2, compile_for_inference

__all__ = [
    "ARCHITECTURES", "BlockSetting", "MViT", "MViTConfig", "MViTv2", "MultiscaleTransformer",
    "UnknownArchitectureError", "block_settings", "compile_for_inference", "get_config",
    "register_architecture",
]
