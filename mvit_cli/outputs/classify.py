"""Result files that survive interruptions and say what made them: CSV, JSON Lines, JSON.

Each row is written and flushed as soon as its file is done, so a hard kill loses at most
the row being written. Every row carries its provenance (architecture, weights name and
sha256, protocol, mvit version): rows stay self-describing when files are concatenated,
filtered or loaded into a data frame.

Opening an existing output resumes it, but only an output of ours made the same way: a file
whose rows are not ours, or were made with other weights, another protocol, another top-k or
another mvit version, is refused in one line and left untouched (`overwrite` starts afresh).
A resumed file loses only a row cut off by a kill; the files already in it are reported as
done (by resolved path) and skipped. A `.json` array can only be written whole, so its rows go
to a journal beside it (`.NAME.partial.jsonl`) until the run ends. `-` writes JSON Lines to
standard output.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock, Timeout

from ..errors import UsageError
from ..fileio import atomic_path
from ..media.discover import identity, printable
from ..jobs.classify import FileResult

RESULT_COLUMNS = ("error", "warning", "duration", "frames", "views")
# What made a row: compared field by field when an output is resumed.
STAMP_COLUMNS = ("model", "weights", "weights_sha256", "protocol", "mvit_version")
STDOUT = "-"
SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


class OutputError(UsageError):
    """An output we must not resume or cannot write as asked; one line, exit 2."""


def make_stamp(provenance, protocol) -> dict[str, str]:
    """The provenance fields every row of a run carries."""
    return {"model": provenance.architecture, "weights": provenance.weights,
            "weights_sha256": provenance.sha256, "protocol": protocol.describe(),
            "mvit_version": provenance.mvit_version}


def result_record(result: FileResult, top_k: int, stamp: dict[str, str]) -> dict[str, Any]:
    """One output row; absent values are None (null in JSON, empty in CSV)."""
    record: dict[str, Any] = {"path": printable(result.path)}
    for rank in range(top_k):
        has = rank < len(result.labels)
        record[f"label_{rank + 1}"] = result.labels[rank] if has else None
        record[f"score_{rank + 1}"] = round(result.scores[rank], 6) if has else None
    record["error"] = result.error
    record["warning"] = result.warning
    record["duration"] = round(result.duration, 3) if result.duration is not None else None
    record["frames"] = result.frames
    record["views"] = result.views or None
    record.update(stamp)
    return record


def columns(top_k: int) -> list[str]:
    ranks = [f"{kind}_{r}" for r in range(1, top_k + 1) for kind in ("label", "score")]
    return ["path", *ranks, *RESULT_COLUMNS, *STAMP_COLUMNS]


def check_output_path(path: str | Path) -> None:
    """Refuse an output we cannot write before any work is done (no file is created)."""
    if str(path) == STDOUT:
        return
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise OutputError(f"{path}: the output must end in .csv, .jsonl, .json or .parquet (or "
                          "be - for JSON Lines on standard output)")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OutputError("-o .parquet needs pyarrow: pip install 'mvit-cli[parquet]'") from None
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name")


# ---- reading what is there, without changing it --------------------------------------------

def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError(f"{path}: not UTF-8 text, so not an output of mvit; use --overwrite "
                          "to replace it, or another --output") from None


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
        raise OutputError(f"{path}: some rows do not have mvit's columns; use --overwrite "
                          "to replace it, or another --output")
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
                          "mvit; use --overwrite to replace it, or another --output")
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
                              "of mvit; use --overwrite to replace it, or another "
                              "--output") from None
        records.append(record)
    return records


def check_records(path: Path, records: list, top_k: int, stamp: dict[str, str] | None,
                   expected: list[str] | None = None) -> set[str]:
    """The identities of the files these records cover; refuses records not made like ours
    (`expected`: the fields each record must have; classify's by default). `stamp` None:
    everything but the provenance values, which are known only once the model has loaded,
    so that a file that is not ours is refused before that work."""
    expected = expected or columns(top_k)
    for record in records:
        if not isinstance(record, dict) or not isinstance(record.get("path"), str):
            raise OutputError(f"{path}: holds records that are not mvit's (no path); use "
                              "--overwrite to replace it, or another --output")
        missing = [key for key in STAMP_COLUMNS if key not in record]
        if missing:
            raise OutputError(f"{path}: its rows do not say what made them (no "
                              f"{', '.join(missing)}): made by an older mvit or another "
                              "program; use --overwrite to replace it, or another --output")
        differences = [f"{key} {record[key]!r} (this run: {stamp[key]!r})"
                       for key in STAMP_COLUMNS
                       if stamp is not None and str(record[key]) != stamp[key]]
        ranks = sum(1 for key in record if key.startswith("label_"))
        if ranks != top_k:
            differences.insert(0, f"top-k {ranks} (this run: {top_k})")
        if differences:
            raise OutputError(f"{path}: was made with other settings: {'; '.join(differences)}."
                              " Resume with the same ones, use --overwrite to start afresh, or "
                              "choose another --output")
        if sorted(record) != sorted(expected):
            raise OutputError(f"{path}: its fields are not the ones mvit writes; use "
                              "--overwrite to replace it, or another --output")
    return {identity(record["path"]) for record in records}


def truncate(path: Path, length: int) -> None:
    """Cut a row a kill left half-written (only after the rest was found to be ours)."""
    if length < path.stat().st_size:
        with open(path, "rb+") as handle:
            handle.truncate(len(path.read_text("utf-8")[:length].encode("utf-8")))


# ---- writers -------------------------------------------------------------------------------

class Writer:
    """Appends rows, flushed one by one. `done`: the files (by identity) already written."""

    def __init__(self, path: Path, top_k: int, stamp: dict[str, str], overwrite: bool,
                 lock: FileLock | None = None) -> None:
        self.path, self.top_k, self.stamp = path, top_k, stamp
        self.done: set[str] = set()
        self.handle: TextIO
        self._lock = lock or self._take_lock()
        try:
            if overwrite:
                self._remove_existing()
            self._open()
        except BaseException:
            self._release()
            raise

    def _take_lock(self) -> FileLock | None:
        return lock_output(self.path)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)

    @classmethod
    def existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        """The records an output holds already and the length of its complete part (a kill
        can leave half a row); refuses one not made like this run (see `check_records`)."""
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def record(self, result: FileResult) -> dict[str, Any]:
        return result_record(result, self.top_k, self.stamp)

    def write(self, result: FileResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self.handle.close()
        finally:
            self._release()


class CsvWriter(Writer):
    @classmethod
    def existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        if not (path.exists() and path.stat().st_size):
            return [], 0
        header = columns(top_k)
        rows, complete = complete_csv_rows(read_text(path))
        if not rows or rows[0] != header:
            cls._refuse_header(path, top_k, rows[0] if rows else [])
        records = csv_records(path, rows[1:], header)
        check_records(path, records, top_k, stamp)
        return records, complete

    def _open(self) -> None:
        header = columns(self.top_k)
        records, complete = self.existing(self.path, self.top_k, self.stamp)
        if complete:
            self.done = {identity(record["path"]) for record in records}
            truncate(self.path, complete)
            self.handle = open(self.path, "a", newline="", encoding="utf-8")
        else:
            self.handle = open(self.path, "w", newline="", encoding="utf-8")
            csv.writer(self.handle).writerow(header)
            self.handle.flush()
        self.writer = csv.DictWriter(self.handle, fieldnames=header)

    @staticmethod
    def _refuse_header(path: Path, top_k: int, found: list[str]) -> None:
        if found[:1] == ["path"] and all(c in found for c in STAMP_COLUMNS):
            ranks = sum(1 for c in found if c.startswith("label_"))
            raise OutputError(f"{path}: was made with top-k {ranks} (this run: "
                              f"{top_k}); resume with the same, use --overwrite to start "
                              "afresh, or choose another --output")
        raise OutputError(f"{path}: not an output of this mvit (its columns differ); use "
                          "--overwrite to replace it, or another --output")

    def write(self, result: FileResult) -> None:
        self.writer.writerow(self.record(result))
        self.handle.flush()


class JsonLinesWriter(Writer):
    @classmethod
    def existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        if not (path.exists() and path.stat().st_size):
            return [], 0
        records, complete = complete_json_lines(path, read_text(path))
        check_records(path, records, top_k, stamp)
        return records, complete

    def _open(self) -> None:
        records, complete = self.existing(self.path, self.top_k, self.stamp)
        if complete:
            self.done = {identity(record["path"]) for record in records}
            truncate(self.path, complete)
        self.handle = open(self.path, "a", encoding="utf-8")

    def write(self, result: FileResult) -> None:
        self.handle.write(json.dumps(self.record(result), ensure_ascii=False) + "\n")
        self.handle.flush()


class StdoutWriter(JsonLinesWriter):
    """`-o -`: JSON Lines on standard output, for pipes (nothing to resume)."""

    def _take_lock(self) -> None:
        return None

    @classmethod
    def existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        return [], 0

    def _open(self) -> None:
        self.handle = sys.stdout

    def close(self) -> None:
        self.handle.flush()


def journal_of(path: Path) -> Path:
    """Where a JSON array or Parquet output keeps its rows until the run ends."""
    return path.with_name(f".{path.name}.partial.jsonl")


class JsonArrayWriter(Writer):
    @property
    def journal(self) -> Path:
        return journal_of(self.path)

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    @classmethod
    def _whole(cls, path: Path) -> list:
        try:
            records = json.loads(read_text(path))
        except ValueError:
            records = None
        if not isinstance(records, list):
            raise OutputError(f"{path}: not a JSON array of mvit's records; use "
                              "--overwrite to replace it, or another --output")
        return records

    @classmethod
    def existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        """The written file's records, then the journal's that it lacks; the length is the
        journal's complete part."""
        records: list[dict] = []
        if path.exists() and path.stat().st_size:
            records = cls._whole(path)
            check_records(path, records, top_k, stamp)
        journal, journal_end = journal_of(path), 0
        if journal.exists():
            journaled, journal_end = complete_json_lines(journal, read_text(journal))
            check_records(journal, journaled, top_k, stamp)
            known = {identity(r["path"]) for r in records}
            records += [r for r in journaled if identity(r["path"]) not in known]
        return records, journal_end

    def _write_whole(self, tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.records, handle, ensure_ascii=False, indent=1)
            handle.write("\n")

    def _open(self) -> None:
        self.records, journal_end = self.existing(self.path, self.top_k, self.stamp)
        if self.journal.exists():
            truncate(self.journal, journal_end)
        self.done = {identity(r["path"]) for r in self.records}
        self.handle = open(self.journal, "a", encoding="utf-8")

    def write(self, result: FileResult) -> None:
        record = self.record(result)
        self.records.append(record)
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        try:
            self.handle.close()
            with atomic_path(self.path, suffix=self.path.suffix) as tmp:
                self._write_whole(tmp)
            self.journal.unlink(missing_ok=True)
        finally:
            self._release()


class ParquetWriter(JsonArrayWriter):
    """`-o labels.parquet`: the same records as a table (needs pyarrow), written whole at the
    end from the journal, like a JSON array; scores, duration, frames and views as numbers,
    the rest as strings."""

    @classmethod
    def _whole(cls, path: Path) -> list:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError):
            raise OutputError(f"{path}: not a Parquet file of mvit's records; use "
                              "--overwrite to replace it, or another --output") from None
        return table.to_pylist()

    def _write_whole(self, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = columns(self.top_k)
        types = {"duration": pa.float64(), "frames": pa.int64(), "views": pa.int64(),
                 **{f"score_{r}": pa.float64() for r in range(1, self.top_k + 1)}}
        schema = pa.schema([(name, types.get(name, pa.string())) for name in fields])
        rows = [{name: (None if record.get(name) in ("", None) and name in types
                        else record.get(name)) for name in fields} for record in self.records]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


WRITERS = {".csv": CsvWriter, ".jsonl": JsonLinesWriter, ".json": JsonArrayWriter,
           ".parquet": ParquetWriter}


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


def check_existing_output(path: str | Path, top_k: int, overwrite: bool = False) -> None:
    """Refuse, before the model loads, what `open_output` would refuse after it: a file that
    is not an output of mvit, or one made with another top-k. (Only the weights and the
    protocol it records need the model; they are checked when the output is opened.)"""
    if overwrite or str(path) == STDOUT:
        return
    path = Path(path)
    WRITERS[path.suffix.lower()].existing(path, top_k, None)


def open_output(path: str | Path, top_k: int, stamp: dict[str, str],
                overwrite: bool = False, lock: FileLock | None = None) -> Writer:
    """A writer for `path` (or `-`), resuming what is there if it was made the same way.
    `lock`: one `lock_output` took already (the writer releases it when closed)."""
    check_output_path(path)
    if str(path) == STDOUT:
        return StdoutWriter(Path(STDOUT), top_k, stamp, overwrite=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return WRITERS[path.suffix.lower()](path, top_k, stamp, overwrite, lock)
