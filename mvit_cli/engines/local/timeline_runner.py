"""The timeline engine: sliding windows over whole videos, through the classify pipeline.

The same decoding workers (with their per-task deadline), the same model and batching as
`Pipeline.classify`: a video is first probed for its length (a worker task), then cut into
stretches of windows; each stretch is one worker task that seeks once and decodes forward
(media/sequential.py), and the windows' views from every stretch and every video share the
model's batches. Results come back per video, windows in time order, as each video is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .workers import DecodePool, Prepared, Task, inline
from ...media.discover import InputItem, kind_error
from ...media.protocol import Protocol
from ...media.windows import Windowing

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


# uint8 views (B, T, c, c, 3) -> (softmax (B, classes), features (B, width) or None)
Score = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def windows_per_stretch(protocol: Protocol) -> int:
    """Windows per worker task: up to 64 (one seek for about a minute of video at a one-
    second stride), fewer where their views would pass STRETCH_BYTES (26 for B-16x4)."""
    view_bytes = protocol.frames * protocol.crop ** 2 * 3
    return int(min(64, max(4, STRETCH_BYTES // view_bytes)))


class TimelineRunner:
    def __init__(self, score: Score, protocol: Protocol, windowing: Windowing,
                 device_type: str = "cpu", batch_size: int = 8,
                 decoder_messages: bool = False) -> None:
        self.score, self.protocol, self.windowing = score, protocol, windowing
        self.device_type, self.batch_size = device_type, max(1, batch_size)
        self.decoder_messages = decoder_messages

    def run(self, items: list[InputItem], workers: int, timeout: float,
            skip: Callable[[str], set[float]] | None = None,
            on_probe: Callable[[str, float], None] | None = None,
            pool: DecodePool | None = None) -> Iterator[VideoTimeline]:
        """One VideoTimeline per item. `skip(path)`: window starts already done (resume);
        `on_probe(path, seconds)`: a video's length, once known (for progress); `pool`:
        decoders the caller keeps open across runs (a Ray node's, for one), which this
        run then neither starts nor closes."""
        skip = skip or (lambda path: set())
        videos: dict[int, VideoTimeline] = {}
        probes: list[Task] = []
        for index, item in enumerate(items):
            error = item.error or kind_error(item.kind, True)
            if item.kind == "image":
                error = "an image: a timeline needs a video"
            if error:
                yield VideoTimeline(item.path, error=error)
            else:
                videos[index] = VideoTimeline(item.path)
                probes.append(Task(index, item.path, "video", job="probe"))
        if not probes:
            return
        owned = pool is None and workers > 0
        if pool is not None:
            pool.take_turns = False  # a classify run on the same pool may have set it
        elif owned:
            pool = DecodePool(min(workers, len(probes)), self.protocol, timeout,
                              quiet=not self.decoder_messages, prefetch=self.batch_size)
        try:
            yield from self._run(pool, probes, videos, skip, on_probe)
        finally:
            if owned:
                pool.close()

    def _results(self, pool, tasks: list[Task]) -> Iterator[Prepared]:
        source = pool.run(tasks) if pool is not None else inline(tasks, self.protocol)
        for result in source:
            if result is not None:
                yield result

    def _run(self, pool, probes, videos, skip, on_probe) -> Iterator[VideoTimeline]:
        stretches: list[Task] = []
        remaining: dict[int, int] = {}  # video -> stretches still to come
        starts_of: dict[int, np.ndarray] = {}
        per_stretch = windows_per_stretch(self.protocol)
        for result in self._results(pool, probes):
            video = videos[result.index]
            if result.error:
                video.error = result.error
                continue
            video.duration = result.duration
            if on_probe is not None:
                on_probe(video.path, result.duration)
            done = skip(video.path)
            starts = self.windowing.starts(result.duration)
            starts_of[result.index] = starts
            todo = [float(s) for s in starts if not any(abs(s - d) < 1e-6 for d in done)]
            for first in range(0, len(todo), per_stretch):
                stretches.append(Task(result.index, video.path, "video", job="windows",
                                      starts=tuple(todo[first:first + per_stretch]),
                                      windowing=self.windowing, duration=result.duration))
            remaining[result.index] = -(-len(todo) // per_stretch)
        for index, video in videos.items():  # probe failures, and videos with nothing to do
            if video.error or remaining.get(index) == 0:
                yield video
        queue: list[tuple[int, float, np.ndarray]] = []  # (video, start, view)
        for result in self._results(pool, stretches):
            video = videos[result.index]
            remaining[result.index] -= 1
            if result.error:
                video.error = video.error or result.error
            else:
                video.frames_decoded += result.source_frames
                queue.extend((result.index, start, view)
                             for start, view in zip(result.starts, result.views, strict=True))
            while len(queue) >= self.batch_size:
                self._score(queue[:self.batch_size], videos)
                del queue[:self.batch_size]
            if remaining[result.index] == 0:
                if queue:
                    self._score(queue, videos)
                    queue.clear()
                yield self._finished(video)

    def _score(self, batch, videos) -> None:
        views = torch.from_numpy(np.stack([view for _, _, view in batch]))
        probs, features = self.score(views)
        for row, (index, start, _) in enumerate(batch):
            videos[index].windows.append(Window(
                start, min(start + self.windowing.length, videos[index].duration),
                probs[row].numpy(), None if features is None else features[row].numpy()))

    @staticmethod
    def _finished(video: VideoTimeline) -> VideoTimeline:
        video.windows.sort(key=lambda w: w.start)
        return video


def as_items(paths: Iterable) -> list[InputItem]:
    from ...media.discover import find_inputs

    items, arguments = [], []
    for path in paths:
        (items if isinstance(path, InputItem) else arguments).append(path)
    return items + (find_inputs([str(a) for a in arguments]).items if arguments else [])
