"""Batching views across files through the model, and averaging them back per file.

Workers hand over each file's views (clips x crops) as uint8; views from different files
share batches, so short files and long folders both keep the model busy. A file's scores are
the mean of its views' softmax, as in the papers' multi-view testing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..media.discover import InputItem
from ..media.protocol import Protocol
from ..media.transform import normalise
from ..models.architectures import ARCHITECTURES, BUILTIN
from ..models.mvit import MultiscaleTransformer, compile_for_inference
from .workers import DecodePool, Prepared, Task, inline

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class FileResult:
    path: str
    labels: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    error: str = ""
    duration: float | None = None
    frames: int | None = None
    views: int = 0

    @property
    def ok(self) -> bool:
        return not self.error


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on GPUs that have it (fp16 attention can overflow), fp32 elsewhere."""
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return PRECISIONS[name]


def _other_kind_error(kind: str) -> str:
    wanted = "image" if kind == "image" else "video"
    names = [n for n in BUILTIN if ARCHITECTURES[n].is_video == (wanted == "video")]
    article = "an" if wanted == "image" else "a"
    return (f"this is {article} {wanted}, and the model is not: classify it with {article} "
            f"{wanted} model ({', '.join(names)})")


@dataclass
class _Pending:
    result: FileResult
    total: int
    done: int = 0
    probs: torch.Tensor | None = None


class Classifier:
    """Runs a model over files; yields one FileResult per input, as each completes."""

    # Let FFmpeg's and decord's own complaints through to stderr (--verbose).
    decoder_messages: bool = False

    def __init__(self, model: MultiscaleTransformer, protocol: Protocol, device: torch.device,
                 dtype: torch.dtype = torch.float32, batch_size: int = 8, top_k: int = 5,
                 compile_model: bool = False):
        self.model = model.to(device).eval()
        self.forward = self.model
        self.compiled = compile_model
        if compile_model:
            # One shape only: partial batches are padded (see _run_batch), so the compiled
            # graph is built once.
            self.forward = compile_for_inference(self.model)
        self.protocol, self.device, self.dtype = protocol, device, dtype
        self.batch_size, self.top_k = max(1, batch_size), top_k
        self.video = model.cfg.is_video
        self.labels = model.labels or [f"class {i}" for i in range(model.num_classes)]

    def run(self, items: list[InputItem], workers: int, timeout: float) -> Iterator[FileResult]:
        tasks = []
        for index, item in enumerate(items):
            if item.error:
                yield FileResult(item.path, error=item.error)
            elif (item.kind == "video") != self.video:
                yield FileResult(item.path, error=_other_kind_error(item.kind))
            else:
                tasks.append(Task(index, item.path, item.kind))
        if not tasks:
            return
        pending: dict[int, _Pending] = {}
        queue: list[tuple[int, np.ndarray]] = []
        if workers > 0:
            # On the CPU, decoding and the model take turns: the workers decode the files a
            # batch needs, on every core, while the model waits; then the model runs alone.
            # Why: the model's threads already use every core, and a decoder taking one of
            # them stalls the model's other threads at each step (on 2 cores, overlapping
            # them measured slower than not decoding in parallel at all). A GPU computes
            # on its own, so there decoding overlaps.
            take_turns = self.device.type == "cpu"
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
        for result in prepared:
            if result is None and turns is not None:  # the model's turn is over: decode
                if turns.outstanding == 0:
                    missing = max(1, self.batch_size - len(queue))
                    turns.request(-(-missing // self.protocol.views))
                continue
            if result is None:  # decoders are busy: don't leave the model idle
                if queue:
                    yield from self._run_batch(queue, pending)
                continue
            item = items[result.index]
            if result.error:
                yield FileResult(item.path, error=result.error)
                continue
            views = result.views
            pending[result.index] = _Pending(
                FileResult(item.path, duration=result.duration if self.video else None,
                           frames=result.source_frames if self.video else None,
                           views=len(views)), total=len(views))
            queue.extend((result.index, view) for view in views)
            while len(queue) >= self.batch_size:
                yield from self._run_batch(queue, pending)

    def _run_batch(self, queue, pending) -> Iterator[FileResult]:
        batch, queue[:] = queue[:self.batch_size], queue[self.batch_size:]
        owners = [owner for owner, _ in batch]
        arrays = [view for _, view in batch]
        if self.compiled:  # pad to the compiled batch size; the padding's scores are dropped
            arrays += [arrays[-1]] * (self.batch_size - len(arrays))
        views = torch.from_numpy(np.stack(arrays))
        if self.device.type == "cuda":
            views = views.pin_memory().to(self.device, non_blocking=True)
        # On the CPU the model runs a batch clip by clip anyway (MultiscaleTransformer.forward),
        # so clips are also made float one at a time: one clip's input alive (9.6 MB for
        # B-16x4), not the batch's. A compiled model keeps its one batch shape.
        parts = views.split(1) if self.device.type == "cpu" and not self.compiled else [views]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.dtype,
                                                    enabled=self.dtype != torch.float32):
            logits = torch.cat([self.forward(normalise(part, self.protocol, self.video))
                                for part in parts])
            probs = logits.float().softmax(dim=-1).cpu()[:len(owners)]
        for owner, row in zip(owners, probs):
            state = pending[owner]
            state.probs = row if state.probs is None else state.probs + row
            state.done += 1
            if state.done == state.total:
                del pending[owner]
                yield self._finish(state)

    def _finish(self, state: _Pending) -> FileResult:
        mean = state.probs / state.total
        k = min(self.top_k, mean.numel())
        scores, indices = mean.topk(k)
        state.result.labels = [self.labels[i] for i in indices.tolist()]
        state.result.scores = [float(s) for s in scores]
        return state.result
