"""The timeline's segments as subtitles: `.vtt` (WebVTT, with the provenance in a NOTE) or
`.srt` (SubRip), one cue per segment with its top label and score.

One file per video (with several videos, the name holds `{stem}`). A manifest beside them
(`.mvit-subtitles.jsonl`) records which files this tool wrote and how, so a resumed run
skips them, and a file mvit did not write is never overwritten; its lock guards them all.
Each entry also holds the --smooth and --threshold its file was made with, where they are
not the defaults: an entry without them was made with the defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .resume import OutputFile, complete_lines, json_lines, read_text
from .stamp import (STAMP_COLUMNS, OutputError, other_settings, segment_differences,
                    segment_record, segment_settings, stamp_differences)
from ..fileio import atomic_write_text
from ..media.discover import printable

if TYPE_CHECKING:
    from ..jobs.timeline import VideoTimeline
    from ..jobs.segments import Segment

SUBTITLE_MANIFEST = ".mvit-subtitles.jsonl"


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


class Subtitles(OutputFile):
    """`path`: the template of the files' names; `options`: the timeline's `Settings`."""

    def __init__(self, template: str | Path, options: Any, stamp: dict[str, str]) -> None:
        self.template = str(template)
        Path(self.template).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(self.lock_path(template), options, stamp)
        self.overwrite = False

    @classmethod
    def lock_path(cls, path: str | Path) -> Path:
        return Path(path).parent / SUBTITLE_MANIFEST

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, str] | None) -> None:
        """Nothing before the model loads: each video's file is checked as it comes."""

    def remove(self) -> None:
        """Nothing yet: each file is replaced when its video is done, even one that is not
        ours (`--overwrite`)."""
        self.overwrite = True

    def target(self, path: str) -> Path:
        return Path(self.template.replace("{stem}", Path(printable(path)).stem))

    def resume(self) -> set[str]:
        self.ours: dict[str, dict] = {}
        if self.path.exists():
            text = read_text(self.path)
            for record in json_lines(self.path, text[:complete_lines(text)]):
                self.ours[record.get("file", "")] = record
        self.handle = open(self.path, "a", encoding="utf-8")
        return self.done

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
        differences = [*stamp_differences(record, self.stamp),
                       *segment_differences(record, segment_settings(self.options))]
        if differences:
            raise other_settings(target, differences)
        return True

    def write(self, video: VideoTimeline) -> None:
        if not video.ok:
            return
        target = self.target(video.path)
        found = self.options.segments(video)
        text = vtt_text(found, self.stamp) if target.suffix.lower() == ".vtt" else srt_text(found)
        atomic_write_text(target, text)
        self.handle.write(json.dumps({"file": str(target), "video": printable(video.path),
                                      **self.stamp, **segment_record(self.options)},
                                     ensure_ascii=False) + "\n")
        self.handle.flush()
