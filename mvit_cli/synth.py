"""Synthetic motion clips: eight classes that only the object's motion tells apart.

Each clip shows one object over a static background, and its label says only how the object
moves. Everything else (shape, colours, background, size, speed, start, resolution, frame
rate, length, sensor noise, codec and container) is drawn at random, so a model trained on
these clips has to learn the motion: there is no other cue.

Two varieties: "classic", one flat-coloured object over a plain or patterned background
(what motion-demo was first trained on), and "wide", which adds textured objects, more
shapes, photo-like backgrounds with still distractor objects, lower contrast, blur,
exposure, and a wider range of speeds, durations, frame rates and compression. The label
still says only how the one moving object moves.

A clip is first drawn as a `ClipSpec` (a few numbers, cheap, fixed by the random
generator), then rendered from the spec alone. The same spec gives the ground-truth motion
per frame (`motion`) and the empty background (`background`), which is how the rendered
pixels can be checked against the label.

Coordinates are image coordinates: x to the right, y down, pixel (i, j) centred at
(i + 0.5, j + 0.5). Angles are degrees clockwise as seen on screen, which is the positive
mathematical sense once y points down.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

# PyAV is imported with this module, not when the first clip is written: decord 0.6.0
# bundled an older libvpx and exported its symbols process-wide, so a PyAV loaded after it
# could not open its VP9 encoder. (decord2, which mvit now uses, does not; the order costs
# nothing and keeps an older decord working.)
import av
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .errors import MvitError
from .fileio import atomic_path

LABELS: tuple[str, ...] = ("moving left", "moving right", "moving up", "moving down",
                           "rotating clockwise", "rotating counterclockwise", "growing",
                           "shrinking")

SHAPES = ("circle", "ring", "ellipse", "square", "bar", "triangle", "star", "polygon", "cross",
          "arrow", "ell", "letter")
# Rotation needs an orientation visible at every angle and no symmetry under small turns:
# bars and ellipses qualify only with a marker at one end, which they are always given.
ROTATION_SHAPES = ("arrow", "triangle", "ell", "letter", "bar", "ellipse")
NEEDS_MARKER = frozenset({"bar", "ellipse"})
GLYPHS = "ABCDEFGHJKLMNPQRSTUVWXYZ2345679"
ASYMMETRIC_GLYPHS = "AEFGJKLPQRTY2345679"  # no rotational symmetry (unlike H, N, S, Z, ...)
BACKGROUNDS = ("flat", "gradient", "noise", "stripes", "checker")
FRAME_RATES = tuple(Fraction(r) for r in (10, 12, 15, 20, 24, 25, 30)) + (
    Fraction(24000, 1001), Fraction(30000, 1001))

# The wide variety ("--variety wide") widens everything the label does not depend on, so that
# a model trained on it has fewer accidental cues to lean on: more shapes, textured objects,
# photo-like backgrounds with still distractor objects, lower contrast, blur, exposure,
# longer and slower or faster motions, more frame rates and compression levels.
VARIETIES = ("classic", "wide")
WIDE_SHAPES = SHAPES + ("blob", "heart", "crescent", "key")
WIDE_ROTATION_SHAPES = ROTATION_SHAPES + ("blob", "heart", "crescent", "key")
WIDE_BACKGROUNDS = BACKGROUNDS + ("fractal", "clutter")
WIDE_FRAME_RATES = FRAME_RATES + (Fraction(8), Fraction(50), Fraction(60))
FILLS = ("solid", "stripes", "noise", "gradient")
WIDE_MIN_CONTRAST = 50


@dataclass(frozen=True)
class VideoFormat:
    container: str  # PyAV (FFmpeg) muxer name
    codec: str
    options: tuple[tuple[str, str], ...]


# Extension -> how to write it; every one is yuv420p, hence even frame sizes throughout.
# With its macroblock tree on, x264 now and then encodes the same frames differently (seen
# at widths that are no multiple of 16); off, runs repeat byte for byte.
X264 = (("preset", "veryfast"), ("x264-params", "mbtree=0"))
FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "libx264", X264 + (("crf", "18"),)),
    "avi": VideoFormat("avi", "mpeg4", ()),
    "webm": VideoFormat("webm", "libvpx-vp9", (("deadline", "realtime"), ("cpu-used", "8"),
                                               ("crf", "28"), ("b", "0"))),
    "mkv": VideoFormat("matroska", "libx264", X264 + (("crf", "20"),)),
}
FORMAT_WEIGHTS = {"mp4": 0.4, "avi": 0.2, "webm": 0.2, "mkv": 0.2}

# Objects are drawn once at this size (fitting in a circle of diameter SPRITE) and shrunk
# from the nearest power-of-two copy per frame, which keeps edges smooth at every scale.
SPRITE = 256
MIN_CONTRAST = 80  # luma between the object and every background pixel, out of 255
MIN_SCALE_FACTOR = 1.8


class SynthError(MvitError):
    """A clip could not be written; the message is one line for the user."""


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides one clip; rendering is a pure function of it."""

    label: str
    width: int
    height: int
    fps: Fraction
    frames: int
    shape: str
    glyph: str  # the character drawn when shape == "letter", else ""
    marker: bool  # a contrasting spot inside the object, off its centre
    object_colour: tuple[int, int, int]
    marker_colour: tuple[int, int, int]
    background: str
    background_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    start: tuple[float, float]  # object centre (x, y) in the first frame, pixels
    end: tuple[float, float]  # ... and in the last
    start_size: float  # diameter of the circle the object fits in, pixels
    end_size: float
    start_angle: float  # degrees clockwise
    turn: float  # degrees clockwise over the whole clip (negative: counterclockwise)
    easing: float  # -0.4..0.4: how the motion speeds up (>0) or slows down (<0)
    noise: float  # standard deviation of the per-frame Gaussian sensor noise, grey levels
    extension: str  # a key of FORMATS
    seed: int  # the details: shape proportions, background pattern, marker place, noise
    # The wide variety's extras; their defaults are the classic clip.
    fill: str = "solid"  # a key of FILLS: how the two object colours pattern the object
    fill_colour: tuple[int, int, int] | None = None  # the second object colour
    distractors: int = 0  # still objects in the background
    blur: float = 0.0  # Gaussian blur of every frame, sigma in pixels (defocus)
    gain: float = 1.0  # exposure: every pixel v -> gain * v + offset, before noise
    offset: float = 0.0
    slant: float = 0.0  # a letter's shear (italics) and width factor: other typefaces
    stretch: float = 1.0
    quality: int = 0  # the encoder's constant rate factor, 0: the format's own
    contrast: int = MIN_CONTRAST  # luma between object and background, at least

    @property
    def duration(self) -> float:
        return self.frames / float(self.fps)


