"""Writing files so that a reader never sees half of one.

Everything mvit writes whole (the user registry, converted weights, a JSON array of results,
the FLOP cache, synthetic clips) goes to a temporary name in the same folder and is renamed
into place: a crash, a full disk or Ctrl-C leaves either the old file or the new one.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, else it is removed.

    The temporary name starts with a dot and carries the process id, so two processes writing
    the same file never share a temporary, and folder walks that skip dot files skip it.
    `suffix` keeps an extension that writers look at (".mp4" for a video encoder).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        _give_mode(tmp, path)
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def _give_mode(tmp: Path, path: Path) -> None:
    """The permissions `path` would have had if written in place: its own if it exists, else
    what the umask gives a new file. Why: some writers (safetensors' `save_file`) create
    their file 0600, so weights saved for a team would be readable by their owner only."""
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        os.chmod(tmp, mode)
    except OSError:  # a file system without modes (some mounts): what it gives stands
        pass


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o077)  # elsewhere: set and restore (stricter meanwhile, never looser)
    os.umask(old)
    return old


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` in one step (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding)
