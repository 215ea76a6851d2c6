"""mvit: classify videos and images with Multiscale Vision Transformers.

The Python API is what the `mvit` command is built on::

    import torch, mvit_cli
    model = mvit_cli.build_model("B-16x4", weights="mvit_v1_b-dbeb1030.pth")
    logits = model(torch.randn(1, 3, 16, 224, 224))   # normalised clip -> (1, 400)
"""

from .checkpoints import CheckpointError
from .factory import build_model, model_from_config
from .models import (ARCHITECTURES, MViTConfig, UnknownArchitectureError, get_config,
                     register_architecture)

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "CheckpointError", "MViTConfig", "UnknownArchitectureError", "build_model",
    "get_config", "model_from_config", "register_architecture", "__version__",
]
