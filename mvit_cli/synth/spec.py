"""What a clip is made of: the eight labels, the choices each variety draws from, and
`ClipSpec`, the few numbers that decide one clip."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

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
MIN_CONTRAST = 80  # luma between the object and every background pixel, out of 255
WIDE_MIN_CONTRAST = 50  # the wide variety's least contrast


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


def known_label(label: str | int) -> str:
    """`label` as its text, from the text or the class index; anything else is refused."""
    if isinstance(label, (int, np.integer)):
        return LABELS[int(label)]
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}: one of {', '.join(LABELS)}")
    return label
