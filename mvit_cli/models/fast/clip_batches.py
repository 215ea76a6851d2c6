"""A batch of clips run clip by clip, in CPU inference.

Why: a 16x224 clip's stage-1 activations are ~10 MB, which the CPU's cache holds; a batch of
8 makes them ~80 MB, and every norm, GELU and copy then waits on main memory (measured 22%
slower per clip for B-16x4 at batch 8). Clips are independent, so one at a time gives the
same logits faster. Not under ONNX export, where a Python loop over the batch would fix the
graph's batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .class_token import forward_features

if TYPE_CHECKING:
    from ..model import MultiscaleTransformer


def forward(model: MultiscaleTransformer, x: Tensor) -> Tensor:
    if (x.device.type == "cpu" and not torch.is_grad_enabled()
            and not torch.compiler.is_exporting() and x.shape[0] > 1):
        return torch.cat([model.classify_features(forward_features(model, clip))
                          for clip in x.split(1)])
    return model.classify_features(forward_features(model, x))
