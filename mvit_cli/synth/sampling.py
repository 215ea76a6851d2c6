"""Drawing a clip's spec: every free parameter of one clip, from its own random stream.

The order of the draws is part of the dataset: the same seed must give the same clips (the
motion-demo weights were trained on them), so a change here is a new dataset.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from .colours import exposure, luma, palette, random_colour
from .formats import FORMAT_WEIGHTS
from .spec import (ASYMMETRIC_GLYPHS, BACKGROUNDS, FILLS, FRAME_RATES, GLYPHS, LABELS,
                   MIN_CONTRAST, NEEDS_MARKER, ROTATION_SHAPES, SHAPES, VARIETIES,
                   WIDE_BACKGROUNDS, WIDE_FRAME_RATES, WIDE_MIN_CONTRAST, WIDE_ROTATION_SHAPES,
                   WIDE_SHAPES, ClipSpec, known_label)

MIN_SCALE_FACTOR = 1.8  # how much a classic clip grows or shrinks, at least


def _resolution(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height): even sides from 72 to 320, landscape or (less often) portrait."""
    short = 2 * int(rng.integers(36, 121))
    aspect = float(rng.choice([1.0, 1.25, 4 / 3, 1.5, 16 / 9]))
    long = min(320, max(96, 2 * round(short * aspect / 2)))
    return (short, long) if rng.random() < 0.3 else (long, short)


def _geometry(rng: np.random.Generator, label: str, width: int, height: int,
              duration: float = 2.0, wide: bool = False, fps: float = 10.0,
              easing: float = 0.0):
    """(start, end, start_size, end_size, turn per second) for the label, inside the frame.

    Sizes are diameters of the circle the object fits in at any angle, so keeping that
    circle inside the frame keeps the object inside whatever its orientation. The wide
    variety has smaller objects, shorter travel and gentler scaling; its rotations turn at
    least 45 degrees in all, at most 30 degrees a frame and at most 110 degrees between two
    of 8 frames spread over the clip, so that the direction stays visible to a model
    sampling that way.
    """
    short = min(width, height)
    if label.startswith("moving"):
        size = rng.uniform(0.12, 0.4) * short if wide else rng.uniform(0.18, 0.4) * short
        r = size / 2
        horizontal = label in ("moving left", "moving right")
        length, across = (width, height) if horizontal else (height, width)
        least = 0.3 if wide else 0.45
        # Objects cross at least about a quarter of the frame (classic), nearly a fifth (wide).
        travel = rng.uniform(least, 0.9) * (length - 2 * r)
        a0 = rng.uniform(r, length - r - travel)
        a1 = a0 + travel
        if label in ("moving left", "moving up"):
            a0, a1 = length - a0, length - a1
        p0 = rng.uniform(r, across - r)
        p1 = float(np.clip(p0 + rng.uniform(-0.15, 0.15) * travel, r, across - r))
        start, end = ((a0, p0), (a1, p1)) if horizontal else ((p0, a0), (p1, a1))
        return start, end, size, size, 0.0
    if label.startswith("rotating"):
        size = rng.uniform(0.3 if wide else 0.35, 0.6) * short
        centre = (rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2))
        if wide:  # easing e speeds the turn up to (1 + |e|) times its mean rate
            most = min(240.0, 7 * 105 / duration, 28 * fps) / (1 + abs(easing))
            speed = rng.uniform(min(max(40.0, 45 / duration), most), most)
        else:
            speed = rng.uniform(100, 240)  # at most 24 degrees a frame at 10 fps
        return centre, centre, size, size, speed if label == "rotating clockwise" else -speed
    big = rng.uniform(0.4 if wide else 0.45, 0.8) * short
    least, most = (1.45, 3.5) if wide else (MIN_SCALE_FACTOR + 0.02, 3.0)
    small = big / rng.uniform(least, most)
    centre = (rng.uniform(big / 2, width - big / 2), rng.uniform(big / 2, height - big / 2))
    sizes = (small, big) if label == "growing" else (big, small)
    return centre, centre, *sizes, 0.0


def clip_spec(seed: int, label: str | int, index: int, variety: str = "classic") -> ClipSpec:
    """Clip `index` of a class in the dataset of `seed`.

    Each clip has its own random stream, so clip 3 is the same whether 5 or 500 clips per
    class are asked for, and a larger dataset extends a smaller one. The wide variety draws
    from streams of its own (a clip of it is no widened copy of the classic one).
    """
    label = known_label(label)
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}: one of {', '.join(VARIETIES)}")
    entropy = [seed % 2**64, LABELS.index(label), index]
    if variety != "classic":
        entropy.append(VARIETIES.index(variety))
    return sample_clip(np.random.default_rng(entropy), label, variety)


def sample_clip(rng: np.random.Generator, label: str | int,
                variety: str = "classic") -> ClipSpec:
    """Draw every free parameter of one clip of `label` (a label or its class index)."""
    label = known_label(label)
    if variety == "wide":
        return _sample_wide(rng, label)
    if variety != "classic":
        raise ValueError(f"unknown variety {variety!r}: one of {', '.join(VARIETIES)}")
    return _sample_classic(rng, label)


