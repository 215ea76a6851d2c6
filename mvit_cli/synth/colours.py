"""Colours drawn so that the object stays visible: every choice is made by luma, the
brightness the eye (and a model's first layers) mostly sees."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .spec import MIN_CONTRAST


def luma(colour: tuple[int, int, int]) -> float:
    """Brightness as video codecs weigh it (BT.601), the measure of contrast throughout."""
    r, g, b = colour
    return 0.299 * r + 0.587 * g + 0.114 * b


def random_colour(rng: np.random.Generator,
                  accept: Callable[[float], bool]) -> tuple[int, int, int]:
    """A uniformly random colour whose luma `accept` takes (drawn again until it does)."""
    while True:
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if accept(luma(colour)):
            return colour


def palette(rng: np.random.Generator, background: str, contrast: int = MIN_CONTRAST):
    """Object, marker and two background colours, the object clear of the whole background.

    Background pixels are blends of the two background colours, so their luma lies between
    the two; keeping both on one side of the object's luma, `contrast` away, keeps every
    pixel of the object visible (luma differences bound the largest channel difference).
    """
    if rng.random() < 0.5:
        obj = random_colour(rng, lambda y: y >= 80 + contrast)
        far = lambda y: y <= luma(obj) - contrast  # noqa: E731
    else:
        obj = random_colour(rng, lambda y: y <= 175 - contrast)
        far = lambda y: y >= luma(obj) + contrast  # noqa: E731
    first = random_colour(rng, far)
    if background == "flat":
        second = first
    elif rng.random() < 0.5:  # a subtle pattern: a nearby colour
        while True:
            second = tuple(int(v) for v in np.clip(np.array(first) + rng.integers(-60, 61, 3),
                                                   0, 255))
            if far(luma(second)):
                break
    else:  # a bold one: any colour on the same side of the object
        second = random_colour(rng, far)
    marker = random_colour(rng, lambda y: abs(y - luma(obj)) >= 70)
    return obj, marker, (first, second)


def exposure(rng: np.random.Generator, colours) -> tuple[float, float]:
    """(gain, offset) of an exposure change that clips none of `colours`: clipped, the
    object could lose the contrast it was drawn with."""
    low, high = min(min(c) for c in colours), max(max(c) for c in colours)
    gain = float(rng.uniform(0.75, min(1.25, 255 / max(high - low, 1))))
    least, most = max(-25.0, -gain * low), min(25.0, 255 - gain * high)
    offset = float(rng.uniform(least, most)) if least < most else (least + most) / 2
    return gain, offset
