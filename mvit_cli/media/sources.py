"""Inputs that are not local paths: object-store URIs (s3://, gs://, ...) and manifests.

URIs are read with fsspec, whose backends (s3fs, gcsfs, ...) take their credentials and
endpoint from the standard environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...). A file is copied to a temporary
local file for the decoders (which read local files) and removed after. A manifest is a
text file of one path or URI per line, or a CSV or Parquet file with a `path` column: for
collections too large to list by walking folders. What is read here are names; media.discover
makes input items of them.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import UsageError
from ..extras import install_hint
from .decode import MediaError, media_kind

MANIFEST_SUFFIXES = (".txt", ".csv", ".parquet")


def is_uri(text: str) -> bool:
    """An object-store or remote URI (file:// and plain paths are local)."""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() != "file"


def uri_kind(uri: str) -> str | None:
    return media_kind(Path(PurePosixPath(uri.split("?", 1)[0]).name))


def _storage_options(uri: str) -> dict:
    """Options fsspec's S3 backend does not read from the environment by itself."""
    if uri.lower().startswith(("s3://", "s3a://")) and os.environ.get("AWS_ENDPOINT_URL"):
        return {"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}
    return {}


def filesystem(uri: str):
    try:
        import fsspec
    except ImportError:
        raise UsageError(f"{uri}: reading URIs needs fsspec and its backend: "
                         f"{install_hint('remote')}") from None
    try:
        fs, _, _ = fsspec.get_fs_token_paths(uri, storage_options=_storage_options(uri))
    except (ImportError, ValueError) as exc:
        scheme = uri.split("://", 1)[0]
        raise UsageError(f"{uri}: no filesystem for {scheme}:// here ({exc}); for s3:// "
                         f"{install_hint('remote')}") from None
    return fs


def expand_uri(uri: str) -> list[str]:
    """A URI of a file, of a folder (all media below it) or a glob, as file URIs."""
    fs = filesystem(uri)
    scheme = uri.split("://", 1)[0]
    try:
        if any(c in uri for c in "*?["):
            names = fs.glob(uri)
        elif fs.isdir(uri):
            names = fs.find(uri)
        else:
            return [uri] if fs.exists(uri) else []
    except Exception as exc:  # noqa: BLE001 - each backend has errors of its own (botocore's)
        raise UsageError(f"{uri}: cannot list it ({_reason(exc)})") from None
    return sorted(f"{scheme}://{name}" for name in names if uri_kind(f"{scheme}://{name}"))


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:120] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def local_copy(uri: str) -> Iterator[Path]:
    """The object at `uri` as a temporary local file, removed afterwards."""
    suffix = Path(PurePosixPath(uri.split("?", 1)[0]).name).suffix
    with tempfile.TemporaryDirectory(prefix="mvit-remote-") as folder:
        target = Path(folder) / f"input{suffix}"
        try:
            fs = filesystem(uri)
            fs.get(uri, str(target))
        except UsageError as exc:
            raise MediaError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - each backend has errors of its own
            raise MediaError(f"cannot read it from the object store ({_reason(exc)})") from None
        yield target


def read_manifest(path: str | Path) -> list[str]:
    """The paths or URIs a manifest lists, in order (an empty manifest is refused)."""
    entries = _manifest_entries(Path(path))
    if not entries:
        raise UsageError(f"{path}: the manifest lists no paths")
    return entries


def _manifest_entries(path: Path) -> list[str]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise UsageError(f"{path}: a manifest is a .txt (one path per line), .csv or .parquet "
                         "file (a 'path' column)")
    try:
        if suffix == ".txt":
            return [line.strip() for line in path.read_text("utf-8").splitlines()
                    if line.strip() and not line.startswith("#")]
        if suffix == ".csv":
            import csv

            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            if rows and "path" not in rows[0]:
                raise UsageError(f"{path}: the manifest has no 'path' column")
            return [row["path"] for row in rows if row.get("path")]
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise UsageError(f"a .parquet manifest needs pyarrow: {install_hint('parquet')}"
                             ) from None
        table = pq.read_table(path, columns=["path"])
        return [p for p in table.column("path").to_pylist() if p]
    except FileNotFoundError:
        raise UsageError(f"{path}: no such manifest") from None
    except (OSError, UnicodeDecodeError, KeyError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable manifest ({type(exc).__name__})") from None
