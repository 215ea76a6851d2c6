"""Formats written whole at the end: classify's JSON array and Parquet table, and the
timeline's ActivityNet document.

None of them can be appended to, so they share one path: until the run ends, each result
goes to a journal beside the output (`.NAME.partial.jsonl`), one line, flushed; at the end
the whole file is written to a temporary and renamed into place, and only then is the
journal removed. A kill at any point leaves the last whole file and the journal, and the
next run takes both: the file's results, then the journal's (a kill between writing the
file and removing its journal leaves results in both).

- `.json` (classify): the rows as one JSON array.
- `.parquet` (classify, needs pyarrow): the rows as a table; scores, duration, frames and
  views are numbers, the rest strings, so that a data frame reads them typed.
- `.json` (timeline): merged segments in ActivityNet's detection format, `{"version":
  "VERSION 1.3", "results": {video: [{"label", "score", "segment": [start, end]}]},
  "external_data": {}}`, plus the provenance (and the videos that failed) under "mvit",
  with the --smooth and --threshold the segments were made with where they are not the
  defaults (a document without them was made with the defaults).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .resume import (NOT_OURS, OutputFile, check_records, complete_json_lines, has_content,
                     journal_of, read_text, truncate, write_lines)
from .rows import file_columns, file_record
from .stamp import (OutputError, other_settings, segment_differences, segment_record,
                    segment_settings, stamp_differences)
from ..fileio import atomic_path
from ..jobs.classify import FileResult
from ..media.discover import identity, printable

if TYPE_CHECKING:
    from ..jobs.timeline import VideoTimeline
    from ..jobs.segments import Segment

ACTIVITYNET_VERSION = "VERSION 1.3"


class JournalledFile(OutputFile):
    """A format written whole at the end, its results journalled beside it until then.

    A format says how the whole file is read (`_read_whole`: checked, into its state), how
    journal records join that state (`_absorb`), what one result adds to both (`_take`)
    and how the state is written whole (`_write_whole`).
    """

    temporary_suffix: str | None = None  # None: the output's own

    @property
    def journal(self) -> Path:
        return journal_of(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)

    @classmethod
    def read_existing(cls, path: Path, top_k: int, stamp: dict[str, Any] | None
                      ) -> tuple[Any, int]:
        """The state held already (the whole file's, then its journal's) and the length of
        the journal's complete part; refuses either if not made like this run (`stamp`: what
        `expected` gives, or None before the model loads)."""
        state = cls._empty_state()
        if has_content(path):
            cls._read_whole(path, state, top_k, stamp)
        journal, journal_end = journal_of(path), 0
        if journal.exists():
            journaled, journal_end = complete_json_lines(journal, read_text(journal))
            cls._absorb(path, journal, journaled, state, top_k, stamp)
        return state, journal_end

    @property
    def expected(self) -> dict[str, Any]:
        """What the results held already must have been made with: the stamp, and whatever
        else a format records of how its results were made."""
        return self.stamp

    def resume(self) -> set[str]:
        self.state, journal_end = self.read_existing(self.path, self.top_k, self.expected)
        if self.journal.exists():
            truncate(self.journal, journal_end)
        self.done = {identity(p) for p in self._paths(self.state)}
        self.handle = open(self.journal, "a", encoding="utf-8")
        return self.done

    def write(self, result: Any) -> None:
        write_lines(self.handle, self._take(result))

    def close(self) -> None:
        self.handle.close()
        with atomic_path(self.path, suffix=self.temporary_suffix or self.path.suffix) as tmp:
            self._write_whole(tmp)
        self.journal.unlink(missing_ok=True)

    # what each format says

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
    def _paths(state: Any) -> list[str]:
        raise NotImplementedError

    def _take(self, result: Any) -> list[dict[str, Any]]:
        """Add one result to the state; what the journal keeps of it until the end."""
        raise NotImplementedError

    def _write_whole(self, tmp: Path) -> None:
        raise NotImplementedError


# ---- classify's rows, whole ----------------------------------------------------------------

class FileRowsWhole(JournalledFile):
    """Classify's rows; the state is the list of records. `options`: the top-k."""

    @staticmethod
    def _empty_state() -> list[dict]:
        return []

    @classmethod
    def _records(cls, path: Path) -> list:
        """The records of the whole file as written."""
        raise NotImplementedError

    @classmethod
    def _read_whole(cls, path: Path, state: list, top_k: int, stamp: dict[str, str] | None
                    ) -> None:
        records = cls._records(path)
        check_records(path, records, top_k, stamp, file_columns(top_k))
        state.extend(records)

    @classmethod
    def _absorb(cls, path: Path, journal: Path, records: list[dict], state: list, top_k: int,
                stamp: dict[str, str] | None) -> None:
        check_records(journal, records, top_k, stamp, file_columns(top_k))
        known = {identity(r["path"]) for r in state}
        state.extend(r for r in records if identity(r["path"]) not in known)

    @staticmethod
    def _paths(state: list) -> list[str]:
        return [record["path"] for record in state]

    def _take(self, result: FileResult) -> list[dict[str, Any]]:
        record = file_record(result, self.top_k, self.stamp)
        self.state.append(record)
        return [record]


