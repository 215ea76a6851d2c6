"""Resize, crop and normalise frames the way the publishers' test pipelines do.

Frames stay uint8 through the resize (bilinear with antialiasing, as torchvision's
VideoClassification preset), are cropped, and become floats only at the end: mean/std
normalisation happens in the model's process, so workers ship a quarter of the bytes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .protocol import Protocol


def resize_short_side(frames: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """(N, 3, H, W) uint8 -> short side `size`, aspect kept (long side floored as torchvision)."""
    height, width = frames.shape[-2:]
    if min(height, width) == size:
        return frames
    if height <= width:
        new_h, new_w = size, int(size * width / height)
    else:
        new_h, new_w = int(size * height / width), size
    if frames.dtype == torch.uint8 and interpolation != "bilinear":
        # Antialiased bicubic has no uint8 kernel: resize in float, round back to uint8.
        resized = F.interpolate(frames.float(), size=(new_h, new_w), mode=interpolation,
                                antialias=True, align_corners=False)
        return resized.round_().clamp_(0, 255).to(torch.uint8)
    return F.interpolate(frames, size=(new_h, new_w), mode=interpolation, antialias=True,
                         align_corners=False)


def crop_boxes(height: int, width: int, crop: int, crops: int) -> list[tuple[int, int]]:
    """Top-left corners: the centre crop, or 3 crops along the long side (start, centre, end)."""
    centre = (int(round((height - crop) / 2.0)), int(round((width - crop) / 2.0)))
    if crops == 1:
        return [centre]
    if height > width:
        return [(0, centre[1]), centre, (height - crop, centre[1])]
    return [(centre[0], 0), centre, (centre[0], width - crop)]


def make_views(frames: np.ndarray, protocol: Protocol) -> np.ndarray:
    """(clips*T, H, W, 3) uint8 frames -> (clips*crops, T, crop, crop, 3) uint8 views."""
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    tensor = resize_short_side(tensor, protocol.resize_target(), protocol.interpolation)
    height, width = tensor.shape[-2:]
    crop = protocol.crop
    if min(height, width) < crop:  # tiny sources: scale up so a crop fits
        tensor = resize_short_side(tensor, crop, protocol.interpolation)
        height, width = tensor.shape[-2:]
    clips = tensor.reshape(protocol.clips, protocol.frames, 3, height, width)
    views = [clips[:, :, :, top:top + crop, left:left + crop]
             for top, left in crop_boxes(height, width, crop, protocol.crops)]
    # (crops, clips, T, 3, c, c) -> (clips, crops, ...) -> views ordered clip-major
    stacked = torch.stack(views, dim=1).flatten(0, 1)
    return stacked.permute(0, 1, 3, 4, 2).contiguous().numpy()


def standardise(x: torch.Tensor, mean: tuple[float, float, float],
                std: tuple[float, float, float], in_place: bool = False) -> torch.Tensor:
    """Floats in [0, 1], channels on axis 1 -> (x - mean) / std per channel: the one
    normalisation that classification and training share. `in_place` overwrites `x` (the
    same numbers, without two clip-sized temporaries)."""
    shape = (1, 3) + (1,) * (x.ndim - 2)
    mean_, std_ = torch.tensor(mean).view(shape), torch.tensor(std).view(shape)
    if in_place:
        return x.sub_(mean_).div_(std_)
    return (x - mean_) / std_


def normalise(views: torch.Tensor, protocol: Protocol, video: bool) -> torch.Tensor:
    """(V, T, c, c, 3) uint8 -> float model input (V, 3, T, c, c), or (V, 3, c, c) for images."""
    x = views.permute(0, 4, 1, 2, 3).to(torch.float32, copy=True).div_(255.0)
    x = standardise(x, protocol.mean, protocol.std, in_place=True)
    return x if video else x[:, :, 0]
