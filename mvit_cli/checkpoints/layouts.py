"""Checkpoint layouts: how each publisher names and shapes MViT weights, in both directions.

Our own ("native") names are the module names of `mvit_cli.models`. Every other layout is a
list of prefix renames plus a few tensor-level differences (fused or separate q/k/v, leading
singleton dimensions, 2D image kernels, timm's stage numbering). Reading converts a foreign
state dict to native names; writing (used by tests and fixture scripts) goes the other way,
so every layout we load is also one we can produce and round-trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..models.config import MViTConfig

StateDict = dict[str, Tensor]

_STAGED = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.")

_PLACEHOLDERS = {"i": r"(?P<i>\d+)", "x": r"(?P<x>[qkv])"}


def _template_regex(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    for name, group in _PLACEHOLDERS.items():
        pattern = pattern.replace(re.escape("{" + name + "}"), group)
    return re.compile("^" + pattern)


@dataclass(frozen=True)
class Rename:
    """One prefix rename, written with {i} (block index) and {x} (q, k or v) placeholders."""

    native: str
    foreign: str
    # Aliases some files carry that we read but never write.
    read_only: bool = False

    def apply(self, key: str, to_native: bool) -> str | None:
        if self.read_only and not to_native:
            return None
        source, target = (self.foreign, self.native) if to_native else (self.native, self.foreign)
        match = _template_regex(source).match(key)
        if match is None:
            return None
        return target.format(**match.groupdict()) + key[match.end():]


@dataclass(frozen=True)
class Layout:
    """A publisher's naming scheme and the tensor conventions that go with it."""

    name: str
    description: str
    renames: tuple[Rename, ...]
    # Keys whose presence (after nothing else) identifies the layout.
    signature: tuple[str, ...]
    separate_qkv: bool = False
    # Tokens and positions stored with leading singleton dims ([1, 1, C], [1, N, C]).
    leading_dims: bool = False
    # Stage-relative block numbering (timm: stages.S.blocks.J).
    staged_blocks: bool = False
    # Conv kernels without the time axis for image models (timm, pytorchvideo's patch conv).
    flat_image_kernels: tuple[str, ...] = field(default=())
    # Pool-norm eps the publisher's MViT v1 code used (None: the architecture's own).
    v1_pool_norm_eps: float | None = None

    def rename(self, key: str, to_native: bool) -> str:
        for rule in self.renames:
            renamed = rule.apply(key, to_native)
            if renamed is not None:
                return renamed
        return key


NATIVE = Layout("native", "mvit safetensors (this project's own)", renames=(),
                signature=("patch_embed.weight",))

TORCHVISION = Layout(
    "torchvision", "torchvision .pth (torchvision.models.video.mvit_v1_b / mvit_v2_s)",
    renames=(
        Rename("patch_embed.", "conv_proj."),
        Rename("cls_token", "pos_encoding.class_token"),
        Rename("pos_embed.spatial", "pos_encoding.spatial_pos"),
        Rename("pos_embed.temporal", "pos_encoding.temporal_pos"),
        Rename("pos_embed.cls", "pos_encoding.class_pos"),
        Rename("blocks.{i}.attn.proj.", "blocks.{i}.attn.project.0."),
        Rename("blocks.{i}.attn.pool_{x}.", "blocks.{i}.attn.pool_{x}.pool."),
        Rename("blocks.{i}.attn.norm_{x}.", "blocks.{i}.attn.pool_{x}.norm_act.0."),
        Rename("blocks.{i}.mlp.fc1.", "blocks.{i}.mlp.0."),
        Rename("blocks.{i}.mlp.fc2.", "blocks.{i}.mlp.3."),
        Rename("blocks.{i}.proj.", "blocks.{i}.project."),
        Rename("head.", "head.1."),
    ),
    signature=("conv_proj.weight",),
)

SLOWFAST = Layout(
    "slowfast", "SlowFast .pyth (facebookresearch/SlowFast, weights under model_state)",
    renames=(
        Rename("patch_embed.", "patch_embed.proj."),
        Rename("pos_embed.spatial", "pos_embed_spatial"),
        Rename("pos_embed.temporal", "pos_embed_temporal"),
        Rename("pos_embed.cls", "pos_embed_class"),
        Rename("head.", "head.projection."),
    ),
    signature=("head.projection.weight",),
    leading_dims=True, v1_pool_norm_eps=1e-5,
)

