"""`-o labels.parquet`: classify's rows as a table (needs pyarrow), written whole at the end.

Journalled like a JSON array (see `json_array`); scores, duration, frames and views are
numbers, the rest strings, so that a data frame reads them typed.
"""

from __future__ import annotations

from pathlib import Path

from .json_array import FileRowsWhole
from .rows import file_columns
from .stamp import OutputError
from .writer import NOT_OURS


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
