"""The rules for resuming an output, once for every format: what is there, and whether
it is ours.

A hard kill can cut an output's last row short, so what is read back is the text up to its
last complete row (and the next run cuts the torn rest off, only once the rest was found to
be ours). A file whose rows are not mvit's, or were made with another top-k or other
provenance, is refused in one line and left untouched: resuming it would append to it, or
mix two models' results in one file. Formats written whole keep their rows in a journal
beside them until the run ends (`journal_of`); it is read back by the same rules.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from .stamp import STAMP_COLUMNS, OutputError, other_settings, stamp_differences
from ..media.discover import identity

NOT_OURS = "use --overwrite to replace it, or another --output"


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


class OutputFile:
    """What every format's object holds: the output's path, what shapes its rows (`options`:
    classify's top-k, or the timeline's `Settings`), this run's stamp, the files done and
    the open file rows are appended to."""

    locked = True

    def __init__(self, path: Path, options: Any, stamp: dict[str, str]) -> None:
        self.path, self.options, self.stamp = path, options, stamp
        self.done: set[str] = set()
        self.handle: TextIO | None = None

    @classmethod
    def lock_path(cls, path: str | Path) -> Path:
        return Path(path)

    @property
    def top_k(self) -> int:
        return self.options if isinstance(self.options, int) else self.options.top_k

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def is_done(self, path: str) -> bool:
        return identity(path) in self.done

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