SLOWFAST_SEPARATE_QKV = Layout(
    "slowfast-qkv", "SlowFast .pyth with separate q/k/v projections",
    renames=SLOWFAST.renames, signature=("head.projection.weight", "blocks.0.attn.q.weight"),
    separate_qkv=True, leading_dims=True, v1_pool_norm_eps=1e-5,
)

PYTORCHVIDEO = Layout(
    "pytorchvideo", "pytorchvideo .pyth (facebookresearch/pytorchvideo, weights under model_state)",
    renames=(
        Rename("patch_embed.", "patch_embed.patch_model."),
        Rename("cls_token", "cls_positional_encoding.cls_token"),
        Rename("pos_embed.spatial", "cls_positional_encoding.pos_embed_spatial"),
        Rename("pos_embed.temporal", "cls_positional_encoding.pos_embed_temporal"),
        Rename("pos_embed.cls", "cls_positional_encoding.pos_embed_class"),
        Rename("norm.", "norm_embed."),
        Rename("head.", "head.proj."),
        # Newer pytorchvideo also exposes the pool modules under these aliases.
        Rename("blocks.{i}.attn.pool_{x}.", "blocks.{i}.attn._attention_pool_{x}.pool.", True),
        Rename("blocks.{i}.attn.norm_{x}.", "blocks.{i}.attn._attention_pool_{x}.norm.", True),
    ),
    signature=("patch_embed.patch_model.weight",),
    separate_qkv=True, leading_dims=True, flat_image_kernels=("patch_embed.weight",),
    v1_pool_norm_eps=1e-5,
)

TIMM = Layout(
    "timm", "timm MViTv2 safetensors (Hugging Face Hub timm/mvitv2_*)",
    renames=(
        Rename("patch_embed.", "patch_embed.proj."),
        Rename("head.", "head.fc."),
        Rename("blocks.{i}.proj.", "blocks.{i}.shortcut_proj_attn."),
        # Models that widen in the MLP (v2-L) name the same projection after it.
        Rename("blocks.{i}.proj.", "blocks.{i}.shortcut_proj_mlp.", True),
    ),
    signature=("stages.0.blocks.0.norm1.weight",),
    leading_dims=True, staged_blocks=True,
    flat_image_kernels=("patch_embed.weight", "pool_q.weight", "pool_k.weight", "pool_v.weight"),
)

LAYOUTS: tuple[Layout, ...] = (NATIVE, TORCHVISION, SLOWFAST_SEPARATE_QKV, SLOWFAST, PYTORCHVIDEO,
                               TIMM)
LAYOUTS_BY_NAME = {layout.name: layout for layout in LAYOUTS}


def detect_layout(state: StateDict) -> Layout:
    """Name the layout of a state dict from its characteristic keys."""
    keys = set(state)
    for layout in LAYOUTS:
        if all(key in keys for key in layout.signature):
            return layout
    sample = ", ".join(sorted(keys)[:4])
    raise ValueError(f"unrecognised checkpoint layout (first keys: {sample})")


# ---- foreign -> native ---------------------------------------------------------------------

def _unstage(state: StateDict) -> StateDict:
    """timm numbers blocks within stages; we number them across the network.

    Each stage starts where the file's own earlier stages end, so the names follow from
    the file alone: no architecture is needed to read it (and a file whose stages are not
    an architecture's still fails, at the shape check, with every misfit named).
    """
    stage_sizes: dict[int, int] = {}
    for key in state:
        match = _STAGED.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            stage_sizes[stage] = max(stage_sizes.get(stage, 0), block + 1)
    starts = {stage: sum(size for s, size in stage_sizes.items() if s < stage)
              for stage in stage_sizes}
    out = {}
    for key, value in state.items():
        match = _STAGED.match(key)
        if match:
            key = f"blocks.{starts[int(match.group(1))] + int(match.group(2))}." + key[match.end():]
        out[key] = value
    return out