@dataclass(frozen=True)
class Motion:
    """Ground truth per frame: where the object's centre is, how big and how turned."""

    x: np.ndarray
    y: np.ndarray
    size: np.ndarray  # diameter of the enclosing circle, pixels
    angle: np.ndarray  # degrees clockwise


def folder_name(label: str) -> str:
    return label.replace(" ", "_")


def _label(label: str | int) -> str:
    if isinstance(label, (int, np.integer)):
        return LABELS[int(label)]
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}: one of {', '.join(LABELS)}")
    return label


# -- drawing a spec ---------------------------------------------------------------------------

def _luma(colour) -> float:
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def _colour(rng: np.random.Generator, accept: Callable[[float], bool]) -> tuple[int, int, int]:
    while True:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if accept(_luma(colour)):
            return colour


def _colours(rng: np.random.Generator, background: str, contrast: int = MIN_CONTRAST):
    """Object, marker and two background colours, the object clear of the whole background.

    Background pixels are blends of the two background colours, so their luma lies between
    the two; keeping both on one side of the object's luma, `contrast` away, keeps every
    pixel of the object visible (luma differences bound the largest channel difference).
    """
    if rng.random() < 0.5:
        obj = _colour(rng, lambda y: y >= 80 + contrast)
        far = lambda y: y <= _luma(obj) - contrast  # noqa: E731
    else:
        obj = _colour(rng, lambda y: y <= 175 - contrast)
        far = lambda y: y >= _luma(obj) + contrast  # noqa: E731
    first = _colour(rng, far)
    if background == "flat":
        second = first
    elif rng.random() < 0.5:  # a subtle pattern: a nearby colour
        while True:
            second = tuple(int(v) for v in np.clip(np.array(first) + rng.integers(-60, 61, 3),
                                                   0, 255))
            if far(_luma(second)):
                break
    else:  # a bold one: any colour on the same side of the object
        second = _colour(rng, far)
    marker = _colour(rng, lambda y: abs(y - _luma(obj)) >= 70)
    return obj, marker, (first, second)


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
        travel = rng.uniform(least, 0.9) * (length - 2 * r)  # at least ~27% of the frame
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


