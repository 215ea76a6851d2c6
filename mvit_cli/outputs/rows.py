"""Rows appended as results come: CSV and JSON Lines, and JSON Lines on standard output.

Each result's rows are written and flushed together as soon as it is done, so a hard kill
loses at most the row being written (and the next run cuts that torn row off). Every row
carries its provenance (architecture, weights name and sha256, protocol, mvit version):
rows stay self-describing when files are concatenated, filtered or loaded into a data
frame. `RowsWriter` holds what both jobs share; classify's rows (one per file) are here,
the timeline's (one per window) in `window_rows`.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from .stamp import STAMP_COLUMNS, OutputError
from .writer import (NOT_OURS, OutputWriter, check_records, complete_csv_rows,
                     complete_json_lines, csv_records, has_content, read_text, truncate,
                     write_lines)
from ..jobs.classify import FileResult
from ..media.discover import identity, printable

RESULT_COLUMNS = ("error", "warning", "duration", "frames", "views")


def rank_columns(top_k: int) -> list[str]:
    return [f"{kind}_{r}" for r in range(1, top_k + 1) for kind in ("label", "score")]


class RowsWriter(OutputWriter):
    """Rows of `columns(top_k)`, as CSV (`csv_file`) or JSON Lines, appended and flushed."""

    csv_file = False

    @classmethod
    def columns(cls, top_k: int) -> list[str]:
        raise NotImplementedError

    def rows(self, result: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def refuse_header(cls, path: Path, top_k: int, found: list[str]) -> OutputError:
        """The refusal of a CSV file whose header is not this run's."""
        raise NotImplementedError

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None
                      ) -> tuple[list, int]:
        """The records an output holds already and the length of its complete part (a kill
        can leave half a row); refuses one not made like this run (see `check_records`)."""
        if not has_content(path):
            return [], 0
        columns = cls.columns(top_k)
        text = read_text(path)
        if cls.csv_file:
            rows, complete = complete_csv_rows(text)
            if not rows or rows[0] != columns:
                raise cls.refuse_header(path, top_k, rows[0] if rows else [])
            records = csv_records(path, rows[1:], columns)
        else:
            records, complete = complete_json_lines(path, text)
        check_records(path, records, top_k, stamp, columns)
        return records, complete

    def _resume(self) -> None:
        records, complete = self.read_existing(self.path, self.top_k, self.stamp)
        if complete:
            self.done = {identity(record["path"]) for record in records}
            truncate(self.path, complete)
        new = not has_content(self.path)
        self.handle = open(self.path, "a", newline="" if self.csv_file else None,
                           encoding="utf-8")
        if new and self.csv_file:
            csv.writer(self.handle).writerow(self.columns(self.top_k))
            self.handle.flush()

    def write(self, result: Any) -> None:
        rows = self.rows(result)
        if self.csv_file:
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=self.columns(self.top_k)).writerows(rows)
            self.handle.write(buffer.getvalue())
            self.handle.flush()
        else:
            write_lines(self.handle, rows)


# ---- classify: one row per file ------------------------------------------------------------

def file_columns(top_k: int) -> list[str]:
    return ["path", *rank_columns(top_k), *RESULT_COLUMNS, *STAMP_COLUMNS]


def file_record(result: FileResult, top_k: int, stamp: dict[str, str]) -> dict[str, Any]:
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


class FileRows(RowsWriter):
    """Classify's rows: `options` is the top-k."""

    @classmethod
    def columns(cls, top_k: int) -> list[str]:
        return file_columns(top_k)

    def rows(self, result: FileResult) -> list[dict[str, Any]]:
        return [file_record(result, self.top_k, self.stamp)]

    @classmethod
    def refuse_header(cls, path: Path, top_k: int, found: list[str]) -> OutputError:
        if found[:1] == ["path"] and all(c in found for c in STAMP_COLUMNS):
            ranks = sum(1 for c in found if c.startswith("label_"))
            return OutputError(f"{path}: was made with top-k {ranks} (this run: "
                               f"{top_k}); resume with the same, use --overwrite to start "
                               "afresh, or choose another --output")
        return OutputError(f"{path}: not an output of this mvit (its columns differ); "
                           f"{NOT_OURS}")


class FileRowsCsv(FileRows):
    csv_file = True


class FileRowsJsonLines(FileRows):
    pass


class FileRowsStdout(FileRowsJsonLines):
    """`-o -`: JSON Lines on standard output, for pipes (no lock, nothing to resume)."""

    def _take_lock(self) -> None:
        return None

    def _remove_existing(self) -> None:
        """Nothing to remove: standard output is not a file of ours."""

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None
                      ) -> tuple[list, int]:
        return [], 0

    def _resume(self) -> None:
        self.handle = sys.stdout

    def close(self) -> None:
        self.handle.flush()
