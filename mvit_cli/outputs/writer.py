"""One lifecycle for every resumable output: lock, read what is there, resume, write, close.

A run holds its output's lock from before the model loads until its writer closes, so two
runs never append to one file (duplicate rows) or rewrite each other's. Opening an output
that exists resumes it, but only an output of ours made the same way: its rows are read
(up to the last complete one: a hard kill can cut the last row short), checked field by
field against this run's settings and provenance, the torn tail cut off, and the files they
cover reported as done (by identity) so the run skips them. A file that is not ours is
refused in one line and left untouched; `--overwrite` starts afresh.

Formats that can only be written whole (a JSON array, Parquet, an ActivityNet document)
share one path: rows go to a journal beside the output (`.NAME.partial.jsonl`), one line
each, flushed; at the end the whole file is written to a temporary and renamed into place,
and only then is the journal removed. A kill at any point leaves the last whole file and
the journal, which the next run reads back.

The rules for reading an existing output (torn rows, foreign files, other settings) live
here, once, for every format.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock, Timeout

from .stamp import STAMP_COLUMNS, OutputError, other_settings, stamp_differences
from ..fileio import atomic_path
from ..media.discover import identity

STDOUT = "-"
NOT_OURS = "use --overwrite to replace it, or another --output"


# ---- the lock ------------------------------------------------------------------------------

def lock_output(path: str | Path) -> FileLock | None:
    """Hold `path` for this run (None for `-`): one run writes an output at a time, and a
    second refuses at once, rather than both appending (duplicate rows) or rewriting each
    other's file. The lock is a dot file beside the output."""
    if str(path) == STDOUT:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.with_name(f".{path.name}.lock")), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"{path}: another mvit run is writing it now; wait for that one "
                          "to finish, or choose another --output") from None
    return lock


def journal_of(path: Path) -> Path:
    """Where a format written whole keeps its rows until the run ends."""
    return path.with_name(f".{path.name}.partial.jsonl")


# ---- reading what is there, without changing it --------------------------------------------

def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError(f"{path}: not UTF-8 text, so not an output of mvit; {NOT_OURS}"
                          ) from None


def has_content(path: Path) -> bool:
    return path.exists() and bool(path.stat().st_size)


def complete_csv(text: str) -> int:
    """Length of the text up to its last complete CSV record.

    A record ends at a newline outside quotes; quotes inside fields are doubled, so a newline
    is outside quotes exactly when the quotes before it are even in number. (A kill can cut a
    row inside a quoted field that holds a newline: cutting at the last newline byte would
    keep half a row.)
    """
    end = quotes = 0
    for position, char in enumerate(text):
        if char == '"':
            quotes += 1
        elif char == "\n" and quotes % 2 == 0:
            end = position + 1
    return end


def complete_csv_rows(text: str) -> tuple[list[list[str]], int]:
    """The rows of a CSV text up to its last complete record, and that length."""
    end = complete_csv(text)
    return list(csv.reader(io.StringIO(text[:end], newline=""))), end


def csv_records(path: Path, rows: list[list[str]], header: list[str]) -> list[dict[str, str]]:
    """The rows after the header as records. Refuses a row with other columns (blank lines
    aside): mvit never writes one, so the file is not ours as written, and resuming would
    append to it and run again whatever that row held."""
    if any(len(row) != len(header) for row in rows if row):
        raise OutputError(f"{path}: some rows do not have mvit's columns; {NOT_OURS}")
    return [dict(zip(header, row, strict=True)) for row in rows if row]


def complete_lines(text: str) -> int:
    """Length up to the last newline: a JSON Lines record is one line ending in "\\n"."""
    return text.rfind("\n") + 1


def complete_json_lines(path: Path, text: str) -> tuple[list[dict], int]:
    """The records of a JSON Lines text up to its last newline, and that length (what
    follows is a record a kill cut short). Refuses text after the last newline that cannot
    be the start of a record: without this, "hello" named .jsonl reads as an empty output of
    ours, and resuming it would cut it to nothing or append to it."""
    end = complete_lines(text)
    tail = text[end:]
    if tail.strip() and not tail.lstrip().startswith("{"):
        raise OutputError(f"{path}: its last line is not JSON, so this is not an output of "
                          f"mvit; {NOT_OURS}")
    return json_lines(path, text[:end]), end


def json_lines(path: Path, text: str) -> list[dict]:
    records = []
    # Split on "\n" only: JSON strings may hold U+2028 or U+0085, which splitlines() breaks at.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise OutputError(f"{path}: line {number} is not JSON, so this is not an output "
                              f"of mvit; {NOT_OURS}") from None
        records.append(record)
    return records


def check_records(path: Path, records: list, top_k: int, stamp: dict[str, str] | None,
                  expected: list[str]) -> set[str]:
    """The identities of the files these records cover; refuses records not made like ours
    (`expected`: the fields each record must have). `stamp` None: everything but the
    provenance values, which are known only once the model has loaded, so that a file that
    is not ours is refused before that work."""
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise OutputError(f"{path}: holds records that are not mvit's (no path); "
                              f"{NOT_OURS}")
        missing = [key for key in STAMP_COLUMNS if key not in record]
        if missing:
            raise OutputError(f"{path}: its rows do not say what made them (no "
                              f"{', '.join(missing)}): made by an older mvit or another "
                              f"program; {NOT_OURS}")
        differences = stamp_differences(record, stamp)
        ranks = sum(1 for key in record if key.startswith("label_"))
        if ranks != top_k:
            differences.insert(0, f"top-k {ranks} (this run: {top_k})")
        if differences:
            raise other_settings(path, differences)
        if sorted(record) != sorted(expected):
            raise OutputError(f"{path}: its fields are not the ones mvit writes; {NOT_OURS}")
    return {identity(record["path"]) for record in records}