def sample_clip(rng: np.random.Generator, label: str | int,
                variety: str = "classic") -> ClipSpec:
    """Draw every free parameter of one clip of `label` (a label or its class index)."""
    label = _label(label)
    if variety == "wide":
        return _sample_wide(rng, label)
    if variety != "classic":
        raise ValueError(f"unknown variety {variety!r}: one of {', '.join(VARIETIES)}")
    width, height = _resolution(rng)
    fps = FRAME_RATES[int(rng.integers(len(FRAME_RATES)))]
    frames = max(10, round(rng.uniform(1.0, 3.0) * float(fps)))
    rotating = label.startswith("rotating")
    shape = str(rng.choice(ROTATION_SHAPES if rotating else SHAPES))
    glyph = str(rng.choice(list(ASYMMETRIC_GLYPHS if rotating else GLYPHS))) \
        if shape == "letter" else ""
    marker = (rotating and shape in NEEDS_MARKER) or bool(rng.random() < 0.4)
    background = str(rng.choice(BACKGROUNDS))
    obj, marker_colour, background_colours = _colours(rng, background)
    start, end, start_size, end_size, turn_speed = _geometry(rng, label, width, height)
    noise = 0.0 if rng.random() < 0.25 else rng.uniform(0.5, 8.0)
    extensions = list(FORMAT_WEIGHTS)
    extension = str(rng.choice(extensions, p=list(FORMAT_WEIGHTS.values())))
    return ClipSpec(
        label=label, width=width, height=height, fps=fps, frames=frames, shape=shape,
        glyph=glyph, marker=marker, object_colour=obj, marker_colour=marker_colour,
        background=background, background_colours=background_colours,
        start=(float(start[0]), float(start[1])), end=(float(end[0]), float(end[1])),
        start_size=float(start_size), end_size=float(end_size),
        start_angle=float(rng.uniform(0, 360)), turn=float(turn_speed * frames / float(fps)),
        easing=float(rng.uniform(-0.4, 0.4)), noise=float(noise), extension=extension,
        seed=int(rng.integers(2**63)))


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
    obj, marker_colour, background_colours = _colours(rng, background, contrast)
    fill = str(rng.choice(FILLS, p=[0.4, 0.2, 0.2, 0.2]))
    lumas = [_luma(c) for c in background_colours]
    if _luma(obj) > max(lumas):  # the second object colour on the object's side too
        fill_colour = _colour(rng, lambda y: y >= max(lumas) + contrast)
    else:
        fill_colour = _colour(rng, lambda y: y <= min(lumas) - contrast)
    duration = frames / float(fps)
    easing = float(rng.uniform(-0.5, 0.5))
    start, end, start_size, end_size, turn_speed = _geometry(
        rng, label, width, height, duration, wide=True, fps=float(fps), easing=easing)
    noise = 0.0 if rng.random() < 0.3 else rng.uniform(0.5, 6.0)
    extensions = list(FORMAT_WEIGHTS)
    extension = str(rng.choice(extensions, p=list(FORMAT_WEIGHTS.values())))
    gain, offset = _exposure(rng, [obj, fill_colour, marker_colour, *background_colours])
    return ClipSpec(
        label=label, width=width, height=height, fps=fps, frames=frames, shape=shape,
        glyph=glyph, marker=marker, object_colour=obj, marker_colour=marker_colour,
        background=background, background_colours=background_colours,
        start=(float(start[0]), float(start[1])), end=(float(end[0]), float(end[1])),
        start_size=float(start_size), end_size=float(end_size),
        start_angle=float(rng.uniform(0, 360)), turn=float(turn_speed * duration),
        easing=easing, noise=float(noise), extension=extension,
        seed=int(rng.integers(2**63)), fill=fill, fill_colour=fill_colour,
        distractors=int(rng.choice([0, 0, 1, 2, 3])),
        blur=float(rng.uniform(0.5, 2.0)) if rng.random() < 0.3 else 0.0,
        gain=gain, offset=offset,
        slant=float(rng.uniform(-0.35, 0.35)), stretch=float(rng.uniform(0.7, 1.3)),
        quality=int(rng.integers(18, 34)), contrast=contrast)