class FileRowsJsonArray(FileRowsWhole):
    @classmethod
    def _records(cls, path: Path) -> list:
        try:
            records = json.loads(read_text(path))
        except ValueError:
            records = None
        if not isinstance(records, list):
            raise OutputError(f"{path}: not a JSON array of mvit's records; {NOT_OURS}")
        return records

    def _write_whole(self, tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(self.state, handle, ensure_ascii=False, indent=1)
            handle.write("\n")


class FileRowsParquet(FileRowsWhole):
    @classmethod
    def _records(cls, path: Path) -> list:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError):
            raise OutputError(f"{path}: not a Parquet file of mvit's records; {NOT_OURS}"
                              ) from None
        return table.to_pylist()

    def _write_whole(self, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        fields = file_columns(self.top_k)
        types = {"duration": pa.float64(), "frames": pa.int64(), "views": pa.int64(),
                 **{f"score_{r}": pa.float64() for r in range(1, self.top_k + 1)}}
        schema = pa.schema([(name, types.get(name, pa.string())) for name in fields])
        rows = [{name: (None if record.get(name) in ("", None) and name in types
                        else record.get(name)) for name in fields} for record in self.state]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)


# ---- the timeline's segments, as ActivityNet -----------------------------------------------

def _check_stamp(path: Path, recorded: Any, expected: dict[str, Any] | None) -> None:
    """Refuse segments recorded by another model, weights or protocol, or made with another
    --smooth or --threshold (`expected`: the stamp and the segment settings; None: only that
    they say what made them, which needs no model)."""
    if not isinstance(recorded, dict):
        raise OutputError(f"{path}: its segments do not say what made them; use --overwrite "
                          "or another --output")
    differences = [*stamp_differences(recorded, expected),
                   *segment_differences(recorded, expected)]
    if differences:
        raise other_settings(path, differences)


def _segment_dicts(found: list[Segment]) -> list[dict[str, Any]]:
    return [{"label": s.label, "score": round(s.score, 6),
             "segment": [round(s.start, 3), round(s.end, 3)]} for s in found]


class ActivityNet(JournalledFile):
    """The state: the segments of the videos done, and the errors of those that failed,
    each by path, in the order they came. `options`: the timeline's `Settings`."""

    temporary_suffix = ".tmp"

    @property
    def expected(self) -> dict[str, Any]:
        return {**self.stamp, **segment_settings(self.options)}

    @property
    def recorded(self) -> dict[str, Any]:
        """What the journal and the document say made the segments: the stamp, then the
        segment settings other than the defaults (so that, with the defaults, the bytes are
        those of outputs made before these were recorded)."""
        return {**self.stamp, **segment_record(self.options)}

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
        record: dict[str, Any] = {"path": path, "mvit": self.recorded}
        results, errors = self.state
        if video.ok:
            record["segments"] = _segment_dicts(self.options.segments(video))
            results[path] = record["segments"]
        else:
            record["error"] = video.error
            errors[path] = video.error
        return [record]

    def _write_whole(self, tmp: Path) -> None:
        results, errors = self.state
        document = {"version": ACTIVITYNET_VERSION, "results": results, "external_data": {},
                    "mvit": {**self.recorded, "errors": errors}}
        tmp.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", "utf-8")
