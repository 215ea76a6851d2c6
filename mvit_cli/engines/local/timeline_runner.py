"""The local engine's timeline loop: the timeline job's tasks through the decoding workers,
and every video's windows through the backend in shared batches.

The same decoding workers (with their per-task deadline), backend and batching as the
classify loop: each video's probe task first, then its stretches of windows; the windows'
views from every stretch and every video share the batches. Results come back per video,
windows in time order, as each video is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from ...jobs.tasks import Prepared, Task
from ...jobs.timeline import TimelineJob, VideoTimeline
from ...media.discover import InputItem
from .workers import DecodePool, inline

# uint8 views (B, T, c, c, 3) -> (softmax (B, classes), features (B, width) or None)
Score = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


class TimelineRunner:
    def __init__(self, score: Score, job: TimelineJob, batch_size: int = 8,
                 decoder_messages: bool = False) -> None:
        self.score, self.job = score, job
        self.batch_size = max(1, batch_size)
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
            task = self.job.probe(index, item)
            if isinstance(task, VideoTimeline):
                yield task
            else:
                videos[index] = VideoTimeline(item.path)
                probes.append(task)
        if not probes:
            return
        owned = pool is None and workers > 0
        if pool is not None:
            pool.take_turns = False  # a classify run on the same pool may have set it
        elif owned:
            pool = DecodePool(min(workers, len(probes)), self.job.protocol, timeout,
                              quiet=not self.decoder_messages, prefetch=self.batch_size)
        try:
            yield from self._run(pool, probes, videos, skip, on_probe)
        finally:
            if owned:
                pool.close()

    def _results(self, pool, tasks: list[Task]) -> Iterator[Prepared]:
        source = pool.run(tasks) if pool is not None else inline(tasks, self.job.protocol)
        for result in source:
            if result is not None:
                yield result

    def _run(self, pool, probes, videos, skip, on_probe) -> Iterator[VideoTimeline]:
        stretches: list[Task] = []
        remaining: dict[int, int] = {}  # video -> stretches still to come
        for result in self._results(pool, probes):
            video = videos[result.index]
            if result.error:
                video.error = result.error
                continue
            video.duration = result.duration
            if on_probe is not None:
                on_probe(video.path, result.duration)
            tasks = self.job.stretches(result.index, video, skip(video.path))
            stretches += tasks
            remaining[result.index] = len(tasks)
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
                yield self.job.finished(video)

    def _score(self, batch, videos) -> None:
        views = torch.from_numpy(np.stack([view for _, _, view in batch]))
        probs, features = self.score(views)
        for row, (index, start, _) in enumerate(batch):
            videos[index].windows.append(self.job.window(
                videos[index], start, probs[row].numpy(),
                None if features is None else features[row].numpy()))
