"""The unit of decoding work that jobs hand to engines, and what a decoder hands back.

Defined beside the jobs, not the engines, because jobs make tasks and read results while
each engine only carries them: the local engine to its worker processes, the Ray engine to
its nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..media.windows import Windowing


@dataclass
class Task:
    index: int
    path: str
    kind: str
    # "classify": the protocol's views of the file; "probe": its length; "windows": the
    # views of the timeline windows starting at `starts` (seconds) of a `duration`-long video.
    job: str = "classify"
    starts: tuple[float, ...] = ()
    windowing: Windowing | None = None
    duration: float = 0.0


@dataclass
class Prepared:
    index: int
    views: np.ndarray | None = None  # (views, T, crop, crop, 3) uint8
    error: str = ""
    duration: float = 0.0
    source_frames: int = 0
    warning: str = ""
    fps: float = 0.0
    starts: tuple[float, ...] = ()  # the windows the views are of ("windows" tasks)
