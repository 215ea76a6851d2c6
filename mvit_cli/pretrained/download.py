"""Fetching checkpoint files: publisher URLs by streamed HTTP, Hub files through huggingface-hub.

Every fetch is safe to interrupt and to run twice at once: bytes go to `<file>.part`
(resumed with an HTTP Range request next time), the finished file appears only by an atomic
rename after its digest matched, and a lock file serialises processes fetching the same file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from filelock import FileLock
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from ..errors import MvitError, first_line
from ..progress import progress_bar

CHUNK = 1 << 20


class DownloadError(MvitError, RuntimeError):
    """A download that failed; the message is one line that says what to do."""


class OfflineError(DownloadError):
    """No network (or offline mode) and the file is not cached."""


def network_timeout() -> float:
    """Seconds to wait for a server to answer or send more bytes (MVIT_NETWORK_TIMEOUT)."""
    return float(os.environ.get("MVIT_NETWORK_TIMEOUT", "10"))


def offline_mode() -> bool:
    """HF_HUB_OFFLINE (the Hub's own switch) or MVIT_OFFLINE turn every download off."""
    return any(os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
               for var in ("HF_HUB_OFFLINE", "MVIT_OFFLINE"))


def sha256_of(path: Path, hasher: "hashlib._Hash | None" = None) -> str:
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            hasher.update(block)
    return hasher.hexdigest()


def digest_matches(actual: str, expected: str | None) -> bool:
    """A full sha256 must match exactly; a publisher's prefix (8 digits at least) must start
    it. No digest matches nothing: a file is never called verified without one."""
    if not expected or len(expected) < 8:
        return False
    return actual.lower().startswith(expected.lower())


@dataclass(frozen=True)
class Limits:
    """What one download may take: bytes at most, and seconds in all."""

    max_bytes: int
    deadline_s: float


def limits_for(size_mb: float | None) -> Limits:
    """The entry's size with a 5% margin (else 4 GB), and time for at least 100 KB/s plus a
    few minutes; MVIT_DOWNLOAD_DEADLINE (seconds) overrides the time."""
    max_bytes = int(size_mb * 1e6 * 1.05 + 1e6) if size_mb else 4 * 10**9
    deadline = os.environ.get("MVIT_DOWNLOAD_DEADLINE")
    seconds = float(deadline) if deadline else 300.0 + max_bytes / 100e3
    return Limits(max_bytes, seconds)


def _progress(description: str) -> Progress:
    return progress_bar(description, DownloadColumn(), TransferSpeedColumn(), counted=False)


def _open(url: str, start: int):
    request = urllib.request.Request(url, headers={"User-Agent": "mvit-cli"})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=network_timeout())


@dataclass(frozen=True)
class Fetched:
    """A fetched file and its sha256, hashed while it was verified: never hashed again."""

    path: Path
    sha256: str


def fetch_url(url: str, dest: Path, expected_digest: str | None,
              limits: Limits | None = None) -> Fetched:
    """Download `url` to `dest` unless a copy is already there.

    With `expected_digest`, the bytes must match it; None means the caller pins whatever
    arrives (only for entries whose publisher gives no digest, and only when the user said
    so: see store.ensure_weights).
    """
    limits = limits or limits_for(None)
    if offline_mode():
        raise OfflineError(f"offline mode is on and {dest.name} is not downloaded")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if dest.exists():  # another process finished it while we waited for the lock
            return Fetched(dest, sha256_of(dest))
        partial = dest.with_name(dest.name + ".part")
        hasher = hashlib.sha256()
        start = partial.stat().st_size if partial.exists() else 0
        try:
            response = _open(url, start)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:  # the part is already whole
                response = None
            else:
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OfflineError(f"cannot reach {url} ({reason})") from None
        except http.client.HTTPException as exc:
            raise DownloadError(f"{url}: the server's answer is not valid HTTP "
                                f"({_http_problem(exc)})") from None
        if response is not None and start and response.status != 206:
            start = 0  # the server ignored the Range header: start afresh
        if start:
            sha256_of(partial, hasher)
        if response is not None:
            _stream(response, partial, start, hasher, url, limits)
        digest = hasher.hexdigest()
        if expected_digest is not None and not digest_matches(digest, expected_digest):
            partial.unlink(missing_ok=True)
            raise DownloadError(f"{url}: sha256 {digest[:16]}... does not match the expected "
                                f"{expected_digest}; the file was deleted")
        os.replace(partial, dest)
    return Fetched(dest, digest)


def _http_problem(exc: BaseException) -> str:
    """http.client's errors in a few words (they are neither OSError nor URLError)."""
    if isinstance(exc, http.client.IncompleteRead):
        return "the body ended early"
    if isinstance(exc, http.client.BadStatusLine):
        return "no HTTP status line"
    if isinstance(exc, http.client.LineTooLong):
        return "a header line too long"
    text = first_line(exc, 80)
    return text if text != type(exc).__name__ else f"{type(exc).__name__}"


