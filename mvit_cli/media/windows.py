"""Sliding windows over a whole video: where each window is, and the moments it samples.

A window is one clip sampled as the weights' protocol samples a clip: T frames `interval`
seconds apart (its length is T x interval), or, for protocols that spread T frames over a
whole short clip ("uniform"), T frames at the centres of T equal slices of a window of a
chosen length. Windows start every `stride` seconds; the last one ends at the end of the
video, so the whole video is covered; a video shorter than a window is one window (its last
frame repeated, as for a clip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UsageError
from .protocol import Protocol

@dataclass(frozen=True)
class Windowing:
    length: float  # seconds
    stride: float  # seconds between window starts

    def starts(self, duration: float) -> np.ndarray:
        """Window start times covering [0, duration]."""
        if duration <= self.length:
            return np.zeros(1)
        count = int(np.floor((duration - self.length) / self.stride + 1e-9)) + 1
        starts = np.arange(count) * self.stride
        last = duration - self.length
        if last - starts[-1] > 1e-6:  # the tail: one more window, ending at the end
            starts = np.append(starts, last)
        return starts


def windowing_for(protocol: Protocol, window: float | None, stride: float | None) -> Windowing:
    """The protocol's window (or `window` seconds for uniform protocols); stride: half of it."""
    if protocol.frame_interval > 0:
        if window is not None and abs(window - protocol.clip_duration) > 1e-6:
            raise UsageError(f"--window: these weights sample {protocol.frames} frames "
                             f"{protocol.frame_interval:.4g} s apart, a window of "
                             f"{protocol.clip_duration:.4g} s; --window applies to weights that "
                             "spread their frames over a clip")
        length = protocol.clip_duration
    else:
        length = 2.0 if window is None else window
    if length <= 0:
        raise UsageError("--window: a positive number of seconds")
    stride = length / 2 if stride is None else stride
    if stride <= 0:
        raise UsageError("--stride: a positive number of seconds")
    return Windowing(length, stride)


def sample_times(start: float, windowing: Windowing, protocol: Protocol,
                 duration: float) -> np.ndarray:
    """The T moments (seconds) the window starting at `start` samples."""
    frames = protocol.frames
    if protocol.frame_interval > 0:
        offsets = np.arange(frames) * protocol.frame_interval
    else:
        span = min(windowing.length, max(duration - start, 0.0)) or windowing.length
        offsets = (np.arange(frames) + 0.5) * span / frames
    return start + offsets
