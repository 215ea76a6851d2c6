"""The timeline's rows: one per window, as CSV or JSON Lines.

Each row holds the path, the window's start and end in seconds, its top-k labels and scores,
an error (a video that failed has one row, with its error and no window) and classify's
provenance columns. A video's rows are written together when it is done, so a resumed run
works per video, as classify's per file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .rows import RowsWriter, rank_columns
from .stamp import STAMP_COLUMNS, OutputError
from ..engines.local.timeline_runner import VideoTimeline
from ..jobs.segments import top_k
from ..media.discover import printable


def window_columns(k: int) -> list[str]:
    return ["path", "start", "end", *rank_columns(k), "error", *STAMP_COLUMNS]


class WindowRows(RowsWriter):
    """`options`: the timeline's `Settings` (labels and top-k)."""

    @classmethod
    def columns(cls, top_k: int) -> list[str]:
        return window_columns(top_k)

    @classmethod
    def refuse_header(cls, path: Path, top_k: int, found: list[str]) -> OutputError:
        return OutputError(f"{path}: not a timeline of this mvit with top-k {top_k} "
                           "(its columns differ); use --overwrite or another --output")

    def rows(self, video: VideoTimeline) -> list[dict[str, Any]]:
        k, labels = self.top_k, self.options.labels
        empty = {name: None for name in rank_columns(k)}
        path = printable(video.path)
        if not video.ok:
            return [{"path": path, "start": None, "end": None, **empty, "error": video.error,
                     **self.stamp}]
        rows = []
        for window in video.windows:
            names, scores = top_k(window, labels, k)
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
