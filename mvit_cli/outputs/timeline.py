"""Timeline outputs, by extension, each resumable and saying what made it.

- `.csv`, `.jsonl`: one row per window (path, start and end in seconds, top-k labels and
  scores, error) with classify's provenance columns; a video's rows are written together
  when it is done.
- `.json`: merged segments in ActivityNet's detection format, `{"version": "VERSION 1.3",
  "results": {video: [{"label", "score", "segment": [start, end]}]}, "external_data": {}}`,
  plus the provenance under "mvit". Written whole at the end; until then finished videos go
  to a journal beside it (`.NAME.partial.jsonl`).
- `.vtt` (WebVTT, with the provenance in a NOTE) and `.srt`: one cue per segment, its top
  label and score; one file per video (with several videos, the name holds `{stem}`). A
  manifest beside them (`.mvit-subtitles.jsonl`) records which files this tool wrote and how,
  so a resumed run skips them and nothing else is ever overwritten.

Resuming works per video, as classify's per file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .classify import (STAMP_COLUMNS, OutputError, check_records, complete_csv_rows,
                               complete_json_lines, complete_lines, csv_records, journal_of,
                               json_lines, lock_output, read_text, truncate)
from ..fileio import atomic_path, atomic_write_text
from ..media.discover import identity, printable
from ..jobs.timeline import VideoTimeline
from ..jobs.segments import Segment, segments, top_k

ROW_SUFFIXES = (".csv", ".jsonl")
SEGMENT_SUFFIXES = (".json", ".vtt", ".srt")
SUFFIXES = ROW_SUFFIXES + SEGMENT_SUFFIXES
ACTIVITYNET_VERSION = "VERSION 1.3"


def window_columns(k: int) -> list[str]:
    ranks = [f"{kind}_{r}" for r in range(1, k + 1) for kind in ("label", "score")]
    return ["path", "start", "end", *ranks, "error", *STAMP_COLUMNS]


def check_timeline_output(path: str, videos: int) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(f"{path}: a timeline output ends in .csv, .jsonl, .json (ActivityNet "
                          "segments), .vtt or .srt")
    if suffix in (".vtt", ".srt") and videos > 1 and "{stem}" not in path:
        raise OutputError(f"{path}: subtitles are one file per video; for several videos put "
                          "{stem} in the name, e.g. subs/{stem}.vtt")


class Settings:
    """What turns windows into segments."""

    def __init__(self, labels: list[str], top_k: int, smooth: int, threshold: float) -> None:
        self.labels, self.top_k, self.smooth, self.threshold = labels, top_k, smooth, threshold

    def segments(self, video: VideoTimeline) -> list[Segment]:
        return segments(video.windows, self.labels, video.duration, self.smooth, self.threshold)


class TimelineWriter:
    def __init__(self, path: Path, settings: Settings, stamp: dict[str, str],
                 overwrite: bool, lock=None) -> None:
        self.path, self.settings, self.stamp = path, settings, stamp
        self.done: set[str] = set()
        self._lock = lock if lock is not None else lock_output(path)
        try:
            self._open(overwrite)
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _open(self, overwrite: bool) -> None:
        raise NotImplementedError

    def is_done(self, path: str) -> bool:
        """Whether the output already holds this video (a resumed run skips it)."""
        return identity(path) in self.done

    def write(self, video: VideoTimeline) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._release()


class WindowRowsWriter(TimelineWriter):
    @staticmethod
    def existing(path: Path, k: int, stamp: dict[str, str] | None) -> tuple[list, int]:
        """The rows there already and the length of their complete part; refuses a file not
        made like this run (`stamp` None: before the model loads, see `check_records`)."""
        if not (path.exists() and path.stat().st_size):
            return [], 0
        columns = window_columns(k)
        text = read_text(path)
        if path.suffix.lower() == ".csv":
            rows, end = complete_csv_rows(text)
            if not rows or rows[0] != columns:
                raise OutputError(f"{path}: not a timeline of this mvit with top-k {k} "
                                  "(its columns differ); use --overwrite or another --output")
            records = csv_records(path, rows[1:], columns)
        else:
            records, end = complete_json_lines(path, text)
        check_records(path, records, k, stamp, columns)
        return records, end

    def _open(self, overwrite: bool) -> None:
        k = self.settings.top_k
        self.columns = window_columns(k)
        if overwrite:
            self.path.unlink(missing_ok=True)
        csv_file = self.path.suffix.lower() == ".csv"
        records, end = self.existing(self.path, k, self.stamp)
        if end:
            self.done = {identity(record["path"]) for record in records}
            truncate(self.path, end)
        new = not self.path.exists() or not self.path.stat().st_size
        self.handle = open(self.path, "a", newline="" if csv_file else None, encoding="utf-8")
        self.csv = csv.DictWriter(self.handle, fieldnames=self.columns) if csv_file else None
        if new and self.csv is not None:
            self.csv.writeheader()
            self.handle.flush()

    def records(self, video: VideoTimeline) -> list[dict[str, Any]]:
        k, labels = self.settings.top_k, self.settings.labels
        empty = {f"{kind}_{r}": None for r in range(1, k + 1) for kind in ("label", "score")}
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

    def write(self, video: VideoTimeline) -> None:
        rows = self.records(video)
        if self.csv is not None:
            buffer = io.StringIO()
            csv.DictWriter(buffer, fieldnames=self.columns).writerows(rows)
            self.handle.write(buffer.getvalue())
        else:
            self.handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self.handle.flush()  # a video's rows together: a kill cuts at most the last row

    def close(self) -> None:
        try:
            self.handle.close()
        finally:
            self._release()


def _check_stamp(path: Path, recorded: Any, stamp: dict[str, str] | None) -> None:
    """Refuse segments recorded by another model, weights or protocol (`stamp` None: only
    that they say what made them, which needs no model)."""
    if not isinstance(recorded, dict):
        raise OutputError(f"{path}: its segments do not say what made them; use --overwrite "
                          "or another --output")
    differences = [f"{k} {recorded.get(k)!r} (this run: {stamp[k]!r})"
                   for k in STAMP_COLUMNS if stamp is not None and str(recorded.get(k)) != stamp[k]]
    if differences:
        raise OutputError(f"{path}: was made with other settings: "
                          f"{'; '.join(differences)}. Resume with the same ones, use "
                          "--overwrite to start afresh, or choose another --output")


def _segment_dicts(found: list[Segment]) -> list[dict[str, Any]]:
    return [{"label": s.label, "score": round(s.score, 6),
             "segment": [round(s.start, 3), round(s.end, 3)]} for s in found]


class ActivityNetWriter(TimelineWriter):
    @property
    def journal(self) -> Path:
        return journal_of(self.path)

    @staticmethod
    def existing(path: Path, stamp: dict[str, str] | None
                 ) -> tuple[dict[str, list], dict[str, str], int]:
        """The segments and errors of the videos done (the written file's, then its
        journal's), and the length of the journal's complete part; refuses a file not made
        like this run (`stamp` None: only its form, before the model loads)."""
        results: dict[str, list] = {}
        errors: dict[str, str] = {}
        if path.exists() and path.stat().st_size:
            try:
                data = json.loads(read_text(path))
            except ValueError:
                data = None
            if not (isinstance(data, dict) and data.get("version") == ACTIVITYNET_VERSION
                    and isinstance(data.get("results"), dict)):
                raise OutputError(f"{path}: not an ActivityNet file of mvit's; use "
                                  "--overwrite or another --output")
            _check_stamp(path, data.get("mvit"), stamp)
            results = data["results"]
            errors = dict(data.get("mvit", {}).get("errors", {}))
        journal, end = journal_of(path), 0
        if journal.exists():
            journaled, end = complete_json_lines(journal, read_text(journal))
            for record in journaled:
                _check_stamp(path, record.get("mvit"), stamp)
                if record.get("error"):
                    errors[record["path"]] = record["error"]
                else:
                    results[record["path"]] = record["segments"]
        return results, errors, end

    def _open(self, overwrite: bool) -> None:
        if overwrite:
            self.path.unlink(missing_ok=True)
            self.journal.unlink(missing_ok=True)
        self.results, self.errors, end = self.existing(self.path, self.stamp)
        if self.journal.exists():
            truncate(self.journal, end)
        self.done = {identity(p) for p in [*self.results, *self.errors]}
        self.handle = open(self.journal, "a", encoding="utf-8")

    def write(self, video: VideoTimeline) -> None:
        path = printable(video.path)
        record = {"path": path, "mvit": self.stamp}
        if video.ok:
            record["segments"] = _segment_dicts(self.settings.segments(video))
            self.results[path] = record["segments"]
        else:
            record["error"] = video.error
            self.errors[path] = video.error
        self.handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        try:
            self.handle.close()
            document = {"version": ACTIVITYNET_VERSION, "results": self.results,
                        "external_data": {},
                        "mvit": {**self.stamp, "errors": self.errors}}
            with atomic_path(self.path) as tmp:
                tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n",
                               "utf-8")
            self.journal.unlink(missing_ok=True)
        finally:
            self._release()


def _clock(seconds: float, separator: str) -> str:
    millis = int(round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def vtt_text(found: list[Segment], stamp: dict[str, str]) -> str:
    note = ", ".join(f"{k} {stamp[k]}" for k in STAMP_COLUMNS)
    cues = [f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.label} ({s.score:.2f})\n"
            for s in found]
    return "WEBVTT\n\nNOTE made by mvit: " + note.replace("-->", "->") + "\n\n" + "\n".join(cues)


def srt_text(found: list[Segment]) -> str:
    return "\n".join(f"{i}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n"
                     f"{s.label} ({s.score:.2f})\n" for i, s in enumerate(found, start=1))


class SubtitleWriter(TimelineWriter):
    """One subtitle file per video, named from the template; a manifest records ours."""

    def __init__(self, template: str, settings: Settings, stamp: dict[str, str],
                 overwrite: bool) -> None:
        self.template = template
        folder = Path(template).parent
        folder.mkdir(parents=True, exist_ok=True)
        super().__init__(folder / ".mvit-subtitles.jsonl", settings, stamp, overwrite)

    def target(self, path: str) -> Path:
        return Path(self.template.replace("{stem}", Path(printable(path)).stem))

    def _open(self, overwrite: bool) -> None:
        self.ours: dict[str, dict] = {}
        if self.path.exists():
            text = read_text(self.path)
            for record in json_lines(self.path, text[:complete_lines(text)]):
                self.ours[record.get("file", "")] = record
        self.overwrite = overwrite
        self.handle = open(self.path, "a", encoding="utf-8")

    def is_done(self, path: str) -> bool:
        """Skip a video whose subtitles we wrote the same way; refuse one whose file we did not
        write (or wrote otherwise), unless --overwrite."""
        target = self.target(path)
        if not target.exists() or self.overwrite:
            return False
        record = self.ours.get(str(target))
        if record is None:
            raise OutputError(f"{target}: exists and was not written by mvit; use --overwrite "
                              "or another --output")
        if any(str(record.get(k)) != self.stamp[k] for k in STAMP_COLUMNS):
            raise OutputError(f"{target}: was made with other settings; use --overwrite or "
                              "another --output")
        return True

    def write(self, video: VideoTimeline) -> None:
        if not video.ok:
            return
        target = self.target(video.path)
        found = self.settings.segments(video)
        text = vtt_text(found, self.stamp) if target.suffix.lower() == ".vtt" else srt_text(found)
        atomic_write_text(target, text)
        self.handle.write(json.dumps({"file": str(target), "video": printable(video.path),
                                      **self.stamp}, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        try:
            self.handle.close()
        finally:
            self._release()


def check_existing_timeline(path: str, top_k: int, overwrite: bool) -> None:
    """Refuse, before the model loads, an output that `open_timeline_output` would refuse
    for its form alone (not ours, another top-k). Subtitles are checked per video."""
    suffix = Path(path).suffix.lower()
    if overwrite or suffix in (".vtt", ".srt"):
        return
    if suffix == ".json":
        ActivityNetWriter.existing(Path(path), None)
    else:
        WindowRowsWriter.existing(Path(path), top_k, None)


def open_timeline_output(path: str, settings: Settings, stamp: dict[str, str],
                         overwrite: bool) -> TimelineWriter:
    suffix = Path(path).suffix.lower()
    if suffix in (".vtt", ".srt"):
        return SubtitleWriter(path, settings, stamp, overwrite)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        return ActivityNetWriter(target, settings, stamp, overwrite)
    return WindowRowsWriter(target, settings, stamp, overwrite)
