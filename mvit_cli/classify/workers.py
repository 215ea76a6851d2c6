"""Decoding in worker processes, with a deadline per file.

A file whose decoding hangs (decord can block while holding the GIL) or kills its process
must not stop the run. So each worker gets one file at a time over its own pipe, the parent
watches the clock, and a worker that overruns `timeout` or dies is killed and replaced; the
file gets an error row. Pipes, not a shared queue: killing a worker mid-send then breaks only
that worker's pipe.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Iterator

import numpy as np

from ..media.decode import MediaError, decode, silence_decoder_messages
from ..media.protocol import Protocol
from ..media.transform import make_views


@dataclass
class Task:
    index: int
    path: str
    kind: str


@dataclass
class Prepared:
    index: int
    views: np.ndarray | None = None  # (views, T, crop, crop, 3) uint8
    error: str = ""
    duration: float = 0.0
    source_frames: int = 0


def prepare(task: Task, protocol: Protocol) -> Prepared:
    """Decode, sample and crop one file (runs in a worker, or inline with --workers 0)."""
    try:
        sampled = decode(Path(task.path), task.kind, protocol)
        views = make_views(sampled.frames, protocol)
    except MediaError as exc:
        return Prepared(task.index, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - anything else still becomes this file's row
        return Prepared(task.index, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                        if str(exc) else type(exc).__name__)
    return Prepared(task.index, views, duration=sampled.duration,
                    source_frames=sampled.source_frames)


def _worker_main(conn: Connection, protocol: Protocol, quiet: bool) -> None:
    import signal

    import torch

    # Ctrl-C is the parent's to handle: it stops the workers itself, without tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)
    if quiet:
        silence_decoder_messages()
    while True:
        try:
            task = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if task is None:
            return
        conn.send(prepare(task, protocol))


class _Worker:
    def __init__(self, ctx, protocol: Protocol, quiet: bool) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, protocol, quiet),
                                   daemon=True)
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.started = 0.0

    def give(self, task: Task) -> None:
        self.task, self.started = task, time.monotonic()
        self.conn.send(task)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class DecodePool:
    """Runs `prepare` for each task in worker processes; yields results as they finish.

    Yields None when nothing finished within `poll` seconds, so the caller can use the wait
    (for example to run a partial batch rather than leave the model idle).
    """

    def __init__(self, workers: int, protocol: Protocol, timeout: float, poll: float = 0.05,
                 quiet: bool = True):
        self.protocol, self.timeout, self.poll, self.quiet = protocol, timeout, poll, quiet
        self.ctx = multiprocessing.get_context("spawn")
        self.workers = [_Worker(self.ctx, protocol, quiet) for _ in range(workers)]

    def run(self, tasks: list[Task]) -> Iterator[Prepared | None]:
        pending = deque(tasks)
        while pending or any(w.task for w in self.workers):
            for worker in self.workers:
                if worker.task is None and pending:
                    worker.give(pending.popleft())
            busy = {w.conn: w for w in self.workers if w.task is not None}
            ready = wait(list(busy), timeout=self.poll)
            yielded = False
            for conn in ready:
                worker = busy[conn]
                try:
                    result = conn.recv()
                except (EOFError, OSError):
                    result = self._replace(worker, self._death_message(worker))
                else:
                    worker.task = None
                yield result
                yielded = True
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.task is not None and now - worker.started > self.timeout:
                    yield self._replace(worker, f"decoding took longer than {self.timeout:g} s "
                                                "and was stopped")
                    yielded = True
                elif worker.task is not None and not worker.process.is_alive():
                    yield self._replace(worker, self._death_message(worker))
                    yielded = True
            if not yielded:
                yield None

    @staticmethod
    def _death_message(worker: _Worker) -> str:
        worker.process.join(1)
        code = worker.process.exitcode
        return f"the decoder crashed (worker exit code {code})"

    def _replace(self, worker: _Worker, error: str) -> Prepared:
        task = worker.task
        worker.kill()
        self.workers[self.workers.index(worker)] = _Worker(self.ctx, self.protocol, self.quiet)
        return Prepared(task.index, error=error)

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inline(tasks: list[Task], protocol: Protocol) -> Iterator[Prepared]:
    """--workers 0: decode in this process (no timeout protection; for debugging)."""
    for task in tasks:
        yield prepare(task, protocol)


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 2) - 1))
