"""The MViT networks: patchify, positions, multiscale blocks, a norm and a linear head.

MViT v1 (Fan et al. 2021) marks token positions with learnt absolute embeddings. MViTv2
(Li et al. 2022) drops them for decomposed relative positions inside attention, adds the
pooled query back to the attention output and widens inside attention; all of that is
carried by the config, so the generations differ only in how tokens get their positions.

Each entry point (`forward`, `forward_features`, `run_blocks`) decides its plan once, at its
top: the exact fast paths (models/fast, through models/plans.py) while `fast_paths` is on,
else the reference code below, whose multiply-adds are the ones the papers count.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor, nn

from .block import MultiscaleBlock
from .config import MViTConfig, block_settings
from .plans import fast_plan
from .pooling import Grid
from .positions import PositionalEmbedding


class MultiscaleTransformer(nn.Module):
    """Patchify, class token, multiscale blocks, final norm and a linear classifier."""

    # Class names in head order, when built with weights that name them.
    labels: list[str] | None = None

    def __init__(self, cfg: MViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        settings = block_settings(cfg)
        self.patch_embed = nn.Conv3d(3, cfg.embed_dim, cfg.patch_kernel, cfg.patch_stride,
                                     cfg.patch_padding)
        self.cls_token = nn.Parameter(torch.zeros(cfg.embed_dim)) if cfg.cls_token else None
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        # Stochastic depth grows linearly with depth (training only).
        rates = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            MultiscaleBlock(setting, cfg, rate) for setting, rate in zip(settings, rates, strict=True))
        width = settings[-1].dim_out
        self.norm = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.head_dropout = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(width, cfg.num_classes)
        self._fast_paths = True
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def num_classes(self) -> int:
        return self.head.out_features

    @property
    def fast_paths(self) -> bool:
        """Whether forward takes the exact fast paths (models/fast; on by default): the same
        logits with less work. Off runs the reference path, whose multiply-adds are the ones
        the papers count."""
        return self._fast_paths

    @fast_paths.setter
    def fast_paths(self, enabled: bool) -> None:
        self._fast_paths = enabled

    def add_positions(self, tokens: Tensor, grid: Grid) -> Tensor:
        """Hook for a generation's absolute positions; tokens include the class token."""
        return tokens

    def absolute_positions(self, grid: Grid) -> tuple[Tensor | None, Tensor] | None:
        """What `add_positions` adds, apart: (the class token's position, the grid tokens'
        (L, C) positions), or None where positions live in attention. For the fast
        patch embedding, which writes tokens and positions into one buffer."""
        return None

    @staticmethod
    def as_clips(x: Tensor) -> Tensor:
        """(N, 3, T, H, W) clips as they are, (N, 3, H, W) images as clips of one frame."""
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.ndim != 5 or x.shape[1] != 3:
            raise ValueError("expected input of shape (N, 3, T, H, W) or (N, 3, H, W), got "
                             f"{tuple(x.shape)}")
        return x

    def embed(self, x: Tensor) -> tuple[Tensor, Grid]:
        """Pixels -> tokens: patchify, class token, positions. Returns (tokens, grid)."""
        x = self.patch_embed(self.as_clips(x))
        grid: Grid = (x.shape[2], x.shape[3], x.shape[4])
        x = x.flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], 1, -1), x), dim=1)
        return self.add_positions(x, grid), grid

    def run_blocks(self, x: Tensor, grid: Grid, start: int = 0,
                   stop: int | None = None) -> tuple[Tensor, Grid]:
        """Blocks start..stop-1 (all by default), every token out."""
        if self.fast_paths:
            return fast_plan().run_blocks(self, x, grid, start, stop)
        for block in self.blocks[start:stop]:
            x, grid = block(x, grid)
        return x, grid

    def pool_head(self, x: Tensor) -> Tensor:
        """Final tokens -> one normalised feature vector: the class token's, or the mean."""
        dtype = self.norm.weight.dtype  # fp32 after a bf16 body (models/precision.py)
        mode = self.cfg.head_pool
        if mode == "cls":
            return self.norm(x[:, 0].to(dtype))
        tokens = (x[:, 1:] if self.cls_token is not None else x).to(dtype)
        if mode == "mean_then_norm":
            return self.norm(tokens.mean(dim=1))
        return self.norm(tokens).mean(dim=1)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, T, H, W) or, for image models, (N, 3, H, W) -> pooled features (N, width)."""
        if self.fast_paths:
            return fast_plan().forward_features(self, x)
        return self.pool_head(self.run_blocks(*self.embed(x))[0])

    def classify_features(self, features: Tensor) -> Tensor:
        """Pooled features -> logits."""
        return self.head(self.head_dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        if self.fast_paths:
            return fast_plan().forward(self, x)
        return self.classify_features(self.forward_features(x))


class MViT(MultiscaleTransformer):
    """MViT v1: absolute positional embeddings added after patchify."""

    def __init__(self, cfg: MViTConfig) -> None:
        super().__init__(cfg)
        self.pos_embed = PositionalEmbedding(cfg.embed_dim, cfg.patch_grid, has_cls=cfg.cls_token)

    def add_positions(self, tokens: Tensor, grid: Grid) -> Tensor:
        return self.pos_embed(tokens, grid)

    def absolute_positions(self, grid: Grid) -> tuple[Tensor | None, Tensor]:
        return self.pos_embed.cls, self.pos_embed.grid_positions(grid)


class MViTv2(MultiscaleTransformer):
    """MViTv2: positions live in attention (relative), nothing is added to the tokens."""


def model_from_config(cfg: MViTConfig) -> MultiscaleTransformer:
    """An untrained network of the given architecture, in train mode (weights random)."""
    return (MViT if cfg.generation == 1 else MViTv2)(cfg)


def compile_for_inference(model: MultiscaleTransformer) -> Callable[[Tensor], Tensor]:
    """torch.compile for inference at one input shape, weights frozen into the graph.

    Freezing lets inductor fold the weights (and prepack them on the CPU). The fast paths'
    plans are cached with functools.lru_cache; Dynamo traces through the cache, which is
    right for these pure functions, but warns about it on every first call: silenced. The
    CPU's gates (cpu_gates) are asked here, eagerly, as Dynamo cannot trace the probes, and
    the fast plan is loaded here, so that Dynamo meets it loaded.
    """
    import torch._inductor.config as inductor_config

    from ..cpu_gates import gates

    gates()
    if model.fast_paths:
        fast_plan()

    inductor_config.freezing = True
    warnings.filterwarnings("ignore", message="Dynamo detected a call to a `functools.lru_cache`")
    return torch.compile(model, dynamic=False)
