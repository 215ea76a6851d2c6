"""Result files that survive interruptions: CSV, JSON Lines, or one JSON array.

Each row is written and flushed as soon as its file is done, so a hard kill loses at most
the row being written. Opening an existing output resumes it: a cut-off last row is cut
away, the paths already there are reported as done (the run skips them), and new rows are
appended, never duplicated. A `.json` array can only be written whole, so its rows go to a
journal beside it (`.NAME.partial.jsonl`) until the run ends.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from .runner import FileResult

EXTRA_COLUMNS = ("error", "duration", "frames", "views")


class OutputError(ValueError):
    """An output file we cannot resume or write; one line."""


def result_record(result: FileResult, top_k: int) -> dict[str, Any]:
    """One output row; absent values are None (null in JSON, empty in CSV)."""
    record: dict[str, Any] = {"path": result.path}
    for rank in range(top_k):
        has = rank < len(result.labels)
        record[f"label_{rank + 1}"] = result.labels[rank] if has else None
        record[f"score_{rank + 1}"] = round(result.scores[rank], 6) if has else None
    record["error"] = result.error
    record["duration"] = round(result.duration, 3) if result.duration is not None else None
    record["frames"] = result.frames
    record["views"] = result.views or None
    return record


def _cut_incomplete_tail(path: Path) -> None:
    """Drop bytes after the last newline: the row a hard kill interrupted."""
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        data = handle.seek(0) or handle.read()
        handle.truncate(data.rfind(b"\n") + 1)


class _Writer:
    def __init__(self, path: Path, top_k: int, overwrite: bool) -> None:
        self.path, self.top_k = path, top_k
        self.done: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            self._remove_existing()
        self._open()

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)

    def _open(self) -> None:
        raise NotImplementedError

    def write(self, result: FileResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.handle.close()


class CsvWriter(_Writer):
    def _columns(self) -> list[str]:
        ranks = [f"{kind}_{r}" for r in range(1, self.top_k + 1) for kind in ("label", "score")]
        return ["path", *ranks, *EXTRA_COLUMNS]

    def _open(self) -> None:
        columns = self._columns()
        if self.path.exists() and self.path.stat().st_size:
            _cut_incomplete_tail(self.path)
            with open(self.path, newline="", encoding="utf-8") as handle:
                rows = list(csv.reader(handle))
            if rows and rows[0] != columns:
                raise OutputError(
                    f"{self.path}: its columns differ from this run's (another --top-k?); "
                    "use --overwrite to start afresh or another --output")
            self.done = {row[0] for row in rows[1:] if row}
            self.handle = open(self.path, "a", newline="", encoding="utf-8")
        else:
            self.handle = open(self.path, "w", newline="", encoding="utf-8")
            csv.writer(self.handle).writerow(columns)
            self.handle.flush()
        self.writer = csv.DictWriter(self.handle, fieldnames=columns)

    def write(self, result: FileResult) -> None:
        self.writer.writerow(result_record(result, self.top_k))
        self.handle.flush()


def _read_jsonl(path: Path) -> list[dict]:
    records = []
    for line in path.read_text("utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # an interrupted line: dropped, its file is classified again
    return records


class JsonLinesWriter(_Writer):
    def _open(self) -> None:
        if self.path.exists():
            _cut_incomplete_tail(self.path)
            records = _read_jsonl(self.path)
            self.done = {r.get("path") for r in records}
            # Rewrite without any undecodable line, then append.
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            self.path.write_text(text, "utf-8")
        self.handle = open(self.path, "a", encoding="utf-8")

    def write(self, result: FileResult) -> None:
        self.handle.write(json.dumps(result_record(result, self.top_k), ensure_ascii=False) + "\n")
        self.handle.flush()


class JsonArrayWriter(_Writer):
    @property
    def journal(self) -> Path:
        return self.path.with_name(f".{self.path.name}.partial.jsonl")

    def _remove_existing(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    def _open(self) -> None:
        self.records: list[dict] = []
        if self.path.exists() and self.path.stat().st_size:
            try:
                self.records = json.loads(self.path.read_text("utf-8"))
            except ValueError:
                raise OutputError(f"{self.path}: not a JSON array we wrote; use --overwrite "
                                  "or another --output") from None
        if self.journal.exists():
            _cut_incomplete_tail(self.journal)
            known = {r.get("path") for r in self.records}
            self.records += [r for r in _read_jsonl(self.journal) if r.get("path") not in known]
        self.done = {r.get("path") for r in self.records}
        self.handle = open(self.journal, "a", encoding="utf-8")

    def write(self, result: FileResult) -> None:
        record = result_record(result, self.top_k)
        self.records.append(record)
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with io.open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.records, handle, ensure_ascii=False, indent=1)
            handle.write("\n")
        tmp.replace(self.path)
        self.journal.unlink(missing_ok=True)


WRITERS = {".csv": CsvWriter, ".jsonl": JsonLinesWriter, ".json": JsonArrayWriter}


def open_output(path: Path, top_k: int, overwrite: bool) -> _Writer:
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise OutputError(f"{path}: the output must end in .csv, .jsonl or .json")
    return writer(path, top_k, overwrite)