def _stream(response, partial: Path, start: int, hasher, url: str, limits: Limits) -> None:
    """Append the body to `partial`, within the size and time limits.

    `read1` returns whatever has arrived, so a server that sends a byte every few seconds
    (each read within the socket timeout) still meets the overall deadline.
    """
    length = response.headers.get("Content-Length")
    total = start + int(length) if length is not None and length.isdigit() else None
    if total is not None and total > limits.max_bytes:
        response.close()
        raise DownloadError(f"{url}: the server announces {total / 1e6:.1f} MB, more than the "
                            f"{limits.max_bytes / 1e6:.1f} MB expected; not downloaded")
    received = start
    deadline = time.monotonic() + limits.deadline_s
    with response, open(partial, "ab" if start else "wb") as out, _progress(
            f"downloading {partial.name.removesuffix('.part')}") as bar:
        task = bar.add_task("", total=total, completed=start)
        try:
            for block in iter(lambda: response.read1(CHUNK), b""):
                out.write(block)
                hasher.update(block)
                received += len(block)
                bar.update(task, completed=received)
                if received > limits.max_bytes:
                    out.close()
                    partial.unlink(missing_ok=True)
                    raise DownloadError(f"{url}: sent more than the {limits.max_bytes / 1e6:.1f} "
                                        "MB expected; stopped, and the part was deleted")
                if time.monotonic() > deadline:
                    raise DownloadError(f"{url}: not done after {limits.deadline_s:.0f} s "
                                        f"({received / 1e6:.1f} MB); run the command again to "
                                        "resume")
        except (OSError, urllib.error.URLError, http.client.HTTPException) as exc:
            reason = (_http_problem(exc) if isinstance(exc, http.client.HTTPException)
                      else first_line(exc, 80))
            raise DownloadError(f"{url}: transfer broke off after {received / 1e6:.1f} MB "
                                f"({reason}); run the command again to resume") from None
    if total is not None and received < total:
        raise DownloadError(f"{url}: transfer broke off after {received / 1e6:.1f} of "
                            f"{total / 1e6:.1f} MB; run the command again to resume")


def fetch_hub(repo: str, filename: str, revision: str, expected_digest: str | None = None,
              local_only: bool = False, limits: Limits | None = None) -> Fetched:
    """A file from the Hugging Face Hub, through its own cache (HF_ENDPOINT is honoured).

    huggingface-hub handles resume, locking and the atomic move. We check the digest: the
    registry's if it has one, else the Hub's own file hash (the blob's name for LFS files).
    Before a download, the size the Hub announces is held to `limits` (as for publisher
    URLs): huggingface-hub itself refuses a body longer than it announced.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    # huggingface-hub retries unreachable hosts with back-off for half a minute; one short
    # connect tells us first whether to stay with the local cache.
    local_only = local_only or offline_mode() or not reachable(endpoint)
    try:
        if not local_only and not _in_hub_cache(repo, filename, revision):
            _check_hub_size(endpoint, repo, filename, revision, limits or limits_for(None))
        path = Path(hf_hub_download(
            repo, filename, revision=revision, endpoint=endpoint,
            cache_dir=os.environ.get("HF_HUB_CACHE") or None,
            local_files_only=local_only, etag_timeout=network_timeout()))
    except LocalEntryNotFoundError:
        raise OfflineError(f"{repo}/{filename} is not in the Hub cache and the Hub cannot "
                           "be reached") from None
    except DownloadError:
        raise
    except Exception as exc:  # noqa: BLE001 - hub errors come as many types; one line each
        status = getattr(getattr(exc, "response", None), "status_code", None)
        detail = f"HTTP {status}" if status else f"{type(exc).__name__}: {first_line(exc)}"
        if status is None and ("connect" in str(exc).lower() or isinstance(exc, OSError)):
            raise OfflineError(f"cannot reach the Hub for {repo}/{filename} ({detail})") from None
        raise DownloadError(f"{repo}/{filename}@{revision}: {detail}") from None
    expected = expected_digest or hub_blob_hash(path)
    digest = sha256_of(path)
    if not expected:
        raise DownloadError(f"{repo}/{filename}: neither the registry nor the Hub gives a "
                            "sha256 for this file, so it cannot be verified")
    if not digest_matches(digest, expected):
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise DownloadError(f"{repo}/{filename}: sha256 {digest[:16]}... does not match "
                            f"{expected}; the file was deleted from the Hub cache")
    return Fetched(path, digest)


def _in_hub_cache(repo: str, filename: str, revision: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=revision,
                                   cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    return isinstance(found, str)


def _check_hub_size(endpoint: str, repo: str, filename: str, revision: str,
                    limits: Limits) -> None:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    size = get_hf_file_metadata(url, timeout=network_timeout()).size
    if size is not None and size > limits.max_bytes:
        raise DownloadError(f"{repo}/{filename}: the Hub announces {size / 1e6:.1f} MB, more "
                            f"than the {limits.max_bytes / 1e6:.1f} MB expected; not downloaded")


def reachable(url: str) -> bool:
    """Whether a TCP connection to the URL's host opens within a few seconds."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=min(network_timeout(), 5)).close()
    except OSError:
        return False
    return True


def hub_blob_hash(path: Path) -> str | None:
    """The Hub cache names LFS blobs by their sha256: use it to check the bytes."""
    name = path.resolve().name
    return name if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else None

