"""The timeline job: labels over time, one row per window of a video.

A video is first probed for its length (one task), then cut into stretches of windows, each
stretch one task that seeks once and decodes forward (media/sequential.py); a window's row is
its views' softmax (and pooled feature). `VideoTimeline` is what every front end yields and
every timeline format writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..media.discover import InputItem, kind_error
from ..media.protocol import Protocol
from ..media.windows import Windowing
from .tasks import Task

# Bytes of views one stretch of windows hands back (a worker task's result, in a pipe).
STRETCH_BYTES = 64 * 1024**2


@dataclass
class Window:
    start: float
    end: float
    probs: np.ndarray  # (classes,) softmax, float32
    feature: np.ndarray | None = None  # the head's input, when features are asked for


@dataclass
class VideoTimeline:
    path: str
    duration: float = 0.0
    windows: list[Window] = field(default_factory=list)
    error: str = ""
    frames_decoded: int = 0

    @property
    def ok(self) -> bool:
        return not self.error


def windows_per_stretch(protocol: Protocol) -> int:
    """Windows per worker task: up to 64 (one seek for about a minute of video at a one-
    second stride), fewer where their views would pass STRETCH_BYTES (26 for B-16x4)."""
    view_bytes = protocol.frames * protocol.crop ** 2 * 3
    return int(min(64, max(4, STRETCH_BYTES // view_bytes)))


@dataclass(frozen=True)
class TimelineJob:
    """Windows per video: which videos become probe tasks, which windows each stretch task
    decodes, and how a scored window becomes a row."""

    protocol: Protocol
    windowing: Windowing
    features: bool = False

    def probe(self, index: int, item: InputItem) -> Task | VideoTimeline:
        """The probe task for an input, or its error row when it cannot be a timeline."""
        error = item.error or kind_error(item.kind, True)
        if item.kind == "image":
            error = "an image: a timeline needs a video"
        if error:
            return VideoTimeline(item.path, error=error)
        return Task(index, item.path, "video", job="probe")

    def stretches(self, index: int, video: VideoTimeline, done: set[float]) -> list[Task]:
        """The tasks decoding a probed video's windows, skipping the starts `done` already
        (a resumed run), in stretches of `windows_per_stretch`."""
        per_stretch = windows_per_stretch(self.protocol)
        starts = self.windowing.starts(video.duration)
        todo = [float(s) for s in starts if not any(abs(s - d) < 1e-6 for d in done)]
        return [Task(index, video.path, "video", job="windows",
                     starts=tuple(todo[first:first + per_stretch]), windowing=self.windowing,
                     duration=video.duration)
                for first in range(0, len(todo), per_stretch)]

    def window(self, video: VideoTimeline, start: float, probs: np.ndarray,
               feature: np.ndarray | None) -> Window:
        return Window(start, min(start + self.windowing.length, video.duration), probs, feature)

    @staticmethod
    def finished(video: VideoTimeline) -> VideoTimeline:
        video.windows.sort(key=lambda w: w.start)
        return video
