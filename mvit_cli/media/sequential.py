"""Decoding a stretch of a video once, in order, for many windows at a time.

A timeline's windows overlap and share frames; seeking for each would decode every frame
several times. Here a worker seeks once, to the keyframe before the stretch, and decodes
forward, handing each sample time the frame on screen then (the last frame that started by
it, as for a clip). Only the frames some sample time takes are converted, and only until
their windows are made into views, so memory follows the windows that overlap the current
moment, whatever the video's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decode import (MediaError, _openable, check_readable, decoded_frames, pyav_video,
                     rgb_array)
from .protocol import Protocol
from .transform import make_views
from .windows import Windowing, sample_times


@dataclass
class Probe:
    duration: float  # seconds
    frames: int  # as the container lists them (0: unknown)
    fps: float


def probe(path: str) -> Probe:
    """A video's length from its header (decoded through, only when the header says none)."""
    check_readable(path_of(path))
    with _openable(path_of(path)) as name:
        with pyav_video(name) as (container, stream):
            fps = float(stream.average_rate or stream.guessed_rate or 30)
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1e6
            if not duration or duration <= 0:
                times = [f.time for f in decoded_frames(container, stream) if f.time is not None]
                if not times:
                    raise MediaError("not a readable video: no frame of it decodes")
                duration = max(times) + 1.0 / fps
            return Probe(duration, int(stream.frames or 0), fps)


def path_of(path: str):
    from pathlib import Path

    return Path(path)


def window_views(path: str, starts: list[float], windowing: Windowing, protocol: Protocol,
                 duration: float) -> tuple[np.ndarray, int]:
    """Views (windows, T, crop, crop, 3) uint8 of the windows starting at `starts` (sorted),
    and how many frames were decoded for them.

    A window's view is made as soon as its last moment has a frame, and its frames are let
    go: what is held at once is the few windows that overlap the current moment.
    """
    per_window = protocol.frames
    times = np.concatenate([sample_times(s, windowing, protocol, duration) for s in starts])
    order = np.argsort(times, kind="stable")
    chosen: list[np.ndarray | None] = [None] * len(times)
    missing = [per_window] * len(starts)  # moments of each window still without a frame
    views: list[np.ndarray | None] = [None] * len(starts)
    one_clip = _one_clip(protocol)
    first_frame: list[np.ndarray] = []

    def give(sample: int, frame: np.ndarray) -> None:
        chosen[sample] = frame
        window = sample // per_window
        missing[window] -= 1
        if missing[window] == 0:
            rows = range(window * per_window, (window + 1) * per_window)
            views[window] = make_views(np.stack([chosen[r] for r in rows]), one_clip)[0]
            for r in rows:
                chosen[r] = None

    decoded = 0
    with _openable(path_of(path)) as name:
        with pyav_video(name) as (container, stream):
            first = float(times[order[0]])
            if first > 0 and stream.time_base is not None:
                # To the keyframe at or before the stretch: frames from there decode right.
                container.seek(int(first / stream.time_base), stream=stream, backward=True,
                               any_frame=False)
            target = protocol.resize_target()
            pending = 0  # next moment (in time order) to give a frame
            previous, previous_rgb = None, None
            fps = float(stream.average_rate or 30)
            for frame in decoded_frames(container, stream):
                decoded += 1
                seconds = frame.time if frame.time is not None else decoded / fps
                while pending < len(order) and times[order[pending]] < seconds - 1e-3:
                    if previous is None:
                        # A moment before the first frame that came (after the seek, or a
                        # late first timestamp) takes that first frame.
                        if not first_frame:
                            first_frame.append(rgb_array(frame, target))
                        give(int(order[pending]), first_frame[0])
                    else:
                        if previous_rgb is None:
                            previous_rgb = rgb_array(previous, target)
                        give(int(order[pending]), previous_rgb)
                    pending += 1
                if pending == len(order):
                    break
                previous, previous_rgb = frame, None
            if previous is None:
                raise MediaError("not a readable video: no frame of it decodes")
            last = previous_rgb if previous_rgb is not None else rgb_array(previous, target)
            for position in range(pending, len(order)):  # past the last frame: it stays
                give(int(order[position]), last)
    return np.stack(views), decoded


def _one_clip(protocol: Protocol) -> Protocol:
    from dataclasses import replace

    return replace(protocol, clips=1)
