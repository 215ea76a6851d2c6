"""The weights cache: from a registry name to a checkpoint file ready to load.

Publisher downloads are verified, converted once to our own safetensors in
`$MVIT_HOME/weights/NAME.safetensors` (architecture, labels and test protocol inside; a
`.sha256` file beside it for `mvit weights verify`) and the original is deleted: the one
conversion, at download (or `mvit weights import`) time, never in a run that classifies.
A publisher's file that torch.hub holds already (torchvision's weights, in
`$TORCH_HOME/hub/checkpoints`) takes the place of its download where the entry's full
sha256 matches it (torch_hub.py); torch's file stays as it is. Hub files stay in the Hub's
cache, where `mvit weights` lists, verifies and removes them, and are converted the same way
beside it when fetched. An import of a published entry's file, Hub entries' included, takes
the place of a download. Later runs read our file memory-mapped, with no network.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from filelock import FileLock

from ..checkpoints.metadata import (META_DIGEST_FROM, META_PROTOCOL, META_SOURCE,
                                    META_SOURCE_SHA256, META_WEIGHTS)
from ..errors import MvitError, UsageError, first_line
from ..fileio import atomic_write_text
from ..labels import choose_labels, read_label_file
from ..media.protocol import check_recorded
from ..models.architectures import get_config, same_architecture
from ..models.config import MViTConfig
from ..paths import mvit_home
from .download import (DownloadError, Fetched, OfflineError, digest_matches, fetch_hub,
                       fetch_url, hub_blob_hash, limits_for, sha256_of)
from .registry import (UnknownWeightsError, WeightsEntry, default_entry, find_entry,
                       published_entry, save_user_entries, user_entries)
from .torch_hub import find_in_torch_hub


class WeightsUnavailableError(MvitError, RuntimeError):
    """Weights that are neither cached nor downloadable now; the message says what to do."""


def weights_dir() -> Path:
    path = mvit_home() / "weights"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _native_path(entry: WeightsEntry) -> Path:
    """Our safetensors for `entry`: an import's own file, a file shipped in the package
    (a relative `file`, under mvit_cli.weights), or the cache's converted download (or the
    import of a published entry's file, Hub entries' included)."""
    if entry.shipped:
        return shipped_weights_dir() / entry.file
    if entry.file:
        return Path(entry.file)
    return weights_dir() / f"{entry.name}.safetensors"


def shipped_weights_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("mvit_cli.weights")))


def _hub_file(entry: WeightsEntry, local_only: bool) -> Fetched:
    hub = entry.hub or {}
    return fetch_hub(hub["repo"], hub["file"], hub.get("revision", "main"),
                     entry.expected_digest, local_only=local_only,
                     limits=None if local_only else limits_for(entry.size_mb))


def cached_file(entry: WeightsEntry) -> Path | None:
    """The file of `entry` on disk, as `mvit weights` shows it, without touching the network:
    for a Hub entry the Hub's file (our conversion of it is derived data), else ours."""
    if entry.hub:
        try:
            return _hub_file(entry, local_only=True).path
        except (OfflineError, DownloadError):
            pass
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


class UnpinnedError(WeightsUnavailableError):
    """Weights whose publisher gives no digest, not downloaded without the user's say-so."""


@dataclass(frozen=True)
class Located:
    """A weights argument made local: the file to load (always our format for a registry
    entry), its registry entry (None for a file given by path), and its sha256 where getting
    it already hashed it (a download), so that it is never hashed twice.

    `sha256_inside`: the file is our conversion of a Hub file, which outputs identify by the
    Hub file's sha256, recorded inside it (`mvit.source_sha256`) when it was converted.
    """

    path: Path
    entry: WeightsEntry | None
    sha256: str | None = None
    sha256_inside: bool = False


