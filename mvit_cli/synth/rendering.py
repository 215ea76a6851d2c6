"""Rendering a clip: its frames as pixels, a pure function of its spec."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .backgrounds import backdrop
from .sampling import sample_clip
from .spec import ClipSpec
from .sprites import coverage, sprite_levels
from .trajectory import motion


def streams(spec: ClipSpec) -> tuple[np.random.Generator, ...]:
    """Independent generators for shape, background and noise: each part is reproducible
    without the others (the background alone, for instance)."""
    return tuple(np.random.default_rng([spec.seed, part]) for part in range(3))


def background(spec: ClipSpec) -> np.ndarray:
    """The clip's empty background, (H, W, 3) uint8, as exposed but without blur or noise:
    frame minus this shows where the object is."""
    _, rng, _ = streams(spec)
    return np.clip(np.round(exposed(backdrop(spec, rng), spec)), 0, 255).astype(np.uint8)


def exposed(frame: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """The frame under the spec's exposure (a camera's gain and black level); at the
    classic gain and offset, the frame itself, without a pass over its pixels."""
    if spec.gain == 1.0 and spec.offset == 0.0:
        return frame
    return frame * spec.gain + spec.offset


def render(spec: ClipSpec) -> np.ndarray:
    """The clip as (frames, H, W, 3) uint8 RGB."""
    shape_rng, background_rng, noise_rng = streams(spec)
    levels = sprite_levels(spec, shape_rng)
    ground = backdrop(spec, background_rng)
    obj = np.array(spec.object_colour, np.float32)
    other = np.array(spec.fill_colour or spec.object_colour, np.float32)
    spot = np.array(spec.marker_colour, np.float32)
    path = motion(spec)
    clip = np.empty((spec.frames, spec.height, spec.width, 3), np.uint8)
    for i in range(spec.frames):
        cover = coverage(levels, spec, path.x[i], path.y[i], path.size[i], path.angle[i])
        colour = obj if spec.fill == "solid" else obj + cover[..., 2:3] * (other - obj)
        frame = ground + cover[..., :1] * (colour - ground)
        frame += cover[..., 1:2] * (spot - frame)
        frame = exposed(frame, spec)
        if spec.blur > 0:
            frame = _blurred(frame, spec.blur)
        if spec.noise > 0:
            frame += noise_rng.standard_normal(frame.shape, np.float32) * spec.noise
        np.clip(np.round(frame), 0, 255, out=frame)
        clip[i] = frame
    return clip


def _blurred(frame: np.ndarray, sigma: float) -> np.ndarray:
    image = Image.fromarray(np.clip(np.round(frame), 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(sigma)), np.float32)


def render_clip(rng: np.random.Generator, label: str | int) -> np.ndarray:
    """A fresh random clip of `label`: (frames, H, W, 3) uint8."""
    return render(sample_clip(rng, label))
