"""Turning PATH arguments and manifests into input items, each file once.

A file is taken as given, a folder is walked recursively for media extensions, anything
else is tried as a glob. Every file is named by its absolute path (what outputs record, so a
resumed run finds it again from any working folder) and known by its resolved path, so
`./in/a.mp4`, `in/../in/a.mp4` and a symlink to it are one file, classified once.
URIs and manifests are read through media.sources, which knows nothing of input items.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..models.architectures import ARCHITECTURES, BUILTIN
from .decode import media_kind
from .sources import expand_uri, is_uri, read_manifest, uri_kind


@dataclass(frozen=True)
class InputItem:
    path: str  # absolute, as outputs record it
    kind: str | None  # "video", "image", or None when unusable
    error: str = ""

    @property
    def key(self) -> str:
        """The file itself, however its path was written."""
        return identity(self.path)


def identity(path: str) -> str:
    """The resolved path, as text: one file has one identity whatever path names it (a URI
    is its own identity)."""
    return path if is_uri(path) else printable(os.path.realpath(path))


def printable(path: str) -> str:
    """A path as text any UTF-8 output can hold, the same way every time.

    File names are bytes; one that is not valid UTF-8 reaches Python with its odd bytes as
    surrogates, which no UTF-8 file or terminal accepts. Those bytes are written as `\\xff`
    escapes, so the row exists, reads clearly, and a resumed run recognises it (it escapes
    the same name the same way). Valid names are returned unchanged.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        pass
    try:
        return os.fsencode(path).decode("utf-8", errors="backslashreplace")
    except UnicodeEncodeError:  # surrogates that are not escaped bytes of a file name
        return path.encode("utf-8", errors="backslashreplace").decode("utf-8")


@dataclass
class Inputs:
    """What the PATH arguments name."""

    items: list[InputItem] = field(default_factory=list)
    # Arguments that name no media file at all, with the reason (the CLI's usage error).
    unmatched: list[tuple[str, str]] = field(default_factory=list)
    # Files found in folders but left out for their extension, by extension.
    skipped: Counter = field(default_factory=Counter)

    def skipped_summary(self) -> str:
        """"3 files skipped for their extension (.gz 2, .txt 1)", or ""."""
        total = sum(self.skipped.values())
        if not total:
            return ""
        common = sorted(self.skipped.items(), key=lambda item: (-item[1], item[0]))[:4]
        kinds = ", ".join(f"{ext} {n}" for ext, n in common)
        more = ", ..." if len(self.skipped) > 4 else ""
        return f"{total} file{'s' if total != 1 else ''} skipped for their extension ({kinds}{more})"


def as_items(paths: Iterable) -> list[InputItem]:
    """Input items from paths, globs and folders (found as `find_inputs` finds them), after
    the items among `paths` that were found already, as they are."""
    items, arguments = [], []
    for path in paths:
        (items if isinstance(path, InputItem) else arguments).append(path)
    return items + (find_inputs([str(os.fspath(a)) if isinstance(a, os.PathLike) else str(a)
                                for a in arguments]).items if arguments else [])


def find_inputs(arguments: list[str]) -> Inputs:
    found = Inputs()
    seen: set[str] = set()

    def add(item: InputItem) -> None:
        if item.key not in seen:
            seen.add(item.key)
            found.items.append(item)

    def unmatched(argument: str, reason: str) -> None:
        found.unmatched.append((argument, reason))
        add(InputItem(argument if is_uri(argument) else os.path.abspath(argument), None, reason))

    for argument in map(str, arguments):
        path = Path(argument)
        if is_uri(argument):
            uris = expand_uri(argument)
            if not uris:
                unmatched(argument, "no video or image files at this address")
            for uri in uris:
                add(InputItem(uri, uri_kind(uri)))
            continue
        if path.is_dir():
            unreadable: list[tuple[str, str]] = []
            media = sorted(_walk(path, found.skipped, unreadable))
            top = [why for folder, why in unreadable
                   if os.path.abspath(folder) == os.path.abspath(path)]
            if top:
                unmatched(argument, f"cannot read this folder ({top[0]})")
                continue
            if not media and not unreadable:
                unmatched(argument, "no video or image files in this folder")
            for file in media:
                add(InputItem(os.path.abspath(file), media_kind(file)))
            for folder, why in unreadable:  # a row each, so that no file goes missing unsaid
                add(InputItem(os.path.abspath(folder), None,
                              f"cannot read this folder ({why}): its files were not listed"))
        elif path.exists() or path.is_symlink():
            add(_file_item(path))
        elif glob.has_magic(argument):
            matches = [Path(m) for m in sorted(glob.glob(argument, recursive=True))]
            files = [m for m in matches if m.is_file() and media_kind(m)]
            if not files:
                unmatched(argument, "the pattern matches no video or image files")
            for file in files:
                add(InputItem(os.path.abspath(file), media_kind(file)))
        else:
            unmatched(argument, "no such file or folder")
    return found


def _walk(folder: Path, skipped: Counter, unreadable: list[tuple[str, str]]):
    """Media files under `folder`; folders that cannot be listed go to `unreadable` as
    (folder, reason) rather than being passed over in silence, as os.walk does by default."""
    def failed(exc: OSError) -> None:
        unreadable.append((exc.filename or str(folder), exc.strerror or str(exc)))

    for root, dirs, files in os.walk(folder, onerror=failed):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            path = Path(root) / name
            if media_kind(path):
                yield path
            else:
                skipped[path.suffix.lower() or "no extension"] += 1


def _file_item(path: Path) -> InputItem:
    kind = media_kind(path)
    absolute = os.path.abspath(path)
    if kind is None:
        return InputItem(absolute, None,
                         f"not a video or image file ({path.suffix or 'no extension'})")
    if not path.exists():
        return InputItem(absolute, kind, "a symbolic link to nothing")
    if not os.access(path, os.R_OK):
        return InputItem(absolute, kind, "permission denied: the file cannot be read")
    return InputItem(absolute, kind)


def unchecked_item(path: str) -> InputItem:
    """The input a listed path or URI names, its kind read from its name alone: whoever
    decodes it finds out whether it exists. One rule for manifests and for Ray workers."""
    kind = uri_kind(path) if is_uri(path) else media_kind(Path(path))
    return InputItem(path, kind, "" if kind else "not a video or image file")


def manifest_items(manifest: Path) -> list[InputItem]:
    """A manifest's entries as inputs, unchecked (a missing file is its row's error later,
    in a worker): the driver of millions of files neither lists nor stats them. Relative
    paths are taken from the manifest's folder, so a manifest kept beside its files works
    from anywhere."""
    return [unchecked_item(entry if is_uri(entry)
                           else os.path.abspath(os.path.join(manifest.parent, entry)))
            for entry in read_manifest(manifest)]


def kind_error(kind: str | None, video_model: bool) -> str:
    """Why a file of `kind` cannot go through the model ("" when it can)."""
    if kind is None or (kind == "video") == video_model:
        return ""
    wanted = "image" if kind == "image" else "video"
    names = [n for n in BUILTIN if ARCHITECTURES[n].is_video == (wanted == "video")]
    article = "an" if wanted == "image" else "a"
    return (f"this is {article} {wanted}, and the model is not: classify it with {article} "
            f"{wanted} model ({', '.join(names)})")
