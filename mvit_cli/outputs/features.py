"""`--features OUT`: the pooled features (the head's input) of every file or window.

A feature is float32, (width,): the normalised vector the classifier reads (the class
token's, or the mean token's), averaged over a file's views (classify) or one window's
(timeline); 768 wide for B-16x4 and v2-S-16x4. Keyed by path, and by start and end in
seconds for windows (both -1 for whole files). By extension:
- `.npy`: one structured array, fields `path` (unicode), `start`, `end` (float64) and
  `feature` (float32, width): `numpy.load(path)` reads it, no pickle needed.
- `.safetensors`: tensors `features` (N, width), `start` and `end` (N,), the paths as JSON
  in the metadata (`mvit.paths`) with the provenance.
- `.parquet` (needs pyarrow: `pip install 'mvit-cli[parquet]'`): columns path, start, end,
  feature (a list of float32), the provenance in the schema's metadata.
Written whole at the end of the run (atomically); a resumed run keeps the entries already in
the file and adds its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .classify import OutputError
from ..fileio import atomic_path, atomic_write_text
from ..media.discover import printable

SUFFIXES = (".npy", ".safetensors", ".parquet")


def check_features_path(path: str) -> None:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(f"{path}: features go to .npy, .safetensors or .parquet")
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise OutputError("--features .parquet needs pyarrow: pip install "
                              "'mvit-cli[parquet]'") from None


class FeatureWriter:
    def __init__(self, path: str | Path, stamp: dict[str, str]) -> None:
        self.path, self.stamp = Path(path), stamp
        self.keys: list[tuple[str, float, float]] = []
        self.vectors: list[np.ndarray] = []
        if self.path.exists():
            self._load_existing()

    def add(self, path: str, vector: np.ndarray, start: float = -1.0, end: float = -1.0) -> None:
        self.keys.append((printable(path), float(start), float(end)))
        self.vectors.append(np.asarray(vector, dtype=np.float32))

    @property
    def stamp_file(self) -> Path:
        """Where a .npy file's provenance goes (the format has no metadata of its own)."""
        return self.path.with_name(f".{self.path.name}.mvit.json")

    def _load_existing(self) -> None:
        recorded = read_stamp(self.path, self.stamp_file)
        differences = [f"{k} {recorded.get(k)!r} (this run: {v!r})" for k, v in self.stamp.items()
                       if str(recorded.get(k)) != v]
        if differences:
            raise OutputError(f"{self.path}: holds features made with other settings: "
                              f"{'; '.join(differences)}; choose another --features")
        keys, vectors = read_features(self.path)
        self.keys, self.vectors = keys, list(vectors)

    def close(self) -> None:
        if not self.vectors:
            return
        latest: dict[tuple[str, float, float], np.ndarray] = {}
        for key, vector in zip(self.keys, self.vectors, strict=True):
            latest[key] = vector  # a file classified again: its newest feature
        keys = list(latest)
        matrix = np.stack(list(latest.values()))
        suffix = self.path.suffix.lower()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path, suffix=suffix) as tmp:
            if suffix == ".npy":
                width = max(len(k[0]) for k in keys)
                table = np.zeros(len(keys), dtype=[("path", f"U{width}"), ("start", "f8"),
                                                   ("end", "f8"),
                                                   ("feature", "f4", matrix.shape[1])])
                table["path"] = [k[0] for k in keys]
                table["start"] = [k[1] for k in keys]
                table["end"] = [k[2] for k in keys]
                table["feature"] = matrix
                with open(tmp, "wb") as handle:
                    np.save(handle, table, allow_pickle=False)
                atomic_write_text(self.stamp_file, json.dumps(self.stamp))
            elif suffix == ".safetensors":
                import torch
                from safetensors.torch import save_file

                save_file({"features": torch.from_numpy(matrix),
                           "start": torch.tensor([k[1] for k in keys], dtype=torch.float64),
                           "end": torch.tensor([k[2] for k in keys], dtype=torch.float64)},
                          str(tmp), metadata={"mvit.paths": json.dumps([k[0] for k in keys]),
                                              **{f"mvit.{k}": v for k, v in self.stamp.items()}})
            else:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.table({"path": [k[0] for k in keys], "start": [k[1] for k in keys],
                                  "end": [k[2] for k in keys],
                                  "feature": pa.array(list(matrix),
                                                      type=pa.list_(pa.float32()))},
                                 metadata={f"mvit.{k}": v for k, v in self.stamp.items()})
                pq.write_table(table, tmp)


def read_stamp(path: Path, stamp_file: Path) -> dict[str, str]:
    """The provenance recorded with a features file ({} when none is)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return json.loads(stamp_file.read_text("utf-8")) if stamp_file.exists() else {}
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as reader:
                metadata = reader.metadata() or {}
        else:
            import pyarrow.parquet as pq

            metadata = {k.decode(): v.decode()
                        for k, v in (pq.read_schema(path).metadata or {}).items()}
    except (OSError, ValueError) as exc:
        raise OutputError(f"{path}: not a features file of mvit's ({type(exc).__name__}); use "
                          "another --features") from None
    return {k.removeprefix("mvit."): v for k, v in metadata.items() if k.startswith("mvit.")}


def read_features(path: str | Path) -> tuple[list[tuple[str, float, float]], np.ndarray]:
    """(keys (path, start, end), features (N, width)) from any of the three formats."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            table = np.load(path, allow_pickle=False)
            keys = list(zip(table["path"].tolist(), table["start"].tolist(),
                            table["end"].tolist(), strict=True))
            return keys, np.asarray(table["feature"], dtype=np.float32)
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="np") as reader:
                paths = json.loads(reader.metadata()["mvit.paths"])
                starts, ends = reader.get_tensor("start"), reader.get_tensor("end")
                matrix = reader.get_tensor("features")
            return list(zip(paths, starts.tolist(), ends.tolist(), strict=True)), matrix
        import pyarrow.parquet as pq

        table = pq.read_table(path).to_pydict()
        keys = list(zip(table["path"], table["start"], table["end"], strict=True))
        return keys, np.asarray(table["feature"], dtype=np.float32)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutputError(f"{path}: not a features file of mvit's ({type(exc).__name__}); use "
                          "another --features") from None
