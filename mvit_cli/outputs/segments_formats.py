"""The timeline's merged segments: an ActivityNet document, or WebVTT / SubRip subtitles.

- `.json`: ActivityNet's detection format, `{"version": "VERSION 1.3", "results": {video:
  [{"label", "score", "segment": [start, end]}]}, "external_data": {}}`, plus the
  provenance (and the videos that failed) under "mvit". Written whole at the end; until then
  finished videos go to the journal beside it (see `writer.JournalledWholeFile`).
- `.vtt` (WebVTT, with the provenance in a NOTE) and `.srt`: one cue per segment, its top
  label and score; one file per video (with several videos, the name holds `{stem}`). A
  manifest beside them (`.mvit-subtitles.jsonl`) records which files this tool wrote and
  how, so a resumed run skips them and nothing else is ever overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from filelock import FileLock

from .stamp import STAMP_COLUMNS, OutputError, other_settings, stamp_differences
from .writer import (JournalledWholeFile, OutputWriter, complete_lines, json_lines,
                     read_text)
from ..engines.local.timeline_runner import VideoTimeline
from ..fileio import atomic_path, atomic_write_text
from ..jobs.segments import Segment, segments
from ..media.discover import printable

ACTIVITYNET_VERSION = "VERSION 1.3"
SUBTITLE_MANIFEST = ".mvit-subtitles.jsonl"


class Settings:
    """What turns windows into rows and segments."""

    def __init__(self, labels: list[str], top_k: int, smooth: int, threshold: float) -> None:
        self.labels, self.top_k, self.smooth, self.threshold = labels, top_k, smooth, threshold

    def segments(self, video: VideoTimeline) -> list[Segment]:
        return segments(video.windows, self.labels, video.duration, self.smooth, self.threshold)


# ---- ActivityNet ---------------------------------------------------------------------------

def _check_stamp(path: Path, recorded: Any, stamp: dict[str, str] | None) -> None:
    """Refuse segments recorded by another model, weights or protocol (`stamp` None: only
    that they say what made them, which needs no model)."""
    if not isinstance(recorded, dict):
        raise OutputError(f"{path}: its segments do not say what made them; use --overwrite "
                          "or another --output")
    differences = stamp_differences(recorded, stamp)
    if differences:
        raise other_settings(path, differences)


def _segment_dicts(found: list[Segment]) -> list[dict[str, Any]]:
    return [{"label": s.label, "score": round(s.score, 6),
             "segment": [round(s.start, 3), round(s.end, 3)]} for s in found]


class ActivityNet(JournalledWholeFile):
    """The state: the segments of the videos done, and the errors of those that failed,
    each by path, in the order they came."""

    @staticmethod
    def _empty_state() -> tuple[dict[str, list], dict[str, str]]:
        return {}, {}

    @classmethod
    def _read_whole(cls, path: Path, state, top_k: int, stamp: dict[str, str] | None
                    ) -> None:
        try:
            data = json.loads(read_text(path))
        except ValueError:
            data = None
        if not (isinstance(data, dict) and data.get("version") == ACTIVITYNET_VERSION
                and isinstance(data.get("results"), dict)):
            raise OutputError(f"{path}: not an ActivityNet file of mvit's; use "
                              "--overwrite or another --output")
        _check_stamp(path, data.get("mvit"), stamp)
        results, errors = state
        results.update(data["results"])
        errors.update(data.get("mvit", {}).get("errors", {}))

    @classmethod
    def _absorb(cls, path: Path, journal: Path, records: list[dict], state, top_k: int,
                stamp: dict[str, str] | None) -> None:
        results, errors = state
        for record in records:
            _check_stamp(path, record.get("mvit"), stamp)
            if record.get("error"):
                errors[record["path"]] = record["error"]
            else:
                results[record["path"]] = record["segments"]

    @staticmethod
    def _paths(state) -> list[str]:
        results, errors = state
        return [*results, *errors]

    def _take(self, video: VideoTimeline) -> list[dict[str, Any]]:
        path = printable(video.path)
        record: dict[str, Any] = {"path": path, "mvit": self.stamp}
        results, errors = self.state
        if video.ok:
            record["segments"] = _segment_dicts(self.options.segments(video))
            results[path] = record["segments"]
        else:
            record["error"] = video.error
            errors[path] = video.error
        return [record]

    def _temporary_suffix(self) -> str:
        return ".tmp"

    def _write_whole(self, tmp: Path) -> None:
        results, errors = self.state
        document = {"version": ACTIVITYNET_VERSION, "results": results, "external_data": {},
                    "mvit": {**self.stamp, "errors": errors}}
        tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", "utf-8")


# ---- subtitles -----------------------------------------------------------------------------

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


class Subtitles(OutputWriter):
    """One subtitle file per video, named from the template (`{stem}`: the video's); the
    manifest in their folder records ours, and its lock guards them all."""

    def __init__(self, template: str | Path, settings: Settings, stamp: dict[str, str],
                 overwrite: bool, lock: FileLock | None = None) -> None:
        self.template = str(template)
        Path(self.template).parent.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        super().__init__(self.lock_path(template), settings, stamp, overwrite, lock)

    @classmethod
    def lock_path(cls, path: str | Path) -> Path:
        return Path(path).parent / SUBTITLE_MANIFEST

    def _remove_existing(self) -> None:
        """Nothing yet: each subtitle file is replaced when its video is done."""

    def target(self, path: str) -> Path:
        return Path(self.template.replace("{stem}", Path(printable(path)).stem))

    def _resume(self) -> None:
        self.ours: dict[str, dict] = {}
        if self.path.exists():
            text = read_text(self.path)
            for record in json_lines(self.path, text[:complete_lines(text)]):
                self.ours[record.get("file", "")] = record
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
        found = self.options.segments(video)
        text = vtt_text(found, self.stamp) if target.suffix.lower() == ".vtt" else srt_text(found)
        atomic_write_text(target, text)
        self.handle.write(json.dumps({"file": str(target), "video": printable(video.path),
                                      **self.stamp}, ensure_ascii=False) + "\n")
        self.handle.flush()
