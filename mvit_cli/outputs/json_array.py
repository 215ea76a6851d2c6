"""`-o labels.json`: classify's rows as one JSON array, written whole at the end.

An array cannot be appended to, so until the run ends its rows go to the journal beside it
(see `writer.JournalledWholeFile`); a resumed run takes the array's rows, then the
journal's that the array lacks (a kill between writing the array and removing its journal
leaves rows in both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .rows import file_columns, file_record
from .stamp import OutputError
from .writer import NOT_OURS, JournalledWholeFile, check_records, read_text
from ..jobs.classify import FileResult
from ..media.discover import identity


class FileRowsWhole(JournalledWholeFile):
    """Classify's rows, written whole; the state is the list of records. `options`: top-k."""

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