def _stage(state: StateDict, cfg: MViTConfig) -> StateDict:
    """Native numbering across the network to timm's within stages, by `cfg`'s depths."""
    starts = [sum(cfg.depths[:s]) for s in range(len(cfg.depths))]
    out = {}
    for key, value in state.items():
        match = re.match(r"^blocks\.(\d+)\.", key)
        if match:
            index = int(match.group(1))
            stage = max(s for s, start in enumerate(starts) if start <= index)
            key = f"stages.{stage}.blocks.{index - starts[stage]}." + key[match.end():]
        out[key] = value
    return out


def _fuse_qkv(state: StateDict) -> StateDict:
    """Concatenate separate q, k, v projections into one qkv projection (rows q, k, v)."""
    out = dict(state)
    for key in list(state):
        match = re.match(r"^(blocks\.\d+\.attn\.)q\.(weight|bias)$", key)
        if match:
            prefix, kind = match.groups()
            parts = [out.pop(f"{prefix}{name}.{kind}") for name in "qkv"]
            out[f"{prefix}qkv.{kind}"] = torch.cat(parts, dim=0)
    return out


def _split_qkv(state: StateDict) -> StateDict:
    out = dict(state)
    for key in list(state):
        match = re.match(r"^(blocks\.\d+\.attn\.)qkv\.(weight|bias)$", key)
        if match:
            prefix, kind = match.groups()
            for name, part in zip("qkv", out.pop(key).chunk(3, dim=0), strict=True):
                out[f"{prefix}{name}.{kind}"] = part.clone()
    return out


def _split_joint_positions(state: StateDict) -> StateDict:
    """SlowFast image models may store one joint `pos_embed` [1, 1 + HW, C]; we keep it separable."""
    if "pos_embed" not in state:
        return state
    out = dict(state)
    joint = out.pop("pos_embed").reshape(-1, state["pos_embed"].shape[-1])
    out["pos_embed.cls"] = joint[0]
    out["pos_embed.spatial"] = joint[1:]
    out["pos_embed.temporal"] = torch.zeros(1, joint.shape[-1], dtype=joint.dtype)
    return out


def to_native(state: StateDict, layout: Layout) -> StateDict:
    """Rename and reshape a foreign state dict to native names (shapes fitted later).

    Names depend on the layout alone, never on an architecture: a file is converted once,
    and every architecture it might be is then checked against the same native tensors.
    """
    if layout.staged_blocks:
        state = _unstage(state)
    if layout.separate_qkv or any(k.endswith(".attn.q.weight") for k in state):
        state = _fuse_qkv(state)
    native: StateDict = {}
    for key, value in state.items():
        name = layout.rename(key, to_native=True)
        if name in native and not torch.equal(native[name], value):
            raise ValueError(f"checkpoint has two different tensors for {name}")
        native[name] = value
    return _split_joint_positions(native)


def native_state(state: StateDict) -> tuple[Layout, StateDict]:
    """A file's layout and its tensors in native names: the one conversion of a load."""
    layout = detect_layout(state)
    return layout, to_native(state, layout)


# ---- native -> foreign (fixtures, tests, exports) -------------------------------------------

def from_native(state: StateDict, layout: Layout, cfg: MViTConfig) -> StateDict:
    """Write a native state dict in another layout, shapes as that publisher stores them."""
    out: StateDict = {}
    for key, value in state.items():
        if layout.leading_dims:
            if key == "cls_token" or key == "pos_embed.cls":
                value = value.reshape(1, 1, -1)
            elif key in ("pos_embed.spatial", "pos_embed.temporal"):
                value = value.unsqueeze(0)
        if not cfg.is_video and any(key.endswith(s) for s in layout.flat_image_kernels):
            value = value.squeeze(2)
        out[layout.rename(key, to_native=False)] = value.contiguous()
    if layout.separate_qkv:
        out = _split_qkv(out)
    if layout.staged_blocks:
        out = _stage(out, cfg)
        if not cfg.dim_mul_in_att:
            out = {k.replace(".shortcut_proj_attn.", ".shortcut_proj_mlp."): v for k, v in out.items()}
    return out
