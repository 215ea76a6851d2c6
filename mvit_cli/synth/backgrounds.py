"""The still background of a clip: a pattern blending its two colours, and in the wide
variety still distractor objects drawn into it."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .colours import random_colour
from .spec import GLYPHS, WIDE_SHAPES, ClipSpec
from .sprites import coverage, sprite_levels


def _fractal(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Noise summed over octaves, each half as strong as the last: clouds, foliage, terrain."""
    t = np.zeros((h, w), np.float32)
    for octave in range(5):
        cells = 2 ** (octave + 1) + 1
        grid = rng.random((cells, cells)).astype(np.float32)
        t += 0.5 ** octave * np.asarray(Image.fromarray(grid, "F").resize(
            (w, h), Image.Resampling.BICUBIC))
    return (t - t.min()) / max(float(np.ptp(t)), 1e-6)


def _clutter(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Many soft overlapping rectangles and ellipses: a room or a desk, out of focus."""
    canvas = Image.new("L", (w, h), int(rng.integers(256)))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(8, 30))):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        a, b = rng.uniform(0.03, 0.3) * w, rng.uniform(0.03, 0.3) * h
        box = [x - a, y - b, x + a, y + b]
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box,
                                                                 fill=int(rng.integers(256)))
    blurred = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    return np.asarray(blurred, np.float32) / 255


def backdrop(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) float32: a blend of the two background colours by a pattern in [0, 1]."""
    h, w = spec.height, spec.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    theta = rng.uniform(0, math.pi)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    kind = spec.background
    if kind == "flat":
        t = np.zeros((h, w), np.float32)
    elif kind == "gradient":
        t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    elif kind == "noise":
        cells = int(rng.integers(3, 14))
        grid = rng.random((cells, cells)).astype(np.float32)
        t = np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC))
        if rng.random() < 0.5:  # fine grain on top of the blobs
            t = t + rng.uniform(0.1, 0.4) * (rng.random((h, w), np.float32) - 0.5)
    elif kind == "stripes":
        period = rng.uniform(6, max(8.0, 0.3 * min(h, w)))
        wave = np.sin(2 * math.pi * along / period)
        t = (0.5 + 0.5 * wave) if rng.random() < 0.5 else (wave > 0).astype(np.float32)
    elif kind == "checker":
        cell = rng.uniform(5, max(6.0, 0.25 * min(h, w)))
        across = -xs * math.sin(theta) + ys * math.cos(theta)
        t = ((np.floor(along / cell) + np.floor(across / cell)) % 2).astype(np.float32)
    elif kind == "fractal":
        t = _fractal(rng, h, w)
    elif kind == "clutter":
        t = _clutter(rng, h, w)
    else:
        raise ValueError(f"unknown background {kind!r}")
    first, second = (np.array(c, np.float32) for c in spec.background_colours)
    ground = first + np.clip(t, 0, 1)[..., None] * (second - first)
    if spec.distractors:
        ground = _with_distractors(ground, spec, np.random.default_rng([spec.seed, 4]))
    return ground


def _with_distractors(ground: np.ndarray, spec: ClipSpec, rng: np.random.Generator):
    """Still objects drawn into the background: shapes like the moving one, in colours of
    their own, that never move (so only the moving object carries the label)."""
    h, w = ground.shape[:2]
    short = min(h, w)
    for _ in range(spec.distractors):
        shape = str(rng.choice(WIDE_SHAPES))
        glyph = str(rng.choice(list(GLYPHS))) if shape == "letter" else ""
        still = replace(spec, shape=shape, glyph=glyph, seed=int(rng.integers(2**63)),
                        fill="solid", marker=False, distractors=0)
        levels = sprite_levels(still, np.random.default_rng([still.seed, 0]))
        size = rng.uniform(0.1, 0.3) * short
        cover = coverage(levels, still, rng.uniform(size / 2, w - size / 2),
                          rng.uniform(size / 2, h - size / 2), size, rng.uniform(0, 360))
        colour = np.array(random_colour(rng, lambda y: True), np.float32)
        ground = ground + cover[..., :1] * (colour - ground)
    return ground
