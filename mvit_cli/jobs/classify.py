"""The classify job: one row per input file, its views' mean softmax turned into top labels.

What every front end yields and every output format writes is a `FileResult`; how a file's
views become that row (the mean of the views' softmax, as in the papers' multi-view testing,
then the top k) is `ClassifyJob.finish`, the one place both engines take it from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ..media.discover import InputItem, kind_error
from ..media.protocol import Protocol
from .tasks import Task

if TYPE_CHECKING:
    import torch


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
        return [{"label": label, "score": score}
                for label, score in zip(self.labels, self.scores, strict=True)]


@dataclass(frozen=True)
class ClassifyJob:
    """Labels per file: which files become tasks, and how their scored views become rows."""

    labels: Sequence[str]
    protocol: Protocol
    video: bool  # a video model (an image model takes images only, and vice versa)
    top_k: int = 5
    features: bool = False  # also each file's pooled feature (the head's input)

    def task(self, index: int, item: InputItem) -> Task | FileResult:
        """The decoding task for an input, or its error row when it cannot be one."""
        error = item.error or kind_error(item.kind, self.video)
        if error:
            return FileResult(item.path, error=error)
        return Task(index, item.path, item.kind)

    def top(self, mean: torch.Tensor) -> tuple[list[str], list[float]]:
        """The best `top_k` labels of a mean softmax (classes,), best first."""
        scores, indices = mean.topk(min(self.top_k, mean.numel()))
        return [self.labels[i] for i in indices.tolist()], [float(s) for s in scores]

    def finish_views(self, result: FileResult, probs: torch.Tensor) -> FileResult:
        """A file's row from all its views' softmax (views, classes) at once, summed in the
        order the local engine sums a file's views as their batches come back, so both
        engines give the same bits."""
        total = probs[0]
        for row in probs[1:]:
            total = total + row
        return self.finish(result, total, len(probs))

    def finish(self, result: FileResult, probs_sum: torch.Tensor, views: int,
               features_sum: torch.Tensor | None = None) -> FileResult:
        """A file's row from the sum of its views' softmax (and pooled features)."""
        result.labels, result.scores = self.top(probs_sum / views)
        if features_sum is not None:
            result.feature = (features_sum / views).numpy()
        return result
