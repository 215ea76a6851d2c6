"""Every file a command writes has its folder made before any work, or is refused then.

A picture, an annotated copy or a feature file is written only after its video has been
decoded and classified: a folder that is missing, or that cannot be made there, must be
found before the model loads, not in a traceback once the work is done.
"""

from __future__ import annotations

import os
from pathlib import Path

from .stamp import OutputError


def _not_a_folder(folder: Path) -> Path | None:
    """The first part of `folder` that exists and is not a folder (a regular file), if any."""
    for part in (*reversed(folder.parents), folder):
        if part.exists() and not part.is_dir():
            return part
    return None


def prepare_folder(option: str, path: str | Path) -> Path:
    """Make the folder `path` goes into (as `-o` does for its own file), or refuse in one
    line, naming the option: a target that is a folder, a part of its folder that is a
    file, or a folder that cannot be made or written in."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give a file name")
    folder = path.parent
    blocking = _not_a_folder(folder)
    if blocking is not None:
        raise OutputError(f"{option} {path}: cannot make its folder: {blocking} is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot make its folder {folder} "
                          f"({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write in its folder {folder}")
    return path
