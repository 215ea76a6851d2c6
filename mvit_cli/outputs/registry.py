"""Every output format mvit writes, in one table: the options' help, the suffix checks and
the choice of format class all read it, so a format added here is offered, checked and
written.

Each entry names its job (classify's `-o`, timeline's `-o`, or `--features` of either), its
suffix, what it holds, the class that writes and reads it back, and the extra package it
needs. The classes are named, not imported: `mvit --help` builds its option texts from this
table and must answer without importing them (and what they import).

The lifecycle every output follows (lock, resume, write, close) is `writer.OutputWriter`;
this module is how a command reaches it: `check_output` before any work, `lock_output_of`
and `check_existing` before the model loads, `open_output`/`open_timeline_output` once it
has.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..extras import install_hint
from .stamp import OutputError
from .writer import STDOUT, OutputWriter, lock_output

if TYPE_CHECKING:
    from filelock import FileLock

    from .features import FeatureWriter

Job = Literal["classify", "timeline", "features"]


@dataclass(frozen=True)
class OutputFormat:
    """One format of one job. `holds` and `aside` are what the option's help and the
    suffix errors say of it; `needs` is checked before any work, so that a missing pyarrow
    is one line at the start rather than a traceback at the end of a long run."""

    name: str
    suffix: str  # lower case, with its dot; "-" for standard output
    job: Job
    holds: str  # what the file holds, as the option's help groups formats
    description: str
    format_class: str  # "module:Class" in mvit_cli.outputs: how it is written and read back
    needs: str | None = None  # a module it needs that mvit does not require
    extra: str | None = None  # the pip extra that installs it
    aside: str = ""  # a word after the suffix where formats are listed, e.g. "ActivityNet"
    per_video: bool = False  # one file per video: several videos need {stem} in the name

    @property
    def stream(self) -> bool:
        return self.suffix == STDOUT

    def resolve(self) -> type:
        """The class of `format_class` (its module imported now, on first use)."""
        module, name = self.format_class.split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)


FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat("csv", ".csv", "classify", "rows", "one row per file, with a header",
                 "rows:FileRowsCsv"),
    OutputFormat("jsonl", ".jsonl", "classify", "rows", "one JSON object per line and file",
                 "rows:FileRowsJsonLines"),
    OutputFormat("json", ".json", "classify", "rows", "one JSON array of the rows, written "
                 "whole at the end", "whole_files:FileRowsJsonArray"),
    OutputFormat("parquet", ".parquet", "classify", "rows", "a table of the rows, written "
                 "whole at the end", "whole_files:FileRowsParquet", needs="pyarrow",
                 extra="parquet"),
    OutputFormat("stdout", STDOUT, "classify", "rows", "JSON Lines on standard output",
                 "rows:FileRowsStdout"),
    OutputFormat("csv", ".csv", "timeline", "rows", "one row per window, with a header",
                 "rows:WindowRowsCsv"),
    OutputFormat("jsonl", ".jsonl", "timeline", "rows", "one JSON object per line and window",
                 "rows:WindowRowsJsonLines"),
    OutputFormat("activitynet", ".json", "timeline", "segments", "merged segments in "
                 "ActivityNet's detection format", "whole_files:ActivityNet",
                 aside="ActivityNet"),
    OutputFormat("vtt", ".vtt", "timeline", "segments", "WebVTT subtitles, a cue per segment",
                 "subtitles:Subtitles", per_video=True),
    OutputFormat("srt", ".srt", "timeline", "segments", "SubRip subtitles, a cue per segment",
                 "subtitles:Subtitles", per_video=True),
    OutputFormat("npy", ".npy", "features", "features", "a structured numpy array",
                 "features:NpyFeatures"),
    OutputFormat("safetensors", ".safetensors", "features", "features", "tensors, the paths "
                 "and provenance in the metadata", "features:SafetensorsFeatures"),
    OutputFormat("parquet", ".parquet", "features", "features", "a table, the provenance in "
                 "its metadata", "features:ParquetFeatures", needs="pyarrow",
                 extra="parquet"),
)


def formats(job: Job, holds: str | None = None) -> list[OutputFormat]:
    return [f for f in FORMATS if f.job == job and (holds is None or f.holds == holds)]


def format_of(job: Job, path: str | Path) -> OutputFormat | None:
    """The entry that writes `path` for `job` (None: no format has its suffix)."""
    suffix = STDOUT if str(path) == STDOUT else Path(path).suffix.lower()
    return next((f for f in formats(job) if f.suffix == suffix), None)


# ---- texts ---------------------------------------------------------------------------------

def either(words: list[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def suffixes(job: Job, holds: str | None = None, first: str = "", asides: str = "") -> str:
    """The suffixes of `job`'s files as a sentence lists them: the first after `first`
    ("FILE"), an entry's aside in brackets followed by `asides` ("segments")."""
    words = [f"{f.suffix} ({f.aside}{asides})" if f.aside else f.suffix
             for f in formats(job, holds) if not f.stream]
    words[0] = first + words[0]
    return either(words)