def locate(weights: str | os.PathLike | None, model: str | MViTConfig | None = None
           ) -> Located:
    """The local file for a weights argument: a file as it is (read in place: nothing is
    written beside a user's file), a registry name cached (or downloaded and converted now),
    or None for the default weights (of `model`, if given). A name whose entry is for
    another architecture than `model` is refused."""
    wanted = None
    if model is not None:
        wanted = model.name if isinstance(model, MViTConfig) else get_config(model).name
    if weights is None:
        entry = default_entry(wanted)
    else:
        path, entry = resolve_weights(weights, fetch=False)
        if entry is None:
            assert path is not None
            return Located(path, None)
    if wanted is not None and not same_architecture(entry.architecture, wanted):
        raise UsageError(f"weights {entry.name!r} are for {entry.architecture}, not {wanted}")
    target = _native_path(entry)
    if target.exists():  # converted (or imported) before: read as it is, no network
        return Located(target, entry, sha256_inside=bool(entry.hub))
    if entry.hub:
        fetched = _fetch_hub_entry(entry)
        return Located(target, entry, fetched.sha256, sha256_inside=True)
    path, digest = _ensure(entry, pin=False)
    return Located(path, entry, digest)


def ensure_weights(entry: WeightsEntry, pin: bool = False) -> Path:
    """A local checkpoint file for `entry`: cached, or downloaded, verified and converted now.

    For a Hub entry, the Hub's file (checked for a newer one where the Hub can be reached),
    with our conversion of it brought up to date beside. An entry whose publisher gives no
    digest is downloaded only with `pin`: its sha256 is then recorded (pinned) at this
    first download, and every later verify checks against that, reported as pinned by the
    user rather than by the publisher.
    """
    if entry.hub:
        target = _native_path(entry)
        try:
            return _fetch_hub_entry(entry).path
        except WeightsUnavailableError:
            if target.exists():  # an import of the published file stands in for the Hub's
                return target
            raise
    return _ensure(entry, pin)[0]


def _fetch_hub_entry(entry: WeightsEntry) -> Fetched:
    """The Hub's file for `entry`, verified; converted to ours unless our conversion is
    already of these very bytes (a Hub file can change under a revision like "main")."""
    try:
        fetched = _hub_file(entry, local_only=False)
    except OfflineError as exc:
        raise _unavailable(entry, str(exc)) from None
    target = _native_path(entry)
    with FileLock(str(target) + ".lock"):
        if not (target.exists() and _recorded_source(target) == fetched.sha256):
            convert_to_native(fetched.path, entry, target, {
                META_SOURCE: entry.source, META_SOURCE_SHA256: fetched.sha256,
                META_DIGEST_FROM: "publisher"})
    return fetched


def _recorded_source(path: Path) -> str | None:
    """The sha256 of the file our conversion at `path` was made from, as it records it."""
    from ..checkpoints.reader import CheckpointError, read_metadata

    try:
        return read_metadata(path).get(META_SOURCE_SHA256)
    except CheckpointError:
        return None


def _ensure(entry: WeightsEntry, pin: bool) -> tuple[Path, str | None]:
    """`ensure_weights` for entries of ours or of a publisher's URL, with the file's sha256
    where this call hashed it (else None).

    A publisher's checkpoint is converted to our safetensors here, once, when it is
    downloaded: later runs read our format directly and convert nothing.
    """
    target = _native_path(entry)
    if target.exists():
        return target, None
    if entry.file:
        raise WeightsUnavailableError(f"weights {entry.name!r}: {entry.file} is gone; import "
                                      "the checkpoint again with mvit weights import")
    if not entry.url:
        raise WeightsUnavailableError(f"weights {entry.name!r} have no source to download from")
    if entry.expected_digest is None and not pin:
        raise UnpinnedError(
            f"weights {entry.name!r}: the publisher gives no sha256 to check a download "
            f"against; to download them anyway and pin the sha256 they have now, run: mvit "
            f"weights download {entry.name} --pin")
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return target, None
        # torch.hub's copy of the same file, verified, stands in for the download: converted
        # the same way, and left where it is.
        borrowed = find_in_torch_hub(entry.url, entry.expected_digest)
        if borrowed is not None:
            original = borrowed
        else:
            download = mvit_home() / "downloads" / (Path(urlparse(entry.url).path).name
                                                    or entry.name)
            try:
                original = fetch_url(entry.url, download, entry.expected_digest,
                                     limits_for(entry.size_mb))
            except OfflineError as exc:
                raise _unavailable(entry, str(exc)) from None
        converted = convert_to_native(original.path, entry, target, {
            META_SOURCE: entry.url, META_SOURCE_SHA256: original.sha256,
            META_DIGEST_FROM: "publisher" if entry.expected_digest else "user"})
        if borrowed is None:
            original.path.unlink()
    return target, converted.sha256