def _sample_classic(rng: np.random.Generator, label: str) -> ClipSpec:
    width, height = _resolution(rng)
    fps = FRAME_RATES[int(rng.integers(len(FRAME_RATES)))]
    frames = max(10, round(rng.uniform(1.0, 3.0) * float(fps)))
    rotating = label.startswith("rotating")
    shape = str(rng.choice(ROTATION_SHAPES if rotating else SHAPES))
    glyph = str(rng.choice(list(ASYMMETRIC_GLYPHS if rotating else GLYPHS))) \
        if shape == "letter" else ""
    marker = (rotating and shape in NEEDS_MARKER) or bool(rng.random() < 0.4)
    background = str(rng.choice(BACKGROUNDS))
    colours = palette(rng, background)
    *path, turn_speed = _geometry(rng, label, width, height)
    noise = 0.0 if rng.random() < 0.25 else rng.uniform(0.5, 8.0)
    extension = _extension(rng)
    start_angle = rng.uniform(0, 360)
    easing = rng.uniform(-0.4, 0.4)
    seed = rng.integers(2**63)
    return _assemble(label, (width, height), fps, frames, shape, glyph, marker, background,
                     colours, path, start_angle, turn_speed * frames / float(fps), easing,
                     noise, extension, seed)


def _sample_wide(rng: np.random.Generator, label: str) -> ClipSpec:
    short = 2 * int(rng.integers(32, 145))
    aspect = float(rng.choice([1.0, 1.25, 4 / 3, 1.5, 16 / 9, 2.0]))
    long = min(400, max(80, 2 * round(short * aspect / 2)))
    width, height = (short, long) if rng.random() < 0.3 else (long, short)
    fps = WIDE_FRAME_RATES[int(rng.integers(len(WIDE_FRAME_RATES)))]
    frames = max(10, round(rng.uniform(1.0, 6.0) * float(fps)))
    rotating = label.startswith("rotating")
    shape = str(rng.choice(WIDE_ROTATION_SHAPES if rotating else WIDE_SHAPES))
    glyph = ""
    if shape == "letter":
        glyph = str(rng.choice(list(ASYMMETRIC_GLYPHS if rotating else GLYPHS)))
        if rng.random() < 0.4 and glyph != "L":  # l is a bar, the same turned half a turn
            glyph = glyph.lower()
    marker = (rotating and shape in NEEDS_MARKER) or bool(rng.random() < 0.3)
    background = str(rng.choice(WIDE_BACKGROUNDS))
    contrast = int(rng.integers(WIDE_MIN_CONTRAST, MIN_CONTRAST + 30))
    colours = palette(rng, background, contrast)
    obj, marker_colour, background_colours = colours
    fill = str(rng.choice(FILLS, p=[0.4, 0.2, 0.2, 0.2]))
    lumas = [luma(c) for c in background_colours]
    if luma(obj) > max(lumas):  # the second object colour on the object's side too
        fill_colour = random_colour(rng, lambda y: y >= max(lumas) + contrast)
    else:
        fill_colour = random_colour(rng, lambda y: y <= min(lumas) - contrast)
    duration = frames / float(fps)
    easing = float(rng.uniform(-0.5, 0.5))
    *path, turn_speed = _geometry(rng, label, width, height, duration, wide=True,
                                  fps=float(fps), easing=easing)
    noise = 0.0 if rng.random() < 0.3 else rng.uniform(0.5, 6.0)
    extension = _extension(rng)
    gain, offset = exposure(rng, [obj, fill_colour, marker_colour, *background_colours])
    start_angle = rng.uniform(0, 360)
    seed = rng.integers(2**63)
    distractors = int(rng.choice([0, 0, 1, 2, 3]))
    blur = float(rng.uniform(0.5, 2.0)) if rng.random() < 0.3 else 0.0
    slant, stretch = float(rng.uniform(-0.35, 0.35)), float(rng.uniform(0.7, 1.3))
    quality = int(rng.integers(18, 34))
    return _assemble(label, (width, height), fps, frames, shape, glyph, marker, background,
                     colours, path, start_angle, turn_speed * duration, easing, noise,
                     extension, seed, fill=fill, fill_colour=fill_colour,
                     distractors=distractors, blur=blur, gain=gain, offset=offset,
                     slant=slant, stretch=stretch, quality=quality, contrast=contrast)


def _extension(rng: np.random.Generator) -> str:
    """The container (a key of FORMATS), drawn by FORMAT_WEIGHTS."""
    extensions = list(FORMAT_WEIGHTS)
    return str(rng.choice(extensions, p=list(FORMAT_WEIGHTS.values())))


def _assemble(label: str, size: tuple[int, int], fps: Fraction, frames: int, shape: str,
              glyph: str, marker: bool, background: str, colours, path, start_angle,
              turn, easing, noise, extension: str, seed, **wide) -> ClipSpec:
    """The one place a drawn clip becomes a ClipSpec, whichever variety drew it.

    `colours` is (object, marker, background pair) as `palette` draws them, `path` is
    (start, end, start_size, end_size) as `_geometry` draws it, `wide` the wide variety's
    extra fields. numpy scalars become Python numbers here, so that specs compare, hash and
    print alike however they were drawn.
    """
    obj, marker_colour, background_colours = colours
    start, end, start_size, end_size = path
    return ClipSpec(
        label=label, width=size[0], height=size[1], fps=fps, frames=frames, shape=shape,
        glyph=glyph, marker=marker, object_colour=obj, marker_colour=marker_colour,
        background=background, background_colours=background_colours,
        start=(float(start[0]), float(start[1])), end=(float(end[0]), float(end[1])),
        start_size=float(start_size), end_size=float(end_size),
        start_angle=float(start_angle), turn=float(turn), easing=float(easing),
        noise=float(noise), extension=extension, seed=int(seed), **wide)