def classify_output_help() -> str:
    return (f"Write one row per file to {suffixes('classify', first='FILE')} (resumed if it "
            "exists), or - for JSON Lines on standard output.")


def timeline_output_help() -> str:
    return (f"Rows per window to {suffixes('timeline', 'rows')}; segments to "
            f"{suffixes('timeline', 'segments')} ({{stem}} in the name: one file per video). "
            "Resumed if it exists.")


def features_suffixes() -> str:
    """"FILE.npy, .safetensors or .parquet", for --features' help."""
    return suffixes("features", first="FILE")


# ---- checks before any work ----------------------------------------------------------------

def _needs(entry: OutputFormat, option: str) -> None:
    """Refuse a format whose extra package is not installed, before any work."""
    if entry.needs is None:
        return
    try:
        importlib.import_module(entry.needs)
    except ImportError:
        raise OutputError(f"{option} {entry.suffix} needs {entry.needs}: "
                          f"{install_hint(entry.extra or entry.needs)}") from None


def check_output(job: Job, path: str | Path, videos: int = 1) -> OutputFormat:
    """Refuse an output we cannot write before any work is done (no file is created)."""
    entry = format_of(job, path)
    if job == "classify":
        if entry is None:
            raise OutputError(f"{path}: the output must end in {suffixes(job)} (or be - for "
                              "JSON Lines on standard output)")
        _needs(entry, "-o")
        if not entry.stream and Path(path).is_dir():
            raise OutputError(f"{path}: is a folder; give a file name")
    elif job == "timeline":
        if entry is None:
            raise OutputError(f"{path}: a timeline output ends in "
                              f"{suffixes(job, asides=' segments')}")
        if entry.per_video and videos > 1 and "{stem}" not in str(path):
            raise OutputError(f"{path}: subtitles are one file per video; for several videos "
                              "put {stem} in the name, e.g. subs/{stem}.vtt")
    else:
        if entry is None:
            raise OutputError(f"{path}: features go to {suffixes(job)}")
        _needs(entry, "--features")
    return entry


def lock_output_of(job: Job, path: str | Path) -> FileLock | None:
    """Take the lock that guards `path`'s output for this run (None for `-`): taken once,
    before the model loads, and handed to the writer, which releases it when closed."""
    file_format = check_output(job, path, videos=1).resolve()
    return lock_output(file_format.lock_path(path)) if file_format.locked else None


def check_existing(job: Job, path: str | Path, top_k: int, overwrite: bool = False) -> None:
    """Refuse, before the model loads, what opening the output would refuse after it: a file
    that is not an output of mvit, or one made with another top-k. (Only the weights and the
    protocol it records need the model; they are checked when the output is opened.)
    Subtitles are checked per video."""
    entry = format_of(job, path)
    if overwrite or entry is None or entry.stream or entry.per_video:
        return
    entry.resolve().read_existing(Path(path), top_k, None)


# ---- opening -------------------------------------------------------------------------------

def open_writer(job: Job, path: str | Path, options: Any, stamp: dict[str, str],
                overwrite: bool = False, lock: FileLock | None = None) -> OutputWriter:
    """A writer for `path`, resuming what is there if it was made the same way. `options`:
    classify's top-k, or the timeline's `Settings`; `lock`: one `lock_output_of` took
    already (the writer releases it when closed)."""
    entry = check_output(job, path, videos=1)
    if not entry.per_video:  # a template names its files itself, as given
        path = Path(path)
        if not entry.stream:
            path.parent.mkdir(parents=True, exist_ok=True)
    return OutputWriter(entry.resolve(), path, options, stamp, overwrite, lock)


def open_output(path: str | Path, top_k: int, stamp: dict[str, str], overwrite: bool = False,
                lock: FileLock | None = None) -> OutputWriter:
    """Classify's writer for `path` (or `-`): see `open_writer`."""
    return open_writer("classify", path, top_k, stamp, overwrite, lock)


def open_timeline_output(path: str | Path, settings: Any, stamp: dict[str, str],
                         overwrite: bool, lock: FileLock | None = None) -> OutputWriter:
    """The timeline's writer for `path`: see `open_writer`."""
    return open_writer("timeline", path, settings, stamp, overwrite, lock)


def open_features(path: str | Path, stamp: dict[str, str]) -> FeatureWriter:
    """A features writer for `path`, keeping what the file holds if made the same way."""
    from .features import FeatureWriter

    return FeatureWriter(path, stamp, check_output("features", path).resolve())


def read_features(path: str | Path):
    """(keys (path, start, end), features (N, width)) from any features format."""
    from .features import read_feature_file

    return read_feature_file(path, check_output("features", path).resolve())
