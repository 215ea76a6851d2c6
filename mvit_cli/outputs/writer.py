"""One lifecycle for every resumable output: lock, start afresh or resume, write, close.

A run holds its output's lock from before the model loads until its writer closes, so two
runs never append to one file (duplicate rows) or rewrite each other's. Opening an output
that exists resumes it, but only an output of ours made the same way (the rules are in
`resume`): the files it covers are reported as done, so the run skips them; `--overwrite`
starts afresh. Closing finishes the file (formats written whole are written then, to a
temporary renamed into place) and frees the lock, whatever fails.

The lifecycle is the same for every format; what differs (how rows are encoded, read back
and finished) is the format object's (`FileFormat`), which the registry picks. The
lifecycle calls into the formats and they never call back into it, so neither imports the
other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from .stamp import OutputError

try:
    import fcntl
except ImportError:  # Windows: filelock's lock, whose file stays
    fcntl = None

STDOUT = "-"


class OutputLock:
    """An exclusive, non-blocking lock on a dot file beside an output, removed when released,
    so a finished or refused run leaves no hidden file behind.

    Removing a lock file is safe only if a run that opened it just before it went checks,
    once it holds the lock, that the name still leads to the file it locked; if not, it
    locks the new one. The file is removed while still held, so no run ever holds a file
    that another can still open by name."""

    def __init__(self, path: Path) -> None:
        self.path, self._fd = path, None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise Timeout(str(self.path)) from None
            try:
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                self._fd = fd
                return
            os.close(fd)  # its holder removed it as we opened it: lock the new one

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_output(path: str | Path) -> OutputLock | FileLock | None:
    """Hold `path` for this run (None for `-`): one run writes an output at a time, and a
    second refuses at once, rather than both appending (duplicate rows) or rewriting each
    other's file. The lock is a dot file beside the output, there while the run is."""
    if str(path) == STDOUT:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.with_name(f".{path.name}.lock")
    lock = OutputLock(name) if fcntl is not None else FileLock(str(name), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{path}: another mvit run is writing it now; wait for that one "
                          "to finish, or choose another --output") from None
    return lock


class FileFormat(Protocol):
    """What the lifecycle asks of a format (rows, whole files, subtitles)."""

    locked: bool  # False for standard output: a pipe is nobody else's file

    @classmethod
    def lock_path(cls, path: str | Path) -> Path:
        """The file whose lock guards the output named `path`."""

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> Any:
        """What the output holds already; refuses one not made like this run (`stamp`
        None: its form only, before the model loads)."""

    def remove(self) -> None:
        """Forget what the output holds (`--overwrite`)."""

    def resume(self) -> set[str]:
        """Read back what is there, cut a torn row, open for writing; the files done."""

    def is_done(self, path: str) -> bool: ...

    def write(self, result: Any) -> None: ...

    def close(self) -> None:
        """Flush, and write whatever is written whole."""


class OutputWriter:
    """An output being written: its lock (taken here, or handed over by the caller that took
    it before the model loaded) and its format. `done`: the identities of the files the
    output already held."""

    def __init__(self, file_format: type[FileFormat], path: str | Path, options: Any,
                 stamp: dict[str, str], overwrite: bool, lock: FileLock | None = None
                 ) -> None:
        self.path = path
        if lock is None and file_format.locked:
            lock = lock_output(file_format.lock_path(path))
        self._lock = lock
        try:
            self.format = file_format(path, options, stamp)
            if overwrite:
                self.format.remove()
            self.done = self.format.resume()
        except BaseException:
            self._release()  # now: a caller that keeps the error must not keep the lock
            raise

    def is_done(self, path: str) -> bool:
        """Whether the output already holds this file (a resumed run skips it)."""
        return self.format.is_done(path)

    def write(self, result: Any) -> None:
        self.format.write(result)

    def close(self) -> None:
        try:
            self.format.close()
        finally:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
