"""The local engine: decoding in worker processes with a deadline per file, batches across
files through the backend in this process."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

from .runner import BatchRunner
from .timeline_runner import TimelineRunner
from .workers import default_workers

if TYPE_CHECKING:
    from ...backends import Backend
    from ...jobs.classify import ClassifyJob, FileResult
    from ...jobs.timeline import TimelineJob, VideoTimeline
    from ...media.discover import InputItem
    from ..options import RunOptions


class LocalEngine:
    name = "local"

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def _workers(self, backend: Backend) -> int:
        workers = self.options.workers
        return default_workers(backend.device.type) if workers is None else workers

    def classify(self, job: ClassifyJob, items: list[InputItem], backend: Backend
                 ) -> Iterator[FileResult]:
        options = self.options
        runner = BatchRunner(partial(backend.score, protocol=job.protocol, features=job.features),
                             job, backend.device.type, options.batch_size,
                             pad_batches=backend.compiled,
                             decoder_messages=options.decoder_messages)
        return runner.run(items, self._workers(backend), options.timeout, pool=options.pool)

    def timeline(self, job: TimelineJob, items: list[InputItem], backend: Backend
                 ) -> Iterator[VideoTimeline]:
        options = self.options
        runner = TimelineRunner(partial(backend.score, protocol=job.protocol,
                                        features=job.features),
                                job, options.batch_size, options.decoder_messages)
        return runner.run(items, self._workers(backend), options.timeout,
                          on_probe=options.on_probe, pool=options.pool)
