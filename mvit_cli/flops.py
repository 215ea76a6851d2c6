"""Counting a model's multiply-adds without running it.

The model is built on PyTorch's meta device, where tensors have shapes but no data, and run
under `FlopCounterMode`. On meta, scaled_dot_product_attention decomposes into plain batched
matmuls, so attention is counted (on the CPU its fused kernel has no FLOP formula and would
be silently dropped). Counted: convolutions, Linear layers and attention matmuls, the
convention of the MViT papers' tables; norms, softmax and element-wise ops are not.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import torch
from torch.utils.flop_counter import FlopCounterMode

from .models.config import MViTConfig
from .paths import mvit_home


def input_shape(cfg: MViTConfig, frames: int | None = None, size: int | None = None,
                batch: int = 1) -> tuple[int, ...]:
    """The input a model of `cfg` takes: (N, 3, T, H, W) for video, (N, 3, H, W) for images."""
    size = size or cfg.size
    if cfg.is_video:
        return (batch, 3, frames or cfg.frames, size, size)
    return (batch, 3, size, size)


def count(cfg: MViTConfig, frames: int | None = None, size: int | None = None) -> tuple[int, int]:
    """(parameters, multiply-adds) for one view, remembered on disk across runs.

    A meta-device pass takes 0.2 to 1 s per architecture; `mvit models` lists all of them, so
    results are kept in `$MVIT_HOME/counts.json`, keyed by the exact config and torch version.
    """
    key = hashlib.sha256(f"{cfg!r}|{frames}|{size}|{torch.__version__}".encode()).hexdigest()[:16]
    path = mvit_home() / "counts.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return tuple(cache[key])  # type: ignore[return-value]
    result = _count_uncached(cfg, frames, size)
    cache[key] = list(result)
    try:
        tmp = path.with_suffix(f".{key}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs time
    return result


@lru_cache(maxsize=64)
def _count_uncached(cfg: MViTConfig, frames: int | None, size: int | None) -> tuple[int, int]:
    from .factory import model_from_config

    with torch.device("meta"):
        model = model_from_config(cfg).eval()
        clip = torch.empty(input_shape(cfg, frames, size))
    model.shortcuts = False  # the architecture's multiply-adds, as the papers count them
    with FlopCounterMode(display=False) as counter:
        model(clip)
    params = sum(p.numel() for p in model.parameters())
    # FlopCounterMode counts 2 FLOPs per multiply-add.
    return params, counter.get_total_flops() // 2
