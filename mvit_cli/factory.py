"""`build_model`: a name (and weights) to a ready network, for users who want the module.

`mvit_cli.load` is the whole pipeline (labels, protocol, decoding, batches); this is the
lower-level call beneath it, returning just the `nn.Module`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .models.architectures import get_config
from .models.config import MViTConfig

if TYPE_CHECKING:
    from .models.model import MultiscaleTransformer


def build_model(name: str | MViTConfig, weights: str | os.PathLike | None = None,
                num_classes: int | None = None) -> MultiscaleTransformer:
    """Build architecture `name`, optionally load `weights`, and return it in eval mode.

    `name` is an architecture name (see `mvit models`) or an `MViTConfig`. `weights` is a
    registry name (see `mvit weights list`; downloaded and cached on first use) or a
    checkpoint file in any supported layout (torchvision, SlowFast, pytorchvideo, timm or our
    own safetensors). Without `num_classes`, the classifier takes the size of the checkpoint's
    head, so fine-tuned checkpoints load as they are. With weights, `model.labels` holds the
    class names (see `mvit_cli.resolve` for where they come from).
    """
    if weights is None:
        cfg = name if isinstance(name, MViTConfig) else get_config(name, num_classes)
        if num_classes is not None and cfg.num_classes != num_classes:
            from dataclasses import replace

            cfg = replace(cfg, num_classes=num_classes)
        from .models.model import model_from_config

        return model_from_config(cfg).eval()
    from .resolve import resolve

    return resolve(weights, model=name, num_classes=num_classes).model