@dataclass
class Converted:
    path: Path
    num_classes: int
    sha256: str  # of the converted file, as recorded beside it


def convert_to_native(source: Path, entry: WeightsEntry, target: Path,
                      extra: dict[str, str] | None = None,
                      labels: list[str] | None = None) -> Converted:
    """Load `source` (any layout) strictly into its architecture and save it as ours.

    The result carries the entry's name, labels and test protocol, so it says what it is
    wherever it is copied. `labels` (a user's list) must fit the head. Its sha256 is
    recorded beside it (for `mvit weights verify`) and returned.
    """
    # Imported here: listing, locating and removing weights need no torch.
    from ..checkpoints.files import load_file
    from ..checkpoints.loading import save_native

    loaded = load_file(source, entry.architecture)
    names, _ = choose_labels(loaded.model.num_classes, given=labels,
                             in_file=loaded.labels, source=str(source),
                             label_set=entry.labels)
    metadata = {META_WEIGHTS: entry.name, **(extra or {})}
    if entry.protocol:
        metadata[META_PROTOCOL] = json.dumps(entry.protocol)
    save_native(loaded.model, target, labels=names, extra=metadata)
    digest = sha256_of(target)
    atomic_write_text(Path(str(target) + ".sha256"), digest + "\n")
    return Converted(target, loaded.model.num_classes, digest)


def resolve_weights(spec: str | os.PathLike, fetch: bool = True
                    ) -> tuple[Path | None, WeightsEntry | None]:
    """A weights argument as users give it: an existing file, or a registry name.

    Returns (file, None) for a file, (cached or downloaded file, entry) for a name; with
    `fetch=False`, (None, entry) without touching the cache or the network.
    """
    path = Path(spec).expanduser()
    if path.is_file():
        return path, None
    try:
        entry = find_entry(str(spec))
    except UnknownWeightsError:
        if path.suffix or os.sep in str(spec):
            return path, None  # meant as a file: the reader says it is missing
        raise
    return (ensure_weights(entry) if fetch else None), entry


class ImportRefusedError(UsageError):
    """An import that would claim to be published weights it is not; one line."""


def import_checkpoint(source: Path, name: str, architecture: str | None = None,
                      labels_file: Path | None = None, force: bool = False) -> WeightsEntry:
    """Make a checkpoint (any supported layout) usable offline under `name`.

    Under a published entry's name the file must be that entry's file: its sha256 is checked
    against the published digest, and a match makes it exactly what a download would have
    made (the entry keeps its default, labels, protocol and accuracy). A mismatch, or an
    entry with no digest to check, is refused; `force` then imports the file as the user's
    own entry of that name, which keeps the default but claims no accuracy.
    Any other name makes a user entry, its architecture from --model or from the file.
    A user entry keeps the test protocol the file records (what `mvit train` writes), else
    the published entry's: the entry's protocol outranks the file's wherever it is used, so
    one left out here would make `--weights NAME` sample other clips than `--weights FILE`.
    """
    from ..checkpoints.files import load_file

    if not source.is_file():
        raise ImportRefusedError(f"{source}: no such checkpoint file")
    labels = read_label_file(labels_file) if labels_file is not None else None
    published = published_entry(name)
    digest = sha256_of(source)
    if published is not None:
        if architecture is not None and not same_architecture(architecture, published.architecture):
            raise ImportRefusedError(f"{published.name} are {published.architecture} weights, not "
                                     f"{get_config(architecture).name}")
        expected = published.expected_digest
        if expected and digest_matches(digest, expected) and labels is None:
            target = _native_path(published)
            with FileLock(str(target) + ".lock"):
                convert_to_native(source, published, target,
                                  {META_SOURCE: str(source.resolve()), META_SOURCE_SHA256: digest})
            return published
        if not force:
            if labels is not None:
                why = "published weights keep their own labels"
            elif expected:
                why = (f"its sha256 {digest} does not "
                       f"{'start with' if len(expected) < 64 else 'match'} the published "
                       f"{expected}")
            else:
                why = f"{published.name} has no published digest to check it against"
            raise ImportRefusedError(
                f"{source}: not imported as {published.name}: {why}; --force imports it as "
                "your own entry of that name, without the published accuracy")
        entry = replace(published, url=None, hub=None, top1=None, top5=None,
                        sha256_prefix=None, labels="custom" if labels else published.labels,
                        reported_by=f"imported with --force from {source} (sha256 {digest}, "
                                    f"not the published file)")
    else:
        if architecture is None:
            architecture = load_file(source).cfg.name
        cfg = get_config(architecture)
        entry = WeightsEntry(name=name, architecture=cfg.name,
                             labels="custom" if labels else cfg.dataset,
                             reported_by=f"imported from {source}")
    entry = replace(entry, protocol=_recorded_protocol(source) or entry.protocol)
    target = weights_dir() / f"{entry.name}.safetensors"
    converted = convert_to_native(source, entry, target,
                                  {META_SOURCE: str(source.resolve()), META_SOURCE_SHA256: digest},
                                  labels=labels)
    entry = replace(entry, file=str(converted.path), sha256=converted.sha256)
    others = [e for e in user_entries() if e.name.lower() != name.lower()]
    save_user_entries([entry, *others])
    return entry


