"""The local engine: decoding in worker processes with a deadline per file, batches across
files through the backend in this process.

Its loops are imported when a run starts: a command asks this class what it can do before
torch is imported (the decoders' server should start first)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...backends import Backend
    from ...jobs.classify import ClassifyJob, FileResult
    from ...jobs.timeline import TimelineJob, VideoTimeline
    from ...media.discover import InputItem
    from ..options import RunOptions


class LocalEngine:
    name = "local"
    decodes_here = True  # its decoders fork from this process's server (decoder_server)

    @classmethod
    def check(cls, features: bool) -> None:
        """Refuse, before anything loads, what this engine cannot do: nothing."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    def _workers(self, backend: Backend) -> int:
        from .workers import default_workers

        workers = self.options.workers
        return default_workers(backend.device.type) if workers is None else workers

    def classify(self, job: ClassifyJob, items: list[InputItem], backend: Backend
                 ) -> Iterator[FileResult]:
        from .runner import BatchRunner

        options = self.options
        runner = BatchRunner(partial(backend.score, protocol=job.protocol, features=job.features),
                             job, backend.device.type, options.batch_size,
                             pad_batches=backend.compiled,
                             decoder_messages=options.decoder_messages)
        return runner.run(items, self._workers(backend), options.timeout, pool=options.pool)

    def timeline(self, job: TimelineJob, items: list[InputItem], backend: Backend
                 ) -> Iterator[VideoTimeline]:
        from .timeline_runner import TimelineRunner

        options = self.options
        runner = TimelineRunner(partial(backend.score, protocol=job.protocol,
                                        features=job.features),
                                job, options.batch_size, options.decoder_messages)
        return runner.run(items, self._workers(backend), options.timeout,
                          on_probe=options.on_probe, pool=options.pool)
