"""Declarative description of an MViT architecture and its expansion into per-block settings.

An architecture is written as a *stage schedule* (blocks per stage, starting width and heads,
pooling strides), the way the papers' tables describe it. `block_settings` turns the schedule
into the explicit per-block table the model is built from, following the published code's
conventions: widths and heads double at the first block of each new stage, Q is pooled there
with stride 1x2x2, and the K/V stride is divided by every Q stride so K/V end up at the same
grid in the last stage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Triple = tuple[int, int, int]

PoolMode = Literal["conv", "max", "avg"]
HeadPool = Literal["cls", "mean_then_norm", "norm_then_mean"]


@dataclass(frozen=True)
class MViTConfig:
    """Everything that decides an MViT network's shape; one instance per named architecture."""

    name: str
    generation: Literal[1, 2]
    depths: tuple[int, ...]
    embed_dim: int = 96
    num_heads: int = 1
    frames: int = 16
    size: int = 224
    num_classes: int = 400
    # Patchify: a Conv3d; image models use a temporal kernel and stride of 1.
    patch_kernel: Triple = (3, 7, 7)
    patch_stride: Triple = (2, 4, 4)
    patch_padding: Triple = (1, 3, 3)
    # Pooling attention.
    pool_mode: PoolMode = "conv"
    pool_kernel: Triple = (3, 3, 3)
    q_stride: Triple = (1, 2, 2)
    kv_stride: Triple = (1, 8, 8)
    pool_q_every_block: bool = False
    # Width schedule: how width and heads grow at a stage boundary.
    dim_mul: float = 2.0
    head_mul: float = 2.0
    dim_mul_in_att: bool = False
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    # Tokens and positions.
    cls_token: bool = True
    rel_pos: bool = False
    residual_pool: bool = False
    residual_with_cls: bool = False
    head_pool: HeadPool = "cls"
    norm_eps: float = 1e-6
    # LayerNorm eps after Q/K/V pooling when it differs from norm_eps: the original v1 code
    # (SlowFast, pytorchvideo) used 1e-5 there, and its checkpoints were trained with it.
    pool_norm_eps: float | None = None
    head_dropout: float = 0.5
    drop_path: float = 0.2
    # What the published tables say, shown next to what we compute.
    paper_params_m: float | None = None
    paper_gflops: float | None = None
    sampling_rate: int = 4
    dataset: str = "kinetics400"

    @property
    def is_video(self) -> bool:
        return self.frames > 1

    @property
    def depth(self) -> int:
        return sum(self.depths)

    @property
    def patch_grid(self) -> Triple:
        """Token grid (T, H, W) after patchify at the trained input size."""
        return conv_output_grid((self.frames, self.size, self.size), self.patch_kernel,
                                self.patch_stride, self.patch_padding)


def config_to_json(cfg: MViTConfig) -> str:
    """The whole config as JSON, saved inside our checkpoints so any architecture reloads."""
    return json.dumps(asdict(cfg), sort_keys=True)


def config_from_json(text: str) -> MViTConfig:
    raw: dict[str, Any] = json.loads(text)
    known = {f.name for f in fields(MViTConfig)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k in known}
    return MViTConfig(**values)


@dataclass(frozen=True)
class BlockSetting:
    """One block's explicit settings, as in torchvision's per-block table."""

    dim_in: int
    dim_out: int
    num_heads: int
    kernel_q: Triple | None
    stride_q: Triple
    kernel_kv: Triple | None
    stride_kv: Triple
    # Width inside attention: dim_out when MViTv2 widens there, else dim_in.
    attn_dim: int
    # Token grid entering the block at the trained input size (sizes relative positions).
    grid_in: Triple


def conv_output_grid(grid: Triple, kernel: Triple, stride: Triple, padding: Triple) -> Triple:
    """Output length floor((L + 2p - k) / s) + 1 per axis: the paper's pooling formula."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip(grid, kernel, stride, padding, strict=True))


def _round_width(width: float, multiplier: float, divisor: int = 1) -> int:
    """Scale a width and round it to a multiple of `divisor`, as the published code does."""
    width *= multiplier
    rounded = max(1, int(width + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * width:
        rounded += divisor
    return int(rounded)


def block_settings(cfg: MViTConfig) -> list[BlockSetting]:
    """Expand a stage schedule into the per-block table.

    Stage boundaries carry three changes: Q stride, heads x head_mul and width x dim_mul. With
    `dim_mul_in_att` (MViTv2) the widening happens inside the boundary block's attention; in
    MViT v1 it happens one block earlier, in the MLP of the last block of the previous stage.
    """
    stage_starts = set()
    start = 0
    for blocks in cfg.depths[:-1]:
        start += blocks
        stage_starts.add(start)

    def dim_mul_at(i: int) -> float:
        return cfg.dim_mul if i in stage_starts else 1.0

    def head_mul_at(i: int) -> float:
        return cfg.head_mul if i in stage_starts else 1.0

    settings = []
    dim, heads = cfg.embed_dim, cfg.num_heads
    kv_stride = cfg.kv_stride
    grid = cfg.patch_grid
    no_stride: Triple = (1, 1, 1)
    for i in range(cfg.depth):
        stride_q = cfg.q_stride if i in stage_starts else no_stride
        kv_stride = tuple(max(kv // q, 1) for kv, q in zip(kv_stride, stride_q, strict=True))
        heads = _round_width(heads, head_mul_at(i))
        if cfg.dim_mul_in_att:
            dim_out = _round_width(dim, dim_mul_at(i), divisor=heads)
        else:
            next_heads = _round_width(heads, head_mul_at(i + 1))
            dim_out = _round_width(dim, dim_mul_at(i + 1), divisor=next_heads)
        pooled_q = cfg.pool_q_every_block or stride_q != no_stride
        settings.append(BlockSetting(
            dim_in=dim,
            dim_out=dim_out,
            num_heads=heads,
            kernel_q=cfg.pool_kernel if pooled_q else None,
            stride_q=stride_q,
            kernel_kv=cfg.pool_kernel,
            stride_kv=kv_stride,
            attn_dim=dim_out if cfg.dim_mul_in_att else dim,
            grid_in=grid,
        ))
        if stride_q != no_stride:
            pad = tuple(k // 2 for k in cfg.pool_kernel)
            grid = conv_output_grid(grid, cfg.pool_kernel, stride_q, pad)
        dim = dim_out
    return settings
