"""The ground-truth motion of a clip, frame by frame, computed from its spec alone: what the
renderer draws and what the tests check the pixels against."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import ClipSpec


@dataclass(frozen=True)
class Motion:
    """Ground truth per frame: where the object's centre is, how big and how turned."""

    x: np.ndarray
    y: np.ndarray
    size: np.ndarray  # diameter of the enclosing circle, pixels
    angle: np.ndarray  # degrees clockwise


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
