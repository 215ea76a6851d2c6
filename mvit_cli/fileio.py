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
        os.replace(tmp, path)
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` in one step (see `atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding)
