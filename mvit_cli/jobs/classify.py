"""One file's result: what every front end yields and every output format writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FileResult:
    """Top-k labels of one input file, or why there are none.

    `duration` is the video's length in seconds (None for images), `frames` the number of
    frames of the file that decode, `views` how many clips x crops were scored and averaged,
    `warning` what to know about labels that were still given (a damaged file classified
    from the frames that decode).
    """

    path: str
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str = ""
    duration: float | None = None
    frames: int | None = None
    views: int = 0
    warning: str = ""
    feature: Any = None  # the pooled feature (numpy float32, (width,)) when asked for

    @property
    def ok(self) -> bool:
        return not self.error

    def top(self) -> list[dict[str, float | str]]:
        """[{"label": ..., "score": ...}, ...], best first (a pipeline call's answer)."""
        return [{"label": label, "score": score} for label, score in zip(self.labels, self.scores, strict=True)]
