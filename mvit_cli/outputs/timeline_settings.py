"""What turns a video's windows into the timeline's rows and segments."""

from __future__ import annotations

from ..jobs.timeline import VideoTimeline
from ..jobs.segments import Segment, segments


class Settings:
    """The class names, the labels per window in rows (`top_k`), and how segments are made:
    windows averaged over (`smooth`), the score a window's label needs (`threshold`) and the
    seconds a segment lasts at least (`min_segment`)."""

    def __init__(self, labels: list[str], top_k: int, smooth: int, threshold: float,
                 min_segment: float = 0.0) -> None:
        self.labels, self.top_k, self.smooth, self.threshold = labels, top_k, smooth, threshold
        self.min_segment = min_segment

    def segments(self, video: VideoTimeline) -> list[Segment]:
        return segments(video.windows, self.labels, video.duration, self.smooth, self.threshold,
                        self.min_segment)