def _exposure(rng: np.random.Generator, colours) -> tuple[float, float]:
    """(gain, offset) of an exposure change that clips none of `colours`: clipped, the
    object could lose the contrast it was drawn with."""
    low, high = min(min(c) for c in colours), max(max(c) for c in colours)
    gain = float(rng.uniform(0.75, min(1.25, 255 / max(high - low, 1))))
    least, most = max(-25.0, -gain * low), min(25.0, 255 - gain * high)
    offset = float(rng.uniform(least, most)) if least < most else (least + most) / 2
    return gain, offset


def clip_spec(seed: int, label: str | int, index: int, variety: str = "classic") -> ClipSpec:
    """Clip `index` of a class in the dataset of `seed`.

    Each clip has its own random stream, so clip 3 is the same whether 5 or 500 clips per
    class are asked for, and a larger dataset extends a smaller one. The wide variety draws
    from streams of its own (a clip of it is no widened copy of the classic one).
    """
    label = _label(label)
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}: one of {', '.join(VARIETIES)}")
    entropy = [seed % 2**64, LABELS.index(label), index]
    if variety != "classic":
        entropy.append(VARIETIES.index(variety))
    return sample_clip(np.random.default_rng(entropy), label, variety)


def motion(spec: ClipSpec) -> Motion:
    """The object's centre, size and angle in every frame.

    Progress along the path follows (1 - e) u + e u^2 of the clip's time u, strictly
    increasing for |e| < 1, so motion never stops or reverses; sizes change geometrically,
    which looks steady to the eye.
    """
    u = np.arange(spec.frames) / max(spec.frames - 1, 1)
    f = (1 - spec.easing) * u + spec.easing * u * u
    x = spec.start[0] + (spec.end[0] - spec.start[0]) * f
    y = spec.start[1] + (spec.end[1] - spec.start[1]) * f
    size = spec.start_size * (spec.end_size / spec.start_size) ** f
    angle = spec.start_angle + spec.turn * f
    return Motion(x, y, size, angle)


# -- rendering --------------------------------------------------------------------------------

def _streams(spec: ClipSpec) -> tuple[np.random.Generator, ...]:
    """Independent generators for shape, background and noise: each part is reproducible
    without the others (the background alone, for instance)."""
    return tuple(np.random.default_rng([spec.seed, part]) for part in range(3))


def _polygon(points: list[tuple[float, float]], c: float, r: float) -> list[tuple[float, float]]:
    """Unit-circle points to sprite pixels."""
    return [(c + r * px, c + r * py) for px, py in points]


