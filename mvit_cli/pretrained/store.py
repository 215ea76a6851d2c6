"""The weights cache: from a registry name to a checkpoint file ready to load.

Publisher downloads are verified, converted once to our own safetensors in
`$MVIT_HOME/weights/NAME.safetensors` (architecture, labels and test protocol inside; a
`.sha256` file beside it for `mvit weights verify`) and the original is deleted. Hub files
are already safetensors and stay in the Hub's cache. Either way, later runs read the file
memory-mapped and touch no network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock

from ..labels import labels_for_classes
from ..paths import mvit_home
from .download import DownloadError, OfflineError, fetch_hub, fetch_url, sha256_of
from .registry import (UnknownWeightsError, WeightsEntry, find_entry, save_user_entries,
                       user_entries)


class WeightsUnavailableError(RuntimeError):
    """Weights that are neither cached nor downloadable now; the message says what to do."""


def weights_dir() -> Path:
    path = mvit_home() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _native_path(entry: WeightsEntry) -> Path:
    """Our safetensors for `entry`: an import's own file, a file shipped in the package
    (a relative `file`, under mvit_cli.weights), or the cache's converted download."""
    if entry.shipped:
        return shipped_weights_dir() / entry.file
    if entry.file:
        return Path(entry.file)
    return weights_dir() / f"{entry.name}.safetensors"


def shipped_weights_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("mvit_cli.weights")))


def cached_file(entry: WeightsEntry) -> Path | None:
    """The ready-to-load file for `entry` if it is on disk, without touching the network."""
    if entry.hub:
        try:
            return fetch_hub(entry.hub["repo"], entry.hub["file"],
                             entry.hub.get("revision", "main"), entry.expected_digest,
                             local_only=True)
        except (OfflineError, DownloadError):
            return None
    path = _native_path(entry)
    return path if path.exists() else None


def _unavailable(entry: WeightsEntry, reason: str) -> WeightsUnavailableError:
    where = entry.url or (f"https://huggingface.co/{entry.hub['repo']}/resolve/"
                          f"{entry.hub.get('revision', 'main')}/{entry.hub['file']}"
                          if entry.hub else "its source")
    return WeightsUnavailableError(
        f"weights {entry.name!r} are not cached and cannot be downloaded ({reason}); fetch "
        f"{where} by hand, then run: mvit weights import FILE --model {entry.architecture} "
        f"--name {entry.name}")


def ensure_weights(entry: WeightsEntry) -> Path:
    """A local checkpoint file for `entry`: cached, or downloaded, verified and converted now."""
    if entry.hub:
        try:
            return fetch_hub(entry.hub["repo"], entry.hub["file"],
                             entry.hub.get("revision", "main"), entry.expected_digest)
        except OfflineError as exc:
            raise _unavailable(entry, str(exc)) from None
    target = _native_path(entry)
    if target.exists():
        return target
    if entry.file:
        raise WeightsUnavailableError(f"weights {entry.name!r}: {entry.file} is gone; import "
                                      "the checkpoint again with mvit weights import")
    if not entry.url:
        raise WeightsUnavailableError(f"weights {entry.name!r} have no source to download from")
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target
        download = mvit_home() / "downloads" / (Path(urlparse(entry.url).path).name or entry.name)
        try:
            original = fetch_url(entry.url, download, entry.expected_digest)
        except OfflineError as exc:
            raise _unavailable(entry, str(exc)) from None
        digest = sha256_of(original)
        convert_to_native(original, entry, target, {"mvit.source": entry.url,
                                                     "mvit.source_sha256": digest})
        original.unlink()
    return target


@dataclass
class Converted:
    path: Path
    num_classes: int


