"""The local engine's classify loop: views batched across files through the backend.

Workers hand over each file's views (clips x crops) as uint8; views from different files
share batches, so short files and long folders both keep the model busy. Once all of a
file's views are scored, the classify job turns them into its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ...jobs.classify import ClassifyJob, FileResult
from ...jobs.tasks import Prepared
from ...media.discover import InputItem
from .workers import DecodePool, inline

# uint8 views (B, T, crop, crop, 3) -> class probabilities (B, classes), float32 on the CPU,
# and the pooled features (B, width) when asked for (else None).
ScoreViews = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class _Pending:
    result: FileResult
    total: int
    done: int = 0
    probs: torch.Tensor | None = None
    features: torch.Tensor | None = None


class BatchRunner:
    """Runs files through `score` in shared batches; yields one FileResult per input item,
    in the order files complete."""

    def __init__(self, score: ScoreViews, job: ClassifyJob, device_type: str = "cpu",
                 batch_size: int = 8, pad_batches: bool = False,
                 decoder_messages: bool = False):
        self.score, self.job = score, job
        self.protocol, self.video = job.protocol, job.video
        self.device_type = device_type
        self.batch_size = max(1, batch_size)
        # A compiled model keeps one batch shape: partial batches are padded, padding dropped.
        self.pad_batches = pad_batches
        # Let FFmpeg's and decord's own complaints through to stderr (--verbose).
        self.decoder_messages = decoder_messages

    def run(self, items: list[InputItem], workers: int, timeout: float,
            pool: DecodePool | None = None) -> Iterator[FileResult]:
        """`pool`: decoders kept open by the caller across runs (else `workers` new ones)."""
        tasks = []
        for index, item in enumerate(items):
            task = self.job.task(index, item)
            if isinstance(task, FileResult):
                yield task
            else:
                tasks.append(task)
        if not tasks:
            return
        pending: dict[int, _Pending] = {}
        queue: list[tuple[int, np.ndarray]] = []
        take_turns = self.device_type == "cpu"
        if pool is not None:
            pool.take_turns = take_turns
            yield from self._consume(pool.run(tasks), items, pending, queue,
                                     pool if take_turns else None)
        elif workers > 0:
            # On the CPU, decoding and the model take turns: the workers decode the files a
            # batch needs, on every core, while the model waits; then the model runs alone.
            # Why: the model's threads already use every core, and a decoder taking one of
            # them stalls the model's other threads at each step (on 2 cores, overlapping
            # them measured slower than not decoding in parallel at all). A GPU computes
            # on its own, so there decoding overlaps.
            with DecodePool(min(workers, len(tasks)), self.protocol, timeout,
                            quiet=not self.decoder_messages, prefetch=self.batch_size,
                            take_turns=take_turns) as pool:
                yield from self._consume(pool.run(tasks), items, pending, queue,
                                         pool if take_turns else None)
        else:
            yield from self._consume(inline(tasks, self.protocol), items, pending, queue)
        while queue:
            yield from self._run_batch(queue, pending)

    def _consume(self, prepared: Iterator[Prepared | None], items, pending, queue,
                 turns: DecodePool | None = None):
        self._decoders_turn(turns, queue)
        for result in prepared:
            if result is None and turns is not None:
                self._decoders_turn(turns, queue)
                continue
            if result is None:  # decoders are busy: don't leave the model idle
                if queue:
                    yield from self._run_batch(queue, pending)
                continue
            item = items[result.index]
            if result.error:
                yield FileResult(item.path, error=result.error)
                self._decoders_turn(turns, queue)
                continue
            views = result.views
            pending[result.index] = _Pending(
                FileResult(item.path, duration=result.duration if self.video else None,
                           frames=result.source_frames if self.video else None,
                           views=len(views), warning=result.warning), total=len(views))
            queue.extend((result.index, view) for view in views)
            while len(queue) >= self.batch_size:
                yield from self._run_batch(queue, pending)
            self._decoders_turn(turns, queue)

    def _decoders_turn(self, turns: DecodePool | None, queue) -> None:
        """With decoding and the model in turns: once the files asked for are in, ask for
        those the next batch lacks, at once (waiting for the pool's idle poll instead left the
        model idle for a poll's length at every batch)."""
        if turns is not None and turns.outstanding == 0:
            missing = max(1, self.batch_size - len(queue))
            turns.request(-(-missing // self.protocol.views))

    def _run_batch(self, queue, pending) -> Iterator[FileResult]:
        batch, queue[:] = queue[:self.batch_size], queue[self.batch_size:]
        owners = [owner for owner, _ in batch]
        arrays = [view for _, view in batch]
        if self.pad_batches:
            arrays += [arrays[-1]] * (self.batch_size - len(arrays))
        probs, features = self.score(torch.from_numpy(np.stack(arrays)))
        probs = probs[:len(owners)]
        for position, (owner, row) in enumerate(zip(owners, probs, strict=True)):
            state = pending[owner]
            state.probs = row if state.probs is None else state.probs + row
            if features is not None:
                feature = features[position]
                state.features = feature if state.features is None else state.features + feature
            state.done += 1
            if state.done == state.total:
                del pending[owner]
                yield self._finish(state)

    def _finish(self, state: _Pending) -> FileResult:
        return self.job.finish(state.result, state.probs, state.total, state.features)
