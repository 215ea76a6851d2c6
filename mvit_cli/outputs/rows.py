"""Rows appended as results come: CSV and JSON Lines, and JSON Lines on standard output.

Each result's rows are written and flushed together as soon as it is done, so a hard kill
loses at most the row being written (and the next run cuts that torn row off). Every row
carries its provenance (architecture, weights name and sha256, protocol, mvit version):
rows stay self-describing when files are concatenated, filtered or loaded into a data
frame. Classify writes one row per file; the timeline one per window (path, start and end
in seconds, top-k labels and scores, error), a video's rows together when it is done, so a
resumed timeline works per video as classify does per file.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .resume import (NOT_OURS, OutputFile, check_records, complete_csv_rows,
                     complete_json_lines, csv_records, has_content, read_text, truncate,
                     write_lines)
from .stamp import STAMP_COLUMNS, OutputError
from ..jobs.classify import FileResult
from ..media.discover import identity, printable

if TYPE_CHECKING:
    from ..jobs.timeline import VideoTimeline

RESULT_COLUMNS = ("error", "warning", "duration", "frames", "views")


def rank_columns(top_k: int) -> list[str]:
    return [f"{kind}_{r}" for r in range(1, top_k + 1) for kind in ("label", "score")]


class Rows(OutputFile):
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

    def resume(self) -> set[str]:
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
        return self.done

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


class FileRows(Rows):
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

    locked = False

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None
                      ) -> tuple[list, int]:
        return [], 0

    def remove(self) -> None:
        """Nothing to remove: standard output is not a file of ours."""

    def resume(self) -> set[str]:
        self.handle = sys.stdout
        return self.done

    def close(self) -> None:
        self.handle.flush()


# ---- timeline: one row per window ----------------------------------------------------------

def window_columns(k: int) -> list[str]:
    return ["path", "start", "end", *rank_columns(k), "error", *STAMP_COLUMNS]


class WindowRows(Rows):
    """The timeline's rows: `options` is its `Settings` (labels and top-k)."""

    @classmethod
    def columns(cls, top_k: int) -> list[str]:
        return window_columns(top_k)

    @classmethod
    def refuse_header(cls, path: Path, top_k: int, found: list[str]) -> OutputError:
        return OutputError(f"{path}: not a timeline of this mvit with top-k {top_k} "
                           "(its columns differ); use --overwrite or another --output")

    def rows(self, video: VideoTimeline) -> list[dict[str, Any]]:
        # Imported here: it imports the timeline engine, and so torch, which classify's rows
        # (checked before the model loads) must not wait for.
        from ..jobs.segments import top_k as window_top_k

        k, labels = self.top_k, self.options.labels
        empty = {name: None for name in rank_columns(k)}
        path = printable(video.path)
        if not video.ok:
            return [{"path": path, "start": None, "end": None, **empty, "error": video.error,
                     **self.stamp}]
        rows = []
        for window in video.windows:
            names, scores = window_top_k(window, labels, k)
            ranks = dict(empty)
            for rank, (name, score) in enumerate(zip(names, scores, strict=True), start=1):
                ranks[f"label_{rank}"], ranks[f"score_{rank}"] = name, round(score, 6)
            rows.append({"path": path, "start": round(window.start, 3),
                         "end": round(window.end, 3), **ranks, "error": "", **self.stamp})
        return rows


class WindowRowsCsv(WindowRows):
    csv_file = True


class WindowRowsJsonLines(WindowRows):
    pass