def truncate(path: Path, length: int) -> None:
    """Cut a row a kill left half-written (only after the rest was found to be ours)."""
    if length < path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.truncate(len(path.read_text("utf-8")[:length].encode("utf-8")))


def write_lines(handle: TextIO, records: Iterable[dict[str, Any]]) -> None:
    """JSON Lines, flushed together: a kill cuts at most the last line."""
    handle.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    handle.flush()


# ---- the lifecycle -------------------------------------------------------------------------

class OutputWriter:
    """Takes (or is given) the output's lock, starts afresh or resumes, writes, closes.

    `options`: what shapes the rows (classify's top-k, or the timeline's `Settings`).
    `done`: the identities of the files the output already holds. A subclass reads and
    checks what is there in `_resume`, and writes one result in `write`.
    """

    def __init__(self, path: Path, options: Any, stamp: dict[str, str], overwrite: bool,
                 lock: FileLock | None = None) -> None:
        self.path, self.options, self.stamp = path, options, stamp
        self.done: set[str] = set()
        self.handle: TextIO | None = None
        self._lock = lock if lock is not None else self._take_lock()
        try:
            if overwrite:
                self._remove_existing()
            self._resume()
        except BaseException:
            self._release()
            raise

    @classmethod
    def lock_path(cls, path: str | Path) -> Path:
        """The file whose lock guards the output named `path` (the output itself, for most
        formats): what a run locks before its writer exists."""
        return Path(path)

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None
                      ) -> tuple[Any, int]:
        """What the output at `path` holds already, and the length of its complete part;
        refuses an output not made like this run. `stamp` None: its form only, checked
        before the model loads (the provenance is known only once it has)."""
        raise NotImplementedError

    def _take_lock(self) -> FileLock | None:
        return lock_output(self.path)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)

    def _resume(self) -> None:
        raise NotImplementedError

    @property
    def top_k(self) -> int:
        return self.options if isinstance(self.options, int) else self.options.top_k

    def is_done(self, path: str) -> bool:
        """Whether the output already holds this file (a resumed run skips it)."""
        return identity(path) in self.done

    def write(self, result: Any) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """What closing adds once the rows are flushed (writing a whole file)."""

    def close(self) -> None:
        try:
            if self.handle is not None:
                self.handle.close()
            self._finish()
        finally:
            self._release()


class JournalledWholeFile(OutputWriter):
    """A format written whole at the end, its rows journalled beside it until then.

    A subclass says how the whole file is read (`_read_whole`: checked, into its state),
    how journal records join that state (`_absorb`), what one result adds to both
    (`_take`) and how the state is written whole (`_write_whole`).
    """

    @property
    def journal(self) -> Path:
        return journal_of(self.path)

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None
                      ) -> tuple[Any, int]:
        """The state held already (the whole file's, then its journal's) and the length of
        the journal's complete part; refuses either if not made like this run."""
        state = cls._empty_state()
        if has_content(path):
            cls._read_whole(path, state, top_k, stamp)
        journal, journal_end = journal_of(path), 0
        if journal.exists():
            journaled, journal_end = complete_json_lines(journal, read_text(journal))
            cls._absorb(path, journal, journaled, state, top_k, stamp)
        return state, journal_end

    def _resume(self) -> None:
        self.state, journal_end = self.read_existing(self.path, self.top_k, self.stamp)
        if self.journal.exists():
            truncate(self.journal, journal_end)
        self.done = {identity(p) for p in self._paths(self.state)}
        self.handle = open(self.journal, "a", encoding="utf-8")

    def write(self, result: Any) -> None:
        write_lines(self.handle, self._take(result))

    def _finish(self) -> None:
        with atomic_path(self.path, suffix=self._temporary_suffix()) as tmp:
            self._write_whole(tmp)
        self.journal.unlink(missing_ok=True)

    # what each format says

    def _temporary_suffix(self) -> str:
        return self.path.suffix

    @staticmethod
    def _empty_state() -> Any:
        raise NotImplementedError

    @classmethod
    def _read_whole(cls, path: Path, state: Any, top_k: int, stamp: dict[str, str] | None
                    ) -> None:
        raise NotImplementedError

    @classmethod
    def _absorb(cls, path: Path, journal: Path, records: list[dict], state: Any, top_k: int,
                stamp: dict[str, str] | None) -> None:
        raise NotImplementedError

    @staticmethod
    def _paths(state: Any) -> Iterable[str]:
        raise NotImplementedError

    def _take(self, result: Any) -> list[dict[str, Any]]:
        """Add one result to the state; what the journal keeps of it until the end."""
        raise NotImplementedError

    def _write_whole(self, tmp: Path) -> None:
        raise NotImplementedError
