"""`--features OUT`: the pooled features (the head's input) of every file or window.

A feature is float32, (width,): the normalised vector the classifier reads (the class
token's, or the mean token's), averaged over a file's views (classify) or one window's
(timeline); 768 wide for B-16x4 and v2-S-16x4. Keyed by path, and by start and end in seconds for windows (both -1 for whole
files). One class per file format:
- `.npy`: one structured array, fields `path` (unicode), `start`, `end` (float64) and
  `feature` (float32, width): `numpy.load(path)` reads it, no pickle needed; the
  provenance goes to a dot file beside it, the format having no metadata of its own.
- `.safetensors`: tensors `features` (N, width), `start` and `end` (N,), the paths as JSON
  in the metadata (`mvit.paths`) with the provenance.
- `.parquet` (needs pyarrow: the parquet extra): columns path, start, end,
  feature (a list of float32), the provenance in the schema's metadata.
Written whole at the end of the run (atomically, as every whole file: `fileio.atomic_path`);
a resumed run keeps the entries already in the file and adds its own. No lock and no
journal: the features are kept in memory until the end, so a killed run leaves the last
whole file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .stamp import OutputError, stamp_differences
from ..fileio import atomic_path, atomic_write_text
from ..media.discover import printable

Key = tuple[str, float, float]  # path, start, end


class FeatureFile:
    """How one format writes and reads the features and their provenance."""

    @staticmethod
    def write(path: Path, tmp: Path, keys: list[Key], matrix: np.ndarray,
              stamp: dict[str, str]) -> None:
        raise NotImplementedError

    @staticmethod
    def read(path: Path) -> tuple[list[Key], np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def metadata(path: Path) -> dict[str, str]:
        """The file's own metadata, where mvit's keys start with "mvit."."""
        raise NotImplementedError


def stamp_file(path: Path) -> Path:
    """Where a .npy file's provenance goes."""
    return path.with_name(f".{path.name}.mvit.json")


class NpyFeatures(FeatureFile):
    @staticmethod
    def write(path: Path, tmp: Path, keys: list[Key], matrix: np.ndarray,
              stamp: dict[str, str]) -> None:
        width = max(len(k[0]) for k in keys)
        table = np.zeros(len(keys), dtype=[("path", f"U{width}"), ("start", "f8"),
                                           ("end", "f8"), ("feature", "f4", matrix.shape[1])])
        table["path"] = [k[0] for k in keys]
        table["start"] = [k[1] for k in keys]
        table["end"] = [k[2] for k in keys]
        table["feature"] = matrix
        with open(tmp, "wb") as handle:
            np.save(handle, table, allow_pickle=False)
        atomic_write_text(stamp_file(path), json.dumps(stamp))

    @staticmethod
    def read(path: Path) -> tuple[list[Key], np.ndarray]:
        table = np.load(path, allow_pickle=False)
        keys = list(zip(table["path"].tolist(), table["start"].tolist(),
                        table["end"].tolist(), strict=True))
        return keys, np.asarray(table["feature"], dtype=np.float32)

    @staticmethod
    def metadata(path: Path) -> dict[str, str]:
        recorded = stamp_file(path)
        if not recorded.exists():
            return {}
        return {f"mvit.{k}": v for k, v in json.loads(recorded.read_text("utf-8")).items()}


class SafetensorsFeatures(FeatureFile):
    @staticmethod
    def write(path: Path, tmp: Path, keys: list[Key], matrix: np.ndarray,
              stamp: dict[str, str]) -> None:
        import torch
        from safetensors.torch import save_file

        save_file({"features": torch.from_numpy(matrix),
                   "start": torch.tensor([k[1] for k in keys], dtype=torch.float64),
                   "end": torch.tensor([k[2] for k in keys], dtype=torch.float64)},
                  str(tmp), metadata={"mvit.paths": json.dumps([k[0] for k in keys]),
                                      **{f"mvit.{k}": v for k, v in stamp.items()}})

    @staticmethod
    def read(path: Path) -> tuple[list[Key], np.ndarray]:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as reader:
            paths = json.loads(reader.metadata()["mvit.paths"])
            starts, ends = reader.get_tensor("start"), reader.get_tensor("end")
            matrix = reader.get_tensor("features")
        return list(zip(paths, starts.tolist(), ends.tolist(), strict=True)), matrix

    @staticmethod
    def metadata(path: Path) -> dict[str, str]:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as reader:
            return reader.metadata() or {}


