"""Decoding in worker processes, with a deadline per file.

A file whose decoding hangs (decord can block while holding the GIL) or kills its process
must not stop the run. So each worker gets one file at a time over its own pipe, a thread
of the parent watches the clock, and a worker that overruns `timeout` or dies is killed and
replaced; the file gets an error row. Pipes, not a shared queue: killing a worker mid-send
then breaks only that worker's pipe.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Iterator


from ...errors import first_line
from ...jobs.tasks import Prepared, Task
from ...media.decode import MediaError, decode, silence_decoder_messages
from ...media.protocol import Protocol
from ...media.sequential import probe, window_views
from ...media.sources import is_uri, local_copy
from ...media.transform import make_views
from .decoder_server import worker_context
from .worker_start import start_worker


_DONE = object()  # the dispatch thread's last word


def prepare(task: Task, protocol: Protocol) -> Prepared:
    """Decode, sample and crop one file (runs in a worker, or inline with --workers 0); a
    URI's object is copied to a temporary local file first."""
    if is_uri(task.path):
        try:
            with local_copy(task.path) as local:
                return prepare(replace(task, path=str(local)), protocol)
        except MediaError as exc:
            return Prepared(task.index, error=str(exc))
    try:
        if task.job == "probe":
            info = probe(task.path)
            return Prepared(task.index, duration=info.duration, source_frames=info.frames,
                            fps=info.fps)
        if task.job == "windows":
            views, decoded = window_views(task.path, list(task.starts), task.windowing,
                                          protocol, task.duration)
            return Prepared(task.index, views, duration=task.duration, source_frames=decoded,
                            starts=task.starts)
        sampled = decode(Path(task.path), task.kind, protocol)
        views = make_views(sampled.frames, protocol)
    except MediaError as exc:
        return Prepared(task.index, error=str(exc))
    except Exception as exc:  # noqa: BLE001 - anything else still becomes this file's row
        return Prepared(task.index, error=f"{type(exc).__name__}: {first_line(exc, 160)}")
    return Prepared(task.index, views, duration=sampled.duration,
                    source_frames=sampled.source_frames, warning=sampled.warning)


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
        start_worker(self.process)  # never re-running the user's script: see worker_start
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

    A thread of the parent hands out files and collects results, so workers can decode
    while the caller runs the model (the model's kernels release the GIL); up to `prefetch`
    finished files wait for the caller, which keeps memory flat however many files there are.
    Yields None when nothing finished within `poll` seconds, so the caller can use the wait
    (for example to run a partial batch rather than leave the model idle).

    With `take_turns`, a file is handed out only once the caller asked for it (`request`),
    so decoding and the model need not run at the same time (see Classifier).
    """

    def __init__(self, workers: int, protocol: Protocol, timeout: float, poll: float = 0.05,
                 quiet: bool = True, prefetch: int = 8, take_turns: bool = False):
        self.protocol, self.timeout, self.poll, self.quiet = protocol, timeout, poll, quiet
        self.prefetch = max(1, prefetch)
        self.take_turns = take_turns
        self.ctx = worker_context()  # forked from a server: see decoder_server
        self.workers = [_Worker(self.ctx, protocol, quiet) for _ in range(workers)]
        self._stop = threading.Event()
        self._wake = threading.Event()  # a request came, or stop
        self._thread: threading.Thread | None = None
        self._granted = 0  # files the caller asked for (take_turns)
        self._delivered = 0  # results the caller has been given

    @property
    def outstanding(self) -> int:
        """Files asked for whose results the caller has not had yet (take_turns)."""
        return self._granted - self._delivered

    def request(self, files: int) -> None:
        """Let `files` more files be handed out (take_turns)."""
        self._granted += max(0, files)
        self._wake.set()

    def run(self, tasks: list[Task]) -> Iterator[Prepared | None]:
        # Each run counts its own requests, from now (a request may come before the first
        # result is asked for): a pool kept across runs must not carry a grant over and
        # decode unasked beside the model (take_turns).
        self._granted = self._delivered = 0
        return self._results(tasks)

    def _results(self, tasks: list[Task]) -> Iterator[Prepared | None]:
        results: queue.Queue = queue.Queue(maxsize=self.prefetch)
        self._thread = threading.Thread(target=self._dispatch, args=(tasks, results),
                                        name="mvit-decode-dispatch", daemon=True)
        self._thread.start()
        try:
            while True:
                try:
                    result = results.get(timeout=self.poll)
                except queue.Empty:
                    yield None
                    continue
                if result is _DONE:
                    return
                if isinstance(result, BaseException):
                    raise result
                self._delivered += 1
                yield result
        finally:
            self._stop_dispatch()

    def _dispatch(self, tasks: list[Task], results: queue.Queue) -> None:
        """The dispatch thread: keep every worker busy, watch deadlines, pass results on."""
        def put(item) -> bool:
            while not self._stop.is_set():
                try:
                    results.put(item, timeout=self.poll)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            pending = deque(tasks)
            handed = 0
            while pending or any(w.task for w in self.workers):
                for worker in self.workers:
                    if (worker.task is None and pending
                            and (not self.take_turns or handed < self._granted)):
                        worker.give(pending.popleft())
                        handed += 1
                if not any(w.task for w in self.workers):  # waiting for the caller's request
                    self._wake.wait()
                    self._wake.clear()
                    if self._stop.is_set():
                        return
                    continue
                busy = {w.conn: w for w in self.workers if w.task is not None}
                for conn in wait(list(busy), timeout=self.poll):
                    worker = busy[conn]
                    try:
                        result = conn.recv()
                    except (EOFError, OSError):
                        result = self._replace(worker, self._death_message(worker))
                    else:
                        worker.task = None
                    if not put(result):
                        return
                now = time.monotonic()
                for worker in list(self.workers):
                    if worker.task is not None and now - worker.started > self.timeout:
                        result = self._replace(worker, f"decoding took longer than "
                                                       f"{self.timeout:g} s and was stopped")
                    elif worker.task is not None and not worker.process.is_alive():
                        result = self._replace(worker, self._death_message(worker))
                    else:
                        continue
                    if not put(result):
                        return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            put(exc)

    def _stop_dispatch(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._stop.clear()

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
        self._stop_dispatch()
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


def default_workers(device_type: str) -> int:
    """Up to 4 decoders: one per core on the CPU, where decoding and the model take turns;
    one core left to feed the GPU otherwise."""
    cores = os.cpu_count() or 2
    return max(1, min(4, cores if device_type == "cpu" else cores - 1))