def _recorded_protocol(source: Path) -> dict[str, Any] | None:
    """The test protocol a file of ours records, checked now so that a bad one is refused
    at import rather than at the first run; None for a file that records none."""
    from ..checkpoints.loading import file_protocol
    from ..checkpoints.reader import read_metadata

    return check_recorded(file_protocol(str(source), read_metadata(source)), str(source))


@dataclass
class VerifyResult:
    entry: WeightsEntry
    status: str  # "ok", "not cached", "corrupt"
    detail: str = ""


def verify_entry(entry: WeightsEntry) -> VerifyResult:
    """Re-hash a cached file against what was recorded when it was made, and load it; for a
    Hub entry, our conversion of its file as well (which is what runs load).

    No recorded digest means nothing to verify against: reported, never called ok.
    """
    path = cached_file(entry)
    if path is None:
        return VerifyResult(entry, "not cached")
    result = _verify_file(entry, path)
    converted = _native_path(entry)
    if result.status == "ok" and path != converted and converted.exists():
        derived = _verify_file(entry, converted)
        if derived.status != "ok":
            return derived
    return result


def _verify_file(entry: WeightsEntry, path: Path) -> VerifyResult:
    sidecar = Path(str(path) + ".sha256")
    if sidecar.exists():
        recorded = sidecar.read_text().strip()
    elif entry.hub:
        recorded = entry.expected_digest or hub_blob_hash(path) or ""
    else:
        recorded = entry.sha256 or ""
    if not recorded:
        return VerifyResult(entry, "unverifiable", "no digest is recorded for this file; "
                            "download or import it again")
    actual = sha256_of(path)
    if not digest_matches(actual, recorded):
        return VerifyResult(entry, "corrupt",
                            f"sha256 {actual[:12]}... expected {recorded[:12]}...")
    try:
        from ..checkpoints.files import load_file
        from ..checkpoints.reader import read_metadata

        load_file(path, entry.architecture)
        metadata = read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - any failure to load means the cache is bad
        return VerifyResult(entry, "corrupt", first_line(exc))
    source = metadata.get(META_SOURCE_SHA256, "")
    if metadata.get(META_DIGEST_FROM) == "user":
        return VerifyResult(entry, "ok", f"{path} (pinned by you at its first download: "
                                         f"sha256 {source}; its publisher gives no digest)")
    return VerifyResult(entry, "ok", str(path))


def remove_entry(entry: WeightsEntry) -> list[Path]:
    """Delete a cached checkpoint (and, for imports, the registry entry). Returns what went
    (for a Hub entry, the Hub's file; our conversion of it is removed with it)."""
    removed: list[Path] = []
    if entry.shipped:
        return removed  # part of the package, not of the cache
    path = cached_file(entry)
    converted = _native_path(entry)
    if path is not None:
        if path != converted:  # the Hub's cache, not ours
            blob = path.resolve()
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            removed.append(path)
            # Our conversion of it goes with it: derived data, not a file of its own.
            for item in (converted, Path(str(converted) + ".sha256")):
                item.unlink(missing_ok=True)
        else:
            for item in (path, Path(str(path) + ".sha256")):
                if item.exists():
                    item.unlink()
                    removed.append(item)
    if entry.file:  # an import: forget its registry entry too
        save_user_entries([e for e in user_entries() if e.name != entry.name])
    return removed


