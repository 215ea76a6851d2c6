"""Patchify with the convolution run channels last, and the class token and positions
written into the token buffer, in CPU inference.

Why: torch runs a convolution in the memory format of its input, and a clip arrives
channels-first (N, 3, T, H, W). oneDNN's channels-first convolution of 3 input channels
is slow, and its output then needs a transposing copy to become tokens (B, L, C). Run
channels last, the output is the token layout itself (the flatten and transpose are free
views), and the class token and the positions go into one buffer instead of a
concatenation and an add. A clip from a pipeline is channels last already (its uint8
views are (T, H, W, 3)), so only the conversion is saved there.

Measured on an Intel Xeon with AMX: B-16x4's embedding alone ran faster from a
channels-first clip, in bf16 by far (benchmarks/RESULTS.md, "Intel Xeon with AMX", and
"The fast paths' figures", patch embedding). Same numbers as the reference (the same
convolution, another order of its loops in memory; the same sums).

Not in exported graphs, which run on their compiler's own layouts, nor with autograd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..pooling import Grid

if TYPE_CHECKING:
    from ..model import MultiscaleTransformer


def takes_channels_last(x: Tensor) -> bool:
    return (x.device.type == "cpu" and not torch.is_grad_enabled()
            and not torch.compiler.is_exporting() and not torch.compiler.is_compiling())


def embed(model: MultiscaleTransformer, x: Tensor) -> tuple[Tensor, Grid]:
    """`model.embed(x)`: (tokens, grid)."""
    if not takes_channels_last(x):
        return model.embed(x)
    clips = model.as_clips(x).contiguous(memory_format=torch.channels_last_3d)
    patches = model.patch_embed(clips)
    grid: Grid = (patches.shape[2], patches.shape[3], patches.shape[4])
    tokens = patches.flatten(2).transpose(1, 2)  # channels last: a view of the conv's output
    batch, length, channels = tokens.shape
    cls_token = model.cls_token
    skip = 1 if cls_token is not None else 0
    out = tokens.new_empty(batch, skip + length, channels)
    positions = model.absolute_positions(grid)  # MViT v1's; None in MViTv2
    if positions is None:
        out[:, skip:] = tokens
    else:
        torch.add(tokens, positions[1], out=out[:, skip:])
    if cls_token is not None:
        out[:, 0] = cls_token if positions is None else cls_token + positions[0]
    return out, grid