def convert_to_native(source: Path, entry: WeightsEntry, target: Path,
                      extra: dict[str, str] | None = None,
                      labels: list[str] | None = None) -> Converted:
    """Load `source` (any layout) strictly into its architecture and save it as ours."""
    from ..checkpoints.loading import save_native
    from ..factory import build_model

    model = build_model(entry.architecture, weights=source)
    if labels is None:
        labels = model.labels or labels_for_classes(entry.labels, model.num_classes)
    metadata = {"mvit.weights": entry.name, "mvit.protocol": json.dumps(entry.protocol),
                **(extra or {})}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    save_native(model, tmp, labels=labels, extra=metadata)
    tmp.replace(target)
    Path(str(target) + ".sha256").write_text(sha256_of(target) + "\n")
    return Converted(target, model.num_classes)


def resolve_weights(spec: str | os.PathLike) -> tuple[Path, WeightsEntry | None]:
    """A weights argument as users give it: an existing file, or a registry name."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path, None
    try:
        entry = find_entry(str(spec))
    except UnknownWeightsError:
        if path.suffix or os.sep in str(spec):
            return path, None  # meant as a file: the reader says it is missing
        raise
    return ensure_weights(entry), entry


def import_checkpoint(source: Path, architecture: str, name: str,
                      labels_file: Path | None = None) -> WeightsEntry:
    """Make a user's checkpoint (any supported layout) a named registry entry."""
    from ..models.architectures import get_config

    cfg = get_config(architecture)
    labels = None
    if labels_file is not None:
        labels = [line.strip() for line in labels_file.read_text("utf-8").splitlines()
                  if line.strip()]
    entry = WeightsEntry(name=name, architecture=cfg.name, layout="native",
                         labels="custom" if labels else cfg.dataset,
                         file=str(weights_dir() / f"{name}.safetensors"),
                         reported_by=f"imported from {source}")
    converted = convert_to_native(source, entry, Path(entry.file),
                                  {"mvit.source": str(source.resolve())}, labels=labels)
    if labels is not None and len(labels) != converted.num_classes:
        Path(entry.file).unlink()
        raise WeightsUnavailableError(f"{labels_file}: {len(labels)} labels for a head of "
                                      f"{converted.num_classes} classes")
    entry = replace(entry, sha256=sha256_of(converted.path))
    others = [e for e in user_entries() if e.name.lower() != name.lower()]
    save_user_entries([entry, *others])
    return entry


@dataclass
class VerifyResult:
    entry: WeightsEntry
    status: str  # "ok", "not cached", "corrupt"
    detail: str = ""


def verify_entry(entry: WeightsEntry) -> VerifyResult:
    """Re-hash a cached file against what was recorded when it was made, and load it."""
    path = cached_file(entry)
    if path is None:
        return VerifyResult(entry, "not cached")
    recorded = entry.sha256
    sidecar = Path(str(path) + ".sha256")
    if sidecar.exists():
        recorded = sidecar.read_text().strip()
    elif entry.hub:
        recorded = entry.expected_digest or path.resolve().name
    actual = sha256_of(path)
    if recorded and not actual.startswith(recorded.lower()):
        return VerifyResult(entry, "corrupt", f"sha256 {actual[:12]}... expected {recorded[:12]}...")
    try:
        from ..factory import build_model

        build_model(entry.architecture, weights=path)
    except Exception as exc:  # noqa: BLE001 - any failure to load means the cache is bad
        return VerifyResult(entry, "corrupt", str(exc).splitlines()[0])
    return VerifyResult(entry, "ok", str(path))


def remove_entry(entry: WeightsEntry) -> list[Path]:
    """Delete a cached checkpoint (and, for imports, the registry entry). Returns what went."""
    removed: list[Path] = []
    if entry.shipped:
        return removed  # part of the package, not of the cache
    path = cached_file(entry)
    if path is not None:
        if entry.hub:
            blob = path.resolve()
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            removed.append(path)
        else:
            for item in (path, Path(str(path) + ".sha256")):
                if item.exists():
                    item.unlink()
                    removed.append(item)
    if entry.file:  # an import: forget its registry entry too
        save_user_entries([e for e in user_entries() if e.name != entry.name])
    return removed


