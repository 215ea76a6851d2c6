"""Counting a model's multiply-adds without running it: the one FLOP counter of mvit.

The model is built on PyTorch's meta device, where tensors have shapes but no data, and run
segment by segment (patch embedding, each stage, the head) under `FlopCounterMode`. On meta,
scaled_dot_product_attention decomposes into plain batched matmuls, so attention is counted
(on the CPU its fused kernel has no FLOP formula and would be silently dropped). The papers'
total counts convolutions, Linear layers and attention matmuls; norms (fvcore's 5 per
element) are listed beside it, and softmax and element-wise ops are not counted.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from typing import TYPE_CHECKING, Any, Callable

from .version import __version__
from .fileio import atomic_write_text
from .models.config import MViTConfig
from .paths import mvit_home

if TYPE_CHECKING:
    import torch

    from .models.model import MultiscaleTransformer

# Operators by the category we report them under; the papers' total is the first three.
CATEGORIES = {"convolution": "conv", "addmm": "linear", "mm": "linear", "bmm": "attention",
              "native_layer_norm": "norm"}
PAPER_CATEGORIES = ("conv", "linear", "attention")


def input_shape(cfg: MViTConfig, frames: int | None = None, size: int | None = None,
                batch: int = 1) -> tuple[int, ...]:
    """The input a model of `cfg` takes: (N, 3, T, H, W) for video, (N, 3, H, W) for images."""
    size = size or cfg.size
    if cfg.is_video:
        return (batch, 3, frames or cfg.frames, size, size)
    return (batch, 3, size, size)


def activation_bytes(cfg: MViTConfig, frames: int | None = None, size: int | None = None,
                     batch: int = 1) -> int:
    """About the most memory a forward's activations take at once, from the first stage's
    token grid (the largest): its tokens at full width, times the live copies a block holds
    (input, Q/K/V, the MLP's hidden layer at mlp_ratio x, the output: about 12)."""
    from .models.config import conv_output_grid

    shape = input_shape(cfg, frames, size, batch)
    grid = shape[2:] if cfg.is_video else (1, *shape[2:])
    t, h, w = conv_output_grid(tuple(grid), cfg.patch_kernel, cfg.patch_stride,
                               cfg.patch_padding)
    return batch * t * h * w * cfg.embed_dim * 4 * int(cfg.mlp_ratio + 8)


@dataclass
class Segment:
    """A part of the network that `mvit profile` reports on its own."""

    name: str
    modules: list[torch.nn.Module]
    run: Callable[[Any], Any]
    blocks: int = 0


def segments(model: MultiscaleTransformer) -> list[Segment]:
    """Patch embedding, one segment per stage, and the head, each a function of the last's
    output."""
    cfg = model.cfg
    parts = [Segment("patch embed", [model.patch_embed] + (
        [model.pos_embed] if hasattr(model, "pos_embed") else []), model.embed)]
    start = 0
    for index, depth in enumerate(cfg.depths):
        def stage(state, start=start, stop=start + depth):
            if stop == cfg.depth and model.fast_paths:  # as forward runs it (fast/class_token)
                from .models.fast.class_token import last_block, reads_class_token_only

                if reads_class_token_only(model):
                    return last_block(model, *model.run_blocks(*state, start=start,
                                                               stop=stop - 1))
            return model.run_blocks(*state, start=start, stop=stop)

        parts.append(Segment(f"stage {index + 1}", list(model.blocks[start:start + depth]),
                             stage, blocks=depth))
        start += depth

    def head(state):
        return model.classify_features(model.pool_head(state[0]))

    parts.append(Segment("head", [model.norm, model.head], head))
    return parts


def segment_flops(cfg: MViTConfig, shape: tuple[int, ...]
                  ) -> tuple[list[dict[str, float]], list[tuple[int, int, int]]]:
    """Per-segment G multiply-adds by category, and each segment's output grid."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .models.model import model_from_config

    with torch.device("meta"):
        model = model_from_config(cfg).eval()
        state: Any = torch.empty(shape)
    model.fast_paths = False  # the architecture's multiply-adds, as the papers count them
    norm = torch.ops.aten.native_layer_norm

    def layer_norm_flops(input_shape, *args, **kwargs) -> int:
        numel = 1
        for d in input_shape:
            numel *= d
        return 5 * numel * 2  # fvcore's 5 per element, stored doubled like the others

    per_segment, grids = [], []
    for segment in segments(model):
        with FlopCounterMode(display=False, custom_mapping={norm: layer_norm_flops}) as counter:
            with torch.no_grad():
                state = segment.run(state)
        counts: dict[str, float] = {}
        for op, value in counter.get_flop_counts()["Global"].items():
            category = CATEGORIES.get(op.__name__.split(".")[0], "other")
            # FlopCounterMode counts 2 FLOPs per multiply-add.
            counts[category] = counts.get(category, 0.0) + value / 2 / 1e9
        per_segment.append(counts)
        grids.append(tuple(state[1]) if isinstance(state, tuple) else (1, 1, 1))
    return per_segment, grids


def paper_gflops(counts: dict[str, float]) -> float:
    return sum(v for k, v in counts.items() if k in PAPER_CATEGORIES)


def count_key(cfg: MViTConfig, frames: int | None = None, size: int | None = None,
              torch_version: str | None = None) -> str:
    """What a count depends on: the exact config, the input, and the torch and mvit versions."""
    torch_version = torch_version or metadata.version("torch")
    return hashlib.sha256(f"{cfg!r}|{frames}|{size}|{torch_version}|{__version__}"
                          .encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def shipped_counts() -> dict[str, list[int]]:
    """Counts of the builtin architectures as scripts/make_counts.py computed them, shipped
    so that a first `mvit models` answers at once (tests/test_profile.py recomputes them)."""
    from importlib import resources

    try:
        return json.loads(resources.files("mvit_cli.models").joinpath("counts.json")
                          .read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def count(cfg: MViTConfig, frames: int | None = None, size: int | None = None) -> tuple[int, int]:
    """(parameters, multiply-adds) for one view, remembered on disk across runs.

    A meta-device pass costs a noticeable fraction of a second per architecture, and `mvit
    models` lists all of them, so results are kept in `$MVIT_HOME/counts.json`, keyed by
    `count_key`, and read without importing torch; the builtin architectures' come with the
    package.
    """
    key = count_key(cfg, frames, size)
    shipped = shipped_counts().get(key)
    if isinstance(shipped, list) and len(shipped) == 2:
        return tuple(shipped)  # type: ignore[return-value]
    path = mvit_home() / "counts.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    if isinstance(cache.get(key), list) and len(cache[key]) == 2:
        return tuple(cache[key])  # type: ignore[return-value]
    result = _count_uncached(cfg, frames, size)
    cache[key] = list(result)
    try:
        atomic_write_text(path, json.dumps(cache))
    except OSError:
        pass  # a read-only cache only costs time
    return result


@lru_cache(maxsize=64)
def _count_uncached(cfg: MViTConfig, frames: int | None, size: int | None) -> tuple[int, int]:
    import torch

    from .models.model import model_from_config

    flops, _ = segment_flops(cfg, input_shape(cfg, frames, size))
    with torch.device("meta"):
        params = sum(p.numel() for p in model_from_config(cfg).parameters())
    return params, round(sum(paper_gflops(c) for c in flops) * 1e9)