def _regular(n: int, phase: float = 0.0) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _glyph_mask(glyph: str, size: int, radius: float, slant: float = 0.0,
                stretch: float = 1.0) -> Image.Image:
    """A bold character centred in a (size, size) mask, fitting in a circle of `radius`;
    `slant` shears it (italics) and `stretch` widens or narrows it, other typefaces from the
    one font Pillow ships."""
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (3 * size, 2 * size), 0)  # room for slanted, widened ones
    ImageDraw.Draw(canvas).text((size, size // 4), glyph, fill=255, font=font)
    canvas = canvas.filter(ImageFilter.MaxFilter(2 * (size // 40) + 1))  # thin strokes vanish
    if slant or stretch != 1.0:
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                                  (1 / stretch, slant, -slant * size, 0, 1, 0),
                                  resample=Image.Resampling.BILINEAR)
    canvas = canvas.crop(canvas.getbbox())
    scale = 2 * radius / math.hypot(*canvas.size)
    canvas = canvas.resize((max(1, round(canvas.width * scale)),
                            max(1, round(canvas.height * scale))), Image.Resampling.LANCZOS)
    mask = Image.new("L", (size, size), 0)
    mask.paste(canvas, ((size - canvas.width) // 2, (size - canvas.height) // 2))
    return mask


def _body(spec: ClipSpec, rng: np.random.Generator) -> Image.Image:
    """The object's silhouette, pointing right (angle 0), in a circle of radius ~SPRITE/2."""
    c, r = SPRITE / 2, SPRITE / 2 - 2
    if spec.shape == "letter":
        return _glyph_mask(spec.glyph, SPRITE, r, spec.slant, spec.stretch)
    mask = Image.new("L", (SPRITE, SPRITE), 0)
    draw = ImageDraw.Draw(mask)
    box = lambda hx, hy: [c - r * hx, c - r * hy, c + r * hx, c + r * hy]  # noqa: E731
    shape = spec.shape
    if shape == "circle":
        draw.ellipse(box(1, 1), fill=255)
    elif shape == "ring":
        draw.ellipse(box(1, 1), fill=255)
        inner = rng.uniform(0.45, 0.7)
        draw.ellipse(box(inner, inner), fill=0)
    elif shape == "ellipse":
        draw.ellipse(box(1, rng.uniform(0.35, 0.65)), fill=255)
    elif shape == "square":
        half = rng.uniform(0.66, 0.7)  # corners on the circle at 0.707
        draw.rounded_rectangle(box(half, half), radius=rng.uniform(0, 0.25) * r * half,
                               fill=255)
    elif shape == "bar":
        draw.rectangle(box(0.95, rng.uniform(0.2, 0.32)), fill=255)
    elif shape == "triangle":
        # Isosceles with a sharper apex than 60 degrees: it points somewhere, even turning.
        base = math.radians(rng.uniform(25, 45))
        points = [(1, 0), (-math.cos(base), math.sin(base)), (-math.cos(base), -math.sin(base))]
        draw.polygon(_polygon(points, c, r), fill=255)
    elif shape == "star":
        n, inner = int(rng.integers(5, 8)), rng.uniform(0.4, 0.55)
        points = [(p[0] * (1 if k % 2 == 0 else inner), p[1] * (1 if k % 2 == 0 else inner))
                  for k, p in enumerate(_regular(2 * n))]
        draw.polygon(_polygon(points, c, r), fill=255)
    elif shape == "polygon":
        draw.polygon(_polygon(_regular(int(rng.integers(5, 9))), c, r), fill=255)
    elif shape == "cross":
        arm = rng.uniform(0.2, 0.35)
        draw.rectangle(box(0.7, arm), fill=255)
        draw.rectangle(box(arm, 0.7), fill=255)
    elif shape == "arrow":
        shaft = rng.uniform(0.16, 0.26)
        draw.rectangle([c - 0.9 * r, c - shaft * r, c + 0.25 * r, c + shaft * r], fill=255)
        draw.polygon(_polygon([(0.95, 0), (0.2, 0.55), (0.2, -0.55)], c, r), fill=255)
    elif shape == "ell":
        t = rng.uniform(0.3, 0.45)
        draw.rectangle([c - 0.6 * r, c - 0.7 * r, c + (t - 0.6) * r, c + 0.7 * r], fill=255)
        draw.rectangle([c - 0.6 * r, c + (0.7 - t) * r, c + 0.6 * r, c + 0.7 * r], fill=255)
    elif shape == "blob":  # a smooth random outline: low harmonics of the radius
        angles = np.linspace(0, 2 * math.pi, 180, endpoint=False)
        radius = np.ones_like(angles)
        for k in range(1, 5):
            radius += rng.uniform(0.05, 0.25) / k * np.cos(k * angles + rng.uniform(0, 6.3))
        radius /= radius.max()
        draw.polygon([(c + r * q * math.cos(a), c + r * q * math.sin(a))
                      for q, a in zip(radius, angles, strict=True)], fill=255)
    elif shape == "heart":  # the classic parametric heart, tip pointing right
        t = np.linspace(0, 2 * math.pi, 200, endpoint=False)
        hx = 16 * np.sin(t) ** 3
        hy = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        scale = 1 / np.hypot(hx, hy - 2).max()
        draw.polygon([(c - r * scale * (y - 2), c + r * scale * x)
                      for x, y in zip(hx, hy, strict=True)], fill=255)
    elif shape == "crescent":
        draw.ellipse(box(1, 1), fill=255)
        shift, inner = rng.uniform(0.3, 0.55), rng.uniform(0.75, 0.95)
        draw.ellipse([c + (shift - inner) * r, c - inner * r, c + (shift + inner) * r,
                      c + inner * r], fill=0)
    elif shape == "key":  # a ring on a shaft with one tooth
        draw.ellipse([c - 0.95 * r, c - 0.45 * r, c - 0.05 * r, c + 0.45 * r], fill=255)
        draw.ellipse([c - 0.68 * r, c - 0.16 * r, c - 0.34 * r, c + 0.16 * r], fill=0)
        draw.rectangle([c - 0.2 * r, c - 0.15 * r, c + 0.9 * r, c + 0.15 * r], fill=255)
        draw.rectangle([c + 0.5 * r, c + 0.15 * r, c + 0.78 * r, c + 0.45 * r], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    if rng.random() < 0.5:  # either handedness of chiral shapes
        mask = mask.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return mask


def _marker(body: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A spot inside the body, off centre (towards one end of elongated shapes, which lie
    along x): a turn of the whole object then shows even where its outline hardly does."""
    empty = Image.new("L", body.size, 0)
    c, r = SPRITE / 2, SPRITE / 2 - 2
    for attempt in range(12):
        direction = (rng.choice([0.0, math.pi]) + rng.uniform(-0.3, 0.3) if attempt < 4
                     else rng.uniform(0, 2 * math.pi))
        distance, radius = rng.uniform(0.4, 0.6) * r, rng.uniform(0.15, 0.25) * r
        x, y = c + distance * math.cos(direction), c + distance * math.sin(direction)
        disk = empty.copy()
        ImageDraw.Draw(disk).ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
        spot = np.minimum(np.asarray(disk), np.asarray(body))
        if (spot > 127).sum() >= 0.5 * math.pi * radius * radius:
            return Image.fromarray(spot)
    return empty


def _fill_pattern(spec: ClipSpec, rng: np.random.Generator) -> Image.Image:
    """The object's texture (how much of the second colour, 0-255), drawn on the sprite so
    that it turns and scales with the object."""
    if spec.fill == "solid":
        return Image.new("L", (SPRITE, SPRITE), 0)
    ys, xs = np.mgrid[0:SPRITE, 0:SPRITE].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    if spec.fill == "stripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * along / rng.uniform(20, 80))
    elif spec.fill == "gradient":
        t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    elif spec.fill == "noise":
        cells = int(rng.integers(3, 10))
        grid = rng.random((cells, cells)).astype(np.float32)
        t = np.asarray(Image.fromarray(grid, "F").resize((SPRITE, SPRITE),
                                                          Image.Resampling.BICUBIC))
    else:
        raise ValueError(f"unknown fill {spec.fill!r}")
    return Image.fromarray(np.round(255 * np.clip(t, 0, 1)).astype(np.uint8))


def _sprites(spec: ClipSpec, rng: np.random.Generator) -> list[Image.Image]:
    """The object as an RGB image (red: body coverage, green: marker, blue: the second
    colour's share of the fill), halved repeatedly."""
    body = _body(spec, rng)
    marker = _marker(body, rng) if spec.marker else Image.new("L", body.size, 0)
    pattern = _fill_pattern(spec, np.random.default_rng([spec.seed, 3]))
    sprite = Image.merge("RGB", (body, marker, pattern))
    levels = [sprite]
    while levels[-1].width > 8:
        levels.append(levels[-1].reduce(2))
    return levels[::-1]  # smallest first


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


def _background(spec: ClipSpec, rng: np.random.Generator) -> np.ndarray:
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
        still = ClipSpec(**{**spec.__dict__, "shape": shape, "glyph": glyph,
                            "seed": int(rng.integers(2**63)), "fill": "solid",
                            "marker": False, "distractors": 0})
        levels = _sprites(still, np.random.default_rng([still.seed, 0]))
        size = rng.uniform(0.1, 0.3) * short
        cover = _coverage(levels, still, rng.uniform(size / 2, w - size / 2),
                          rng.uniform(size / 2, h - size / 2), size, rng.uniform(0, 360))
        colour = np.array(_colour(rng, lambda y: True), np.float32)
        ground = ground + cover[..., :1] * (colour - ground)
    return ground


def background(spec: ClipSpec) -> np.ndarray:
    """The clip's empty background, (H, W, 3) uint8, as exposed but without blur or noise:
    frame minus this shows where the object is."""
    _, rng, _ = _streams(spec)
    return np.clip(np.round(_exposed(_background(spec, rng), spec)), 0, 255).astype(np.uint8)


def _exposed(frame: np.ndarray, spec: ClipSpec) -> np.ndarray:
    if spec.gain == 1.0 and spec.offset == 0.0:
        return frame
    return frame * spec.gain + spec.offset


def _coverage(levels: list[Image.Image], spec: ClipSpec, x: float, y: float, size: float,
              angle: float) -> np.ndarray:
    """(H, W, 3) float32 body and marker coverage, and the fill pattern, of one frame.

    One affine warp per frame places, turns and scales the sprite with sub-pixel accuracy;
    it samples from the smallest copy at least as large as the object, so it never skips
    over sprite pixels (which would alias edges).
    """
    sprite = next((s for s in levels if s.width >= size), levels[-1])
    k = sprite.width / size
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    half = sprite.width / 2
    # Output pixel q maps to sprite point half + k R(-angle) (q - centre).
    data = (k * cos, k * sin, half - k * (cos * x + sin * y),
            -k * sin, k * cos, half - k * (-sin * x + cos * y))
    warped = sprite.transform((spec.width, spec.height), Image.Transform.AFFINE, data,
                              resample=Image.Resampling.BILINEAR)
    return np.asarray(warped, np.float32) / 255


def render(spec: ClipSpec) -> np.ndarray:
    """The clip as (frames, H, W, 3) uint8 RGB."""
    shape_rng, background_rng, noise_rng = _streams(spec)
    levels = _sprites(spec, shape_rng)
    ground = _background(spec, background_rng)
    obj = np.array(spec.object_colour, np.float32)
    other = np.array(spec.fill_colour or spec.object_colour, np.float32)
    spot = np.array(spec.marker_colour, np.float32)
    path = motion(spec)
    clip = np.empty((spec.frames, spec.height, spec.width, 3), np.uint8)
    for i in range(spec.frames):
        cover = _coverage(levels, spec, path.x[i], path.y[i], path.size[i], path.angle[i])
        colour = obj if spec.fill == "solid" else obj + cover[..., 2:3] * (other - obj)
        frame = ground + cover[..., :1] * (colour - ground)
        frame += cover[..., 1:2] * (spot - frame)
        frame = _exposed(frame, spec)
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


# -- writing ----------------------------------------------------------------------------------

def encode(frames: np.ndarray, spec: ClipSpec, path: Path) -> None:
    """Write frames as a video in the spec's container, codec and frame rate."""
    form = FORMATS[spec.extension]
    # Bit-exact muxing leaves out random file ids and version strings, so the same seed
    # writes the same bytes (see FORMATS for x264's part; small frames gain nothing from
    # encoder threads).
    with av.open(str(path), "w", format=form.container,
                 container_options={"fflags": "+bitexact"}) as container:
        options = {"threads": "1", **dict(form.options)}
        if spec.quality and "crf" in options:
            options["crf"] = str(spec.quality)
        stream = container.add_stream(form.codec, rate=spec.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        if form.codec == "mpeg4":  # its default 200 kb/s smears small frames
            bits_per_pixel = 1.5 if not spec.quality else 1.5 * 2 ** ((18 - spec.quality) / 6)
            stream.bit_rate = int(spec.width * spec.height * float(spec.fps) * bits_per_pixel)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_clip(spec: ClipSpec, path: Path) -> None:
    """Render and encode one clip to `path`, which appears only once complete.

    Writing goes to a temporary name first, so an interrupted run leaves no truncated video
    for a later training run to trip over.
    """
    try:
        with atomic_path(path, suffix=".part") as partial:
            encode(render(spec), spec, partial)
    except (OSError, av.FFmpegError) as exc:
        hint = ""
        if FORMATS[spec.extension].codec.startswith("libvpx") and "decord" in sys.modules:
            hint = " (decord was loaded before PyAV, whose VP9 encoder then fails: import av first)"
        raise SynthError(f"cannot write {path}: {exc}{hint}") from exc


def _remove_other_formats(path: Path) -> None:
    """A rerun with another seed may have written this clip in another container: without
    this, the folder would hold the clip twice."""
    for extension in FORMATS:
        other = path.with_suffix(f".{extension}")
        if other != path:
            try:
                other.unlink(missing_ok=True)
            except OSError as exc:
                raise SynthError(f"cannot remove {other}: {exc.strerror or exc}") from exc


def write_dataset(out_dir: Path | str, per_class: int, seed: int,
                  progress: Callable[[Path, str], None] | None = None,
                  variety: str = "classic", jobs: int = 1) -> list[tuple[Path, str]]:
    """Write `per_class` clips of every class under out_dir/<label_with_underscores>/.

    Also writes out_dir/labels.txt, the labels in class-index order. Clips are made one of
    each class in turn, so a run stopped early still has balanced classes. `progress` is
    called after each clip with its path and label. `variety`: one of VARIETIES; `jobs`:
    processes rendering at once (the files are the same whatever the number). Returns
    (path, label) per clip.
    """
    out_dir = Path(out_dir)
    try:
        for label in LABELS:
            (out_dir / folder_name(label)).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SynthError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc
    plan = []
    for index in range(per_class):
        for label in LABELS:
            spec = clip_spec(seed, label, index, variety)
            path = out_dir / folder_name(label) / f"{index:05d}.{spec.extension}"
            plan.append((spec, path))
    written = []
    for spec, path in _written(plan, jobs):
        written.append((path, spec.label))
        if progress is not None:
            progress(path, spec.label)
    return written


def _write_one(spec: ClipSpec, path: Path) -> None:
    _remove_other_formats(path)
    write_clip(spec, path)


def _written(plan: list[tuple[ClipSpec, Path]], jobs: int):
    """Each (spec, path) of `plan` once its file is written, in order; `jobs` processes."""
    if jobs <= 1:
        for spec, path in plan:
            _write_one(spec, path)
            yield spec, path
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque = deque()
        try:
            for spec, path in plan:
                pending.append((spec, path, pool.submit(_write_one, spec, path)))
                while len(pending) > 4 * jobs:
                    done = pending.popleft()
                    done[2].result()
                    yield done[0], done[1]
            while pending:
                done = pending.popleft()
                done[2].result()
                yield done[0], done[1]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