class ParquetFeatures(FeatureFile):
    @staticmethod
    def write(path: Path, tmp: Path, keys: list[Key], matrix: np.ndarray,
              stamp: dict[str, str]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"path": [k[0] for k in keys], "start": [k[1] for k in keys],
                          "end": [k[2] for k in keys],
                          "feature": pa.array(list(matrix), type=pa.list_(pa.float32()))},
                         metadata={f"mvit.{k}": v for k, v in stamp.items()})
        pq.write_table(table, tmp)

    @staticmethod
    def read(path: Path) -> tuple[list[Key], np.ndarray]:
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pydict()
        keys = list(zip(table["path"], table["start"], table["end"], strict=True))
        return keys, np.asarray(table["feature"], dtype=np.float32)

    @staticmethod
    def metadata(path: Path) -> dict[str, str]:
        import pyarrow.parquet as pq

        return {k.decode(): v.decode() for k, v in (pq.read_schema(path).metadata or {}).items()}


def _not_ours(path: Path, exc: Exception) -> OutputError:
    return OutputError(f"{path}: not a features file of mvit's ({type(exc).__name__}); use "
                       "another --features")


def read_stamp(path: Path, file_format: type[FeatureFile]) -> dict[str, str]:
    """The provenance recorded with a features file ({} when none is)."""
    try:
        metadata = file_format.metadata(path)
    except (OSError, ValueError) as exc:
        raise _not_ours(path, exc) from None
    return {k.removeprefix("mvit."): v for k, v in metadata.items() if k.startswith("mvit.")}


def read_feature_file(path: str | Path, file_format: type[FeatureFile]
                      ) -> tuple[list[Key], np.ndarray]:
    """(keys (path, start, end), features (N, width))."""
    path = Path(path)
    try:
        return file_format.read(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _not_ours(path, exc) from None


class FeatureWriter:
    """Collects features as results come, and writes them whole when closed (nothing when
    there are none), after those the file held already (the newest per key)."""

    def __init__(self, path: str | Path, stamp: dict[str, str],
                 file_format: type[FeatureFile]) -> None:
        self.path, self.stamp, self.file_format = Path(path), stamp, file_format
        self.keys: list[Key] = []
        self.vectors: list[np.ndarray] = []
        if self.path.exists():
            self._load_existing()

    def add(self, path: str, vector: np.ndarray, start: float = -1.0, end: float = -1.0) -> None:
        self.keys.append((printable(path), float(start), float(end)))
        self.vectors.append(np.asarray(vector, dtype=np.float32))

    def _load_existing(self) -> None:
        recorded = read_stamp(self.path, self.file_format)
        differences = stamp_differences(recorded, self.stamp, keys=self.stamp)
        if differences:
            raise OutputError(f"{self.path}: holds features made with other settings: "
                              f"{'; '.join(differences)}; choose another --features")
        keys, vectors = read_feature_file(self.path, self.file_format)
        self.keys, self.vectors = keys, list(vectors)

    def close(self) -> None:
        if not self.vectors:
            return
        latest: dict[Key, np.ndarray] = {}
        for key, vector in zip(self.keys, self.vectors, strict=True):
            latest[key] = vector  # a file classified again: its newest feature
        matrix = np.stack(list(latest.values()))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path, suffix=self.path.suffix.lower()) as tmp:
            self.file_format.write(self.path, tmp, list(latest), matrix, self.stamp)
