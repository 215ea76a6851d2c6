"""Turning the PATH arguments of `mvit classify` into a list of media files.

A file is taken as given, a folder is walked recursively for media extensions, anything
else is tried as a glob. What cannot be resolved becomes an error row, never an exception.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from .decode import media_kind


@dataclass(frozen=True)
class InputItem:
    path: str  # as the user will see it in the output
    kind: str | None  # "video", "image", or None when unusable
    error: str = ""


def discover(arguments: list[str]) -> list[InputItem]:
    items: list[InputItem] = []
    seen: set[str] = set()

    def add(item: InputItem) -> None:
        if item.path not in seen:
            seen.add(item.path)
            items.append(item)

    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(_walk(path))
            if not found:
                add(InputItem(argument, None, "no video or image files in this folder"))
            for media in found:
                add(InputItem(str(media), media_kind(media)))
        elif path.exists():
            add(_file_item(path))
        elif glob.has_magic(argument):
            matches = sorted(glob.glob(argument, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file() and media_kind(Path(m))]
            if not files:
                add(InputItem(argument, None, "the pattern matches no video or image files"))
            for media in files:
                add(InputItem(str(media), media_kind(media)))
        else:
            add(InputItem(argument, None, "no such file or folder"))
    return items


def _walk(folder: Path):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(root) / name
            if not name.startswith(".") and media_kind(path):
                yield path


def _file_item(path: Path) -> InputItem:
    kind = media_kind(path)
    if kind is None:
        return InputItem(str(path), None, f"not a video or image file ({path.suffix or 'no extension'})")
    if not os.access(path, os.R_OK):
        return InputItem(str(path), kind, "permission denied: the file cannot be read")
    return InputItem(str(path), kind)
