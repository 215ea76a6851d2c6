"""Pretrained weights: registry, downloads, cache and offline use, against a local server.

The server (tests/http_server.py) plays a publisher's file server and the Hugging Face Hub on
127.0.0.1; nothing here touches the internet.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from safetensors.torch import load_file, save

from mvit_cli import build_model
from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native
from mvit_cli.pretrained.download import DownloadError
from mvit_cli.pretrained.registry import (WeightsEntry, default_entry, find_entry,
                                          published_entries, save_user_entries,
                                          user_entries)
from mvit_cli.pretrained.store import (WeightsUnavailableError, cached_file, ensure_weights,
                                       import_checkpoint, remove_entry, verify_entry)

from conftest import FIXTURES, TINY_V1, TINY_V2_IMAGE, register_tiny_architectures, reference
from http_server import FakeServer, Served


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "mvit"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("MVIT_OFFLINE", raising=False)
    monkeypatch.setenv("MVIT_NETWORK_TIMEOUT", "5")
    return tmp_path / "mvit"


@pytest.fixture
def server(monkeypatch):
    with FakeServer() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def _tv_checkpoint() -> bytes:
    """The v1 reference fixture as torchvision publishes weights: a .pth state dict."""
    buffer = io.BytesIO()
    torch.save(load_file(str(FIXTURES / "tv_v1_tiny.weights.safetensors")), buffer)
    return buffer.getvalue()


def _publish(server: FakeServer, name: str, data: bytes, digest: str | None = None,
             size_mb: float | None = None, **behaviour) -> WeightsEntry:
    """Serve `data` as a publisher file and register it as weights `name` (with its own
    sha256 prefix unless `digest` says otherwise; "" for a publisher that gives none)."""
    server.files[f"{name}.pth"] = Served(data, **behaviour)
    entry = WeightsEntry(name=name, architecture="tiny-v1", labels="custom",
                         url=f"{server.url}/files/{name}.pth", size_mb=size_mb,
                         sha256_prefix=hashlib.sha256(data).hexdigest()[:8] if digest is None
                         else digest, protocol={"frames": 4, "rate": 2})
    save_user_entries([entry])
    return entry


def _logits(model) -> torch.Tensor:
    _, _, clip, _ = reference("tv_v1_tiny")
    with torch.inference_mode():
        return model(clip)


def _gets(served: Served) -> list[dict]:
    return [r for r in served.requests if r["method"] == "GET"]


# ---- the registry -----------------------------------------------------------------------

def test_registry_has_the_published_checkpoints():
    names = {e.name: e for e in published_entries()}
    default = default_entry()
    assert default.architecture == "B-16x4"
    assert default.url.endswith("mvit_v1_b-dbeb1030.pth") and default.sha256_prefix == "dbeb1030"
    assert names["v2-s16x4-k400"].sha256_prefix == "ae3be167"
    archs = {e.architecture for e in names.values()}
    assert {"B-16x4", "B-32x3", "B-16", "v2-S-16x4", "v2-B-32x3", "v2-T", "v2-S", "v2-B",
            "v2-L"} <= archs
    for entry in names.values():
        if entry.shipped:  # motion-demo: inside the package, see test_motion_demo.py
            continue
        assert entry.url or entry.hub
        assert entry.top1 and entry.protocol.get("crop")
        assert entry.labels in ("kinetics400", "kinetics600", "imagenet1k")


def test_label_sets_have_the_right_sizes():
    from mvit_cli.labels import load_labels

    assert len(load_labels("kinetics400")) == 400 and load_labels("kinetics400")[0] == "abseiling"
    assert len(load_labels("kinetics600")) == 600
    assert len(load_labels("imagenet1k")) == 1000 and load_labels("imagenet1k")[0] == "tench"


# ---- publisher URLs ----------------------------------------------------------------------

def test_download_converts_and_then_hits_the_cache(server, home):
    data = _tv_checkpoint()
    entry = _publish(server, "tiny-pub", data)
    served = server.files["tiny-pub.pth"]
    model = build_model("tiny-v1", weights="tiny-pub")
    _, _, _, expected = reference("tv_v1_tiny")
    assert torch.allclose(_logits(model), expected, atol=1e-5 * expected.abs().max())
    assert model.labels == [f"class {i}" for i in range(10)]
    cached = home / "weights" / "tiny-pub.safetensors"
    assert cached.exists() and (home / "weights" / "tiny-pub.safetensors.sha256").exists()
    downloads = home / "downloads"
    assert not (downloads / "tiny-pub.pth").exists()  # the original is gone
    assert not (downloads / "tiny-pub.pth.part").exists()
    assert len(_gets(served)) == 1

    again = build_model("tiny-v1", weights="tiny-pub")
    assert len(_gets(served)) == 1  # no network the second time
    assert torch.equal(_logits(again), _logits(model))
    assert cached_file(entry) == cached


def test_resume_after_a_cut_transfer(server, home):
    data = _tv_checkpoint()
    _publish(server, "tiny-cut", data, cut_after=100_000)
    with pytest.raises(DownloadError, match="run the command again to resume"):
        ensure_weights(find_entry("tiny-cut"))
    part = home / "downloads" / "tiny-cut.pth.part"
    assert part.exists() and part.stat().st_size == 100_000

    path = ensure_weights(find_entry("tiny-cut"))
    gets = _gets(server.files["tiny-cut.pth"])
    assert gets[-1]["range"] == "bytes=100000-"
    assert path.exists() and not part.exists()
    assert build_model("tiny-v1", weights="tiny-cut").num_classes == 10


def test_wrong_digest_deletes_the_file_and_says_so(server, home):
    _publish(server, "tiny-bad", _tv_checkpoint(), digest="deadbeef")
    with pytest.raises(DownloadError, match="does not match the expected deadbeef; the file "
                                            "was deleted"):
        ensure_weights(find_entry("tiny-bad"))
    assert not (home / "downloads" / "tiny-bad.pth").exists()
    assert not (home / "downloads" / "tiny-bad.pth.part").exists()
    assert not (home / "weights" / "tiny-bad.safetensors").exists()


def test_404_is_one_clear_error(server):
    entry = WeightsEntry(name="tiny-404", architecture="tiny-v1", labels="custom", url=f"{server.url}/files/missing.pth",
                         sha256_prefix="0" * 8)
    save_user_entries([entry])
    with pytest.raises(DownloadError, match="HTTP 404"):
        build_model("tiny-v1", weights="tiny-404")


def test_server_gone_fails_fast_with_instructions(home):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/files/gone.pth"
    save_user_entries([WeightsEntry(name="tiny-gone", architecture="tiny-v1",
                                    labels="custom", url=url,
                                    sha256_prefix="0" * 8)])
    started = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as error:
        build_model("tiny-v1", weights="tiny-gone")
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert url in message and "mvit weights import FILE --model tiny-v1 --name tiny-gone" in message
    assert "\n" not in message


def test_offline_uses_the_cache_and_refuses_the_rest(server, monkeypatch):
    _publish(server, "tiny-off", _tv_checkpoint())
    build_model("tiny-v1", weights="tiny-off")  # cached while online
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    requests_before = len(server.files["tiny-off.pth"].requests)
    assert build_model("tiny-v1", weights="tiny-off").num_classes == 10
    assert len(server.files["tiny-off.pth"].requests) == requests_before
    server.files["other.pth"] = Served(_tv_checkpoint())
    save_user_entries([WeightsEntry(name="tiny-other", architecture="tiny-v1",
                                    labels="custom",
                                    url=f"{server.url}/files/other.pth", sha256_prefix="0" * 8),
                        find_entry("tiny-off")])
    with pytest.raises(WeightsUnavailableError, match="offline mode is on"):
        build_model("tiny-v1", weights="tiny-other")
    assert server.files["other.pth"].requests == []


def test_two_processes_fetching_one_file_at_once(server, home):
    _publish(server, "tiny-race", _tv_checkpoint(), delay=0.1)
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    from children import download_in_child

    workers = [ctx.Process(target=download_in_child, args=(str(home), "tiny-race", start, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    start.set()
    paths = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    assert paths[0] == paths[1] and not paths[0].startswith("error"), paths
    assert len(_gets(server.files["tiny-race.pth"])) == 1  # one download, the other waited
    assert build_model("tiny-v1", weights="tiny-race").num_classes == 10


# ---- the Hub -----------------------------------------------------------------------------

def _hub_entry(server: FakeServer, repo: str, etag: str | None = None,
               size_mb: float | None = None) -> WeightsEntry:
    torch.manual_seed(3)
    model = build_model(TINY_V2_IMAGE)
    data = save(from_native(model.state_dict(), LAYOUTS_BY_NAME["timm"], TINY_V2_IMAGE))
    server.hub[(repo, "model.safetensors")] = Served(data, etag=etag)
    entry = WeightsEntry(name=repo.split("/")[1], architecture="tiny-v2-image",
                         labels="custom", size_mb=size_mb,
                         hub={"repo": repo, "file": "model.safetensors", "revision": "main"})
    save_user_entries([entry])
    return entry, model


def test_hub_download_cache_and_offline(server, monkeypatch):
    entry, reference_model = _hub_entry(server, "timm/tiny-hub")
    image = torch.randn(1, 3, 32, 32)
    model = build_model("tiny-v2-image", weights="tiny-hub")
    with torch.inference_mode():
        assert torch.equal(model(image), reference_model(image))
    served = server.hub[("timm/tiny-hub", "model.safetensors")]
    assert len(_gets(served)) == 1
    build_model("tiny-v2-image", weights="tiny-hub")
    assert len(_gets(served)) == 1  # the Hub cache answers
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cached_file(entry) is not None
    assert build_model("tiny-v2-image", weights="tiny-hub").num_classes == 7


def test_hub_file_with_the_wrong_hash_is_deleted(server):
    _hub_entry(server, "timm/tiny-bad", etag="0" * 64)
    with pytest.raises(DownloadError, match="does not match"):
        build_model("tiny-v2-image", weights="tiny-bad")


def test_a_hub_file_larger_than_its_entry_says_is_not_downloaded(server):
    entry, _ = _hub_entry(server, "timm/tiny-huge", size_mb=0.0001)
    served = server.hub[("timm/tiny-huge", "model.safetensors")]
    served.data += b"\0" * 1_200_000  # past the entry's size, its 5% and 1 MB of margin
    with pytest.raises(DownloadError, match=r"announces 1\.\d MB, more than the 1\.0 MB expected"):
        build_model("tiny-v2-image", weights="tiny-huge")
    assert not _gets(served) and cached_file(entry) is None


def test_hub_404(server):
    save_user_entries([WeightsEntry(name="tiny-nohub", architecture="tiny-v2-image",
                                    labels="custom",
                                    hub={"repo": "timm/absent", "file": "model.safetensors"})])
    with pytest.raises(DownloadError, match="404"):
        build_model("tiny-v2-image", weights="tiny-nohub")


# ---- import, verify, remove ---------------------------------------------------------------

def test_import_then_use_offline_with_labels(tmp_path, monkeypatch):
    _, weights, _, expected = reference("tv_v1_tiny")
    path = tmp_path / "mine.pth"
    torch.save(load_file(str(weights)), path)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"action {i}\n" for i in range(10)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = import_checkpoint(path, "mine", "tiny-v1", labels)
    path.unlink()  # the import is self-contained
    model = build_model("tiny-v1", weights="mine")
    assert model.labels[3] == "action 3"
    assert torch.allclose(_logits(model), expected, atol=1e-5 * expected.abs().max())
    assert verify_entry(entry).status == "ok"


def test_verify_finds_a_corrupted_cache_and_remove_clears_it(server, home):
    entry = _publish(server, "tiny-ver", _tv_checkpoint())
    ensure_weights(entry)
    assert verify_entry(entry).status == "ok"
    cached = home / "weights" / "tiny-ver.safetensors"
    raw = bytearray(cached.read_bytes())
    raw[-5] ^= 0xFF
    cached.write_bytes(bytes(raw))
    assert verify_entry(entry).status == "corrupt"
    removed = remove_entry(entry)
    assert cached in removed and cached_file(entry) is None
    assert not (home / "weights" / "tiny-ver.safetensors.sha256").exists()
    assert verify_entry(entry).status == "not cached"


def test_unknown_weights_name_lists_the_known_ones():
    from mvit_cli.pretrained.registry import UnknownWeightsError

    with pytest.raises(UnknownWeightsError, match="b16x4-k400"):
        build_model("B-16x4", weights="no-such-weights")


def test_weights_for_another_architecture_are_refused(server):
    _publish(server, "tiny-arch", _tv_checkpoint())
    from mvit_cli import UsageError

    with pytest.raises(UsageError, match="are for tiny-v1, not B-16x4"):
        build_model("B-16x4", weights="tiny-arch")


def test_weights_shipped_in_the_package_need_no_download(tmp_path, monkeypatch):
    """A registry entry with a relative `file` is read from the package's weights folder."""
    import mvit_cli.pretrained.store as store
    from mvit_cli.checkpoints import save_native

    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(store, "shipped_weights_dir", lambda: package)
    torch.manual_seed(5)
    model = build_model(TINY_V1)
    save_native(model, package / "demo.safetensors", labels=[f"c{i}" for i in range(10)])
    entry = WeightsEntry(name="tiny-shipped", architecture="tiny-v1", labels="custom", file="demo.safetensors")
    save_user_entries([entry])
    assert entry.shipped and cached_file(entry) == package / "demo.safetensors"
    loaded = build_model("tiny-v1", weights="tiny-shipped")
    assert loaded.labels[2] == "c2" and torch.equal(_logits(loaded), _logits(model))
    assert remove_entry(entry) == [] and (package / "demo.safetensors").exists()


# ---- no digest, no trust; every HTTP failure one line -------------------------------------

@pytest.mark.parametrize("digest", ["", None])
def test_weights_without_a_published_digest_are_fetched_only_when_pinned(server, home,
                                                                        digest):
    entry = _publish(server, "tiny-nodigest", _tv_checkpoint(), digest="")
    if digest is None:  # the same, said with no digest field at all
        entry = replace(entry, sha256_prefix=None)
        save_user_entries([entry])
    with pytest.raises(WeightsUnavailableError, match="--pin"):
        build_model("tiny-v1", weights="tiny-nodigest")
    assert server.files["tiny-nodigest.pth"].requests == []  # nothing fetched
    path = ensure_weights(entry, pin=True)
    assert path.exists()
    result = verify_entry(entry)
    real = hashlib.sha256(_tv_checkpoint()).hexdigest()
    assert result.status == "ok" and "pinned by you" in result.detail and real in result.detail
    assert build_model("tiny-v1", weights="tiny-nodigest").num_classes == 10


def test_the_pin_is_shown_by_the_command(server, home):
    from conftest import run_cli

    _publish(server, "tiny-show", _tv_checkpoint(), digest="")
    refused = run_cli("weights", "download", "tiny-show")
    assert refused.exit_code == 1 and "--pin" in refused.stderr
    shown = run_cli("weights", "download", "tiny-show", "--pin")
    assert shown.exit_code == 0, shown.output
    assert hashlib.sha256(_tv_checkpoint()).hexdigest() in shown.stdout
    assert "pinned" in run_cli("weights", "verify", "tiny-show").stdout


def test_a_cached_file_with_no_recorded_digest_is_not_called_verified(tmp_path, home):
    from mvit_cli.checkpoints import save_native

    path = tmp_path / "loose.safetensors"
    save_native(build_model(TINY_V1), path)
    entry = WeightsEntry(name="loose", architecture="tiny-v1", labels="custom", file=str(path))
    save_user_entries([entry])
    assert verify_entry(entry).status == "unverifiable"


def test_a_digest_that_is_not_hex_is_a_registry_error(home):
    from mvit_cli.pretrained.registry import RegistryError, user_entries, user_registry_path

    user_registry_path().write_text('{"weights": [{"name": "x", "architecture": "B-16x4", '
                                    '"labels": "kinetics400", "sha256_prefix": "zz"}]}')
    with pytest.raises(RegistryError, match="not a sha256"):
        user_entries()


@pytest.mark.parametrize("misbehave,words", [
    ("chunk-cut", "transfer broke off"), ("garbage", "not valid HTTP"),
    ("headers", "not valid HTTP"), ("endless", "MB expected; stopped, and the part was deleted"),
    ("drip", "not done after 2 s")])
def test_every_http_failure_is_one_line_within_bounds(server, home, monkeypatch, misbehave,
                                                      words):
    monkeypatch.setenv("MVIT_DOWNLOAD_DEADLINE", "2")
    _publish(server, f"tiny-{misbehave}", _tv_checkpoint()[:5000], size_mb=0.1,
             misbehave=misbehave, delay=0.5)
    started = time.monotonic()
    with pytest.raises(DownloadError) as error:
        ensure_weights(find_entry(f"tiny-{misbehave}"))
    assert time.monotonic() - started < 20
    message = str(error.value)
    assert words in message and "\n" not in message, message
    part = home / "downloads" / f"tiny-{misbehave}.pth.part"
    assert not part.exists() or part.stat().st_size <= 0.1e6 * 1.05 + 1e6


# ---- resuming, digests in full, offline switches -------------------------------------------

@contextlib.contextmanager
def _server_ignoring_ranges(data: bytes):
    """A file server that answers every GET with the whole file (200), as some mirrors and
    proxies do whatever Range a client asks for."""
    gets: list[str | None] = []

    class WholeFile(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:
            gets.append(self.headers.get("Range"))
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), WholeFile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/tiny.pth", gets
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_part_is_started_afresh_when_the_server_ignores_the_range(home):
    """A 200 to a Range request is the whole file: appended to the part it would double the
    first bytes, fail the digest and delete the download every time."""
    data = _tv_checkpoint()
    with _server_ignoring_ranges(data) as (url, gets):
        entry = WeightsEntry(name="tiny-whole", architecture="tiny-v1", labels="custom",
                             url=url, sha256=hashlib.sha256(data).hexdigest())
        save_user_entries([entry])
        part = home / "downloads" / "tiny.pth.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(data[:70_000])
        path = ensure_weights(entry)
    assert gets == ["bytes=70000-"]
    assert path.exists() and not part.exists()
    assert build_model("tiny-v1", weights="tiny-whole").num_classes == 10


def test_a_part_already_whole_is_finished_without_a_body(server, home):
    """Interrupted between the last byte and the rename: the server answers the Range past
    the end with 416, and the part on disk is the file."""
    data = _tv_checkpoint()
    entry = _publish(server, "tiny-whole-part", data)
    part = home / "downloads" / "tiny-whole-part.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data)
    assert ensure_weights(entry).exists() and not part.exists()
    assert _gets(server.files["tiny-whole-part.pth"]) == [{"method": "GET",
                                                           "range": f"bytes={len(data)}-"}]


def test_a_full_sha256_is_checked_to_its_last_digit(server, home):
    """A publisher's full sha256 is held in full (a prefix is only what torchvision gives),
    and verify checks the converted file against its own recorded digest, not the source's."""
    data = _tv_checkpoint()
    real = hashlib.sha256(data).hexdigest()
    server.files["tiny-full.pth"] = Served(data)
    entry = WeightsEntry(name="tiny-full", architecture="tiny-v1", labels="custom",
                         url=f"{server.url}/files/tiny-full.pth",
                         sha256=real[:-1] + ("0" if real[-1] != "0" else "1"))
    save_user_entries([entry])
    with pytest.raises(DownloadError, match="does not match"):
        ensure_weights(entry)
    assert cached_file(entry) is None
    entry = replace(entry, sha256=real)
    save_user_entries([entry])
    ensure_weights(entry)
    assert verify_entry(entry).status == "ok"


def test_offline_switches_set_to_off_leave_downloads_on(server, monkeypatch):
    """HF_HUB_OFFLINE=0 is how many setups say "online"; it must not read as set."""
    monkeypatch.setenv("MVIT_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "false")
    entry = _publish(server, "tiny-online", _tv_checkpoint())
    assert ensure_weights(entry).exists()


def test_the_registrys_sha256_outranks_the_hubs_and_a_mismatch_leaves_no_blob(server, tmp_path):
    """The Hub's own hash only says the file is the one the Hub has now; a digest in the
    registry pins the file itself. A refused file is deleted from the Hub cache, blob and all,
    so it is neither used later nor left taking space."""
    entry, _ = _hub_entry(server, "timm/tiny-pinned")
    pinned = replace(entry, sha256="ab" * 32)
    save_user_entries([pinned])
    with pytest.raises(DownloadError, match="does not match"):
        ensure_weights(pinned)
    assert [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and "blobs" in p.parts] == []
    assert cached_file(pinned) is None


def test_importing_again_under_a_name_replaces_its_entry(tmp_path):
    _, weights, _, _ = reference("tv_v1_tiny")
    import_checkpoint(weights, "mine", "tiny-v1")
    import_checkpoint(weights, "Mine", "tiny-v1")
    assert [entry.name for entry in user_entries()] == ["Mine"]


def test_what_a_registry_entry_says_outranks_its_file(tmp_path):
    """An entry's architecture, protocol and name are the ones a run reports, whatever the
    file it points at records for itself."""
    from conftest import PROTOCOL, save_tiny
    from mvit_cli.resolve import resolve

    path = save_tiny(tmp_path / "tiny.safetensors")
    protocol = {**PROTOCOL, "clips": 3}
    save_user_entries([WeightsEntry(name="tiny-entry", architecture="tiny-v1", labels="custom",
                                    file=str(path), protocol=protocol)])
    resolved = resolve("tiny-entry")
    assert resolved.recorded_protocol == protocol
    assert resolved.architecture_from == "as the registry says"
    assert resolved.provenance.weights == "tiny-entry"
    assert resolve(path).provenance.weights == str(path)


def test_a_resumed_transfer_cut_again_stays_resumable(server, home):
    """The resumed body is only the rest of the file: its length plus the part's is the
    whole, so a second cut is noticed as one (and resumed), not taken for a finished file
    that fails its digest and is thrown away."""
    data = _tv_checkpoint()
    entry = _publish(server, "tiny-cut-twice", data, cut_after=100_000)
    served = server.files["tiny-cut-twice.pth"]
    part = home / "downloads" / "tiny-cut-twice.pth.part"
    with pytest.raises(DownloadError, match="resume"):
        ensure_weights(entry)
    served.cut_after = len(data) - 100_000 - 1_000  # the second body stops 1 kB short
    with pytest.raises(DownloadError, match="resume"):
        ensure_weights(entry)
    assert part.stat().st_size == len(data) - 1_000
    assert ensure_weights(entry).exists() and not part.exists()
    assert [get["range"] for get in _gets(served)] == [
        None, "bytes=100000-", f"bytes={len(data) - 1_000}-"]


def test_a_download_may_be_a_little_larger_than_its_entry_says():
    """Registry sizes are rounded to 0.1 MB: a file 5% over its stated size is still taken,
    one far over it is not."""
    from mvit_cli.pretrained.download import limits_for

    assert 105e6 <= limits_for(100.0).max_bytes < 110e6
    assert limits_for(None).max_bytes == 4 * 10**9


# ---- one conversion, one hash ------------------------------------------------------------

def _count_steps(monkeypatch) -> list[str]:
    """The name of every conversion to our format, layout detection and conversion to
    native names, and sha256 of a file, in the order they happen."""
    from mvit_cli import resolve
    from mvit_cli.checkpoints import layouts
    from mvit_cli.pretrained import download, store

    calls: list[str] = []

    def counted(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for module, name in ((store, "convert_to_native"), (layouts, "detect_layout"),
                         (layouts, "to_native"), (download, "sha256_of"),
                         (store, "sha256_of"), (resolve, "sha256_of")):
        counted(module, name)
    return calls


def test_a_publisher_checkpoint_is_converted_once_then_read_as_ours(server, home, monkeypatch):
    from mvit_cli.resolve import resolve

    _publish(server, "tiny-once", _tv_checkpoint())
    calls = _count_steps(monkeypatch)
    first = resolve("tiny-once")
    # The download is hashed as it streams; its conversion is hashed once, for its .sha256;
    # then the run reads our file: one layout detection and conversion each, for each file.
    assert calls.count("convert_to_native") == 1 and calls.count("sha256_of") == 1
    assert calls.count("detect_layout") == calls.count("to_native") == 2
    cached = home / "weights" / "tiny-once.safetensors"
    assert first.path == cached
    assert first.provenance.sha256 == hashlib.sha256(cached.read_bytes()).hexdigest()
    assert calls.count("sha256_of") == 1  # provenance took the conversion's digest

    calls.clear()
    second = resolve("tiny-once")
    assert calls == ["detect_layout", "to_native"]  # no conversion, no hash, no download
    assert torch.equal(_logits(second.model), _logits(first.model))
    assert second.provenance.sha256 == first.provenance.sha256
    assert second.provenance.sha256 and calls.count("sha256_of") == 1  # when asked, once


def test_a_hub_file_is_converted_once_and_later_runs_need_no_hub(server, home, monkeypatch):
    from mvit_cli.resolve import resolve

    entry, reference_model = _hub_entry(server, "timm/tiny-conv")
    served = server.hub[("timm/tiny-conv", "model.safetensors")]
    calls = _count_steps(monkeypatch)
    first = resolve("tiny-conv")
    assert calls.count("convert_to_native") == 1
    assert first.path == home / "weights" / "tiny-conv.safetensors"
    requests = len(served.requests)

    calls.clear()
    second = resolve("tiny-conv")
    assert calls == ["detect_layout", "to_native"]
    assert len(served.requests) == requests  # the Hub is not asked again
    image = torch.randn(1, 3, 32, 32)
    with torch.inference_mode():
        assert torch.equal(second.model(image), reference_model(image))
    # Outputs name the Hub's file, as they always have: its sha256, recorded in our
    # conversion, not hashed again.
    hub_file = cached_file(entry)
    digest = hashlib.sha256(hub_file.read_bytes()).hexdigest()
    calls.clear()
    assert first.provenance.sha256 == second.provenance.sha256 == digest
    assert "sha256_of" not in calls
    assert ensure_weights(entry) == hub_file  # what `mvit weights download` prints


def test_remove_takes_a_hub_file_and_its_conversion(server, home):
    entry, _ = _hub_entry(server, "timm/tiny-gone")
    build_model("tiny-v2-image", weights="tiny-gone")
    converted = home / "weights" / "tiny-gone.safetensors"
    assert converted.exists() and verify_entry(entry).status == "ok"
    assert len(remove_entry(entry)) == 1  # the Hub's file, as users know it
    assert not converted.exists() and not (home / "weights" / "tiny-gone.safetensors.sha256").exists()
    assert cached_file(entry) is None


def test_a_published_hub_entrys_file_imported_is_the_one_runs_load(tmp_path, home, monkeypatch):
    from mvit_cli.pretrained import registry
    from mvit_cli.resolve import resolve

    torch.manual_seed(3)
    data = save(from_native(build_model(TINY_V2_IMAGE).state_dict(), LAYOUTS_BY_NAME["timm"],
                            TINY_V2_IMAGE))
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    entry = WeightsEntry(name="tiny-hub-pub", architecture="tiny-v2-image", labels="custom",
                         sha256=digest, hub={"repo": "timm/tiny-hub-pub",
                                             "file": "model.safetensors"})
    published = registry.published_entries()
    monkeypatch.setattr(registry, "published_entries", lambda: (entry, *published))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert import_checkpoint(path, "tiny-hub-pub") == entry
    resolved = resolve("tiny-hub-pub")
    assert resolved.path == home / "weights" / "tiny-hub-pub.safetensors"
    assert resolved.provenance.sha256 == digest  # as a download of the published file
    assert cached_file(entry) == resolved.path and ensure_weights(entry) == resolved.path


def test_a_users_checkpoint_file_is_read_in_place(tmp_path, monkeypatch):
    """A file given by path is converted in memory: nothing is written beside it, and
    outputs name it by its own path and sha256."""
    from mvit_cli.resolve import resolve

    folder = tmp_path / "mine"
    folder.mkdir()
    path = folder / "tv.pth"
    path.write_bytes(_tv_checkpoint())
    calls = _count_steps(monkeypatch)
    resolved = resolve(path, model="tiny-v1")
    assert calls == ["detect_layout", "to_native"]
    assert list(folder.iterdir()) == [path]
    assert resolved.provenance.weights == str(path.resolve())
    assert resolved.provenance.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_verify_checks_the_conversion_runs_load_of_a_hub_file(server, home):
    entry, _ = _hub_entry(server, "timm/tiny-check")
    build_model("tiny-v2-image", weights="tiny-check")
    converted = home / "weights" / "tiny-check.safetensors"
    raw = bytearray(converted.read_bytes())
    raw[-5] ^= 0xFF
    converted.write_bytes(bytes(raw))
    result = verify_entry(entry)
    assert result.status == "corrupt" and "expected" in result.detail


# ---- torch.hub's cache and the XDG cache folder ---------------------------------------

def _in_torch_hub(tmp_path, monkeypatch, name: str, data: bytes):
    """`data` where torch.hub keeps `name` (a tmp TORCH_HOME), as torchvision leaves it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    path = tmp_path / "torch" / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_torch_hubs_copy_with_the_full_digest_spares_the_download(server, home, tmp_path,
                                                                    monkeypatch):
    data = _tv_checkpoint()
    _publish(server, "tiny-torchhub", data, digest=hashlib.sha256(data).hexdigest())
    theirs = _in_torch_hub(tmp_path, monkeypatch, "tiny-torchhub.pth", data)
    model = build_model("tiny-v1", weights="tiny-torchhub")
    assert server.files["tiny-torchhub.pth"].requests == []  # not a single request
    _, _, _, expected = reference("tv_v1_tiny")
    assert torch.allclose(_logits(model), expected, atol=1e-5 * expected.abs().max())
    assert (home / "weights" / "tiny-torchhub.safetensors").exists()  # converted, ours
    assert theirs.read_bytes() == data  # torch's file as it was
    assert verify_entry(find_entry("tiny-torchhub")).status == "ok"


@pytest.mark.parametrize("case", ["wrong bytes", "only a prefix"])
def test_torch_hubs_copy_is_not_trusted_without_a_full_matching_digest(server, home, tmp_path,
                                                                       monkeypatch, case):
    """A file with other bytes, or one an entry can only check by torchvision's 8-digit
    prefix, is not taken: the entry is downloaded as if torch's cache were empty."""
    data = _tv_checkpoint()
    full = hashlib.sha256(data).hexdigest()
    _publish(server, "tiny-torchhub", data, digest=full if case == "wrong bytes" else full[:8])
    other = data[:-1] + bytes([data[-1] ^ 1]) if case == "wrong bytes" else data
    theirs = _in_torch_hub(tmp_path, monkeypatch, "tiny-torchhub.pth", other)
    ensure_weights(find_entry("tiny-torchhub"))
    assert len(_gets(server.files["tiny-torchhub.pth"])) == 1
    assert theirs.read_bytes() == other
    assert (home / "weights" / "tiny-torchhub.safetensors").exists()


def test_the_caches_follow_xdg_cache_home(tmp_path, monkeypatch):
    from mvit_cli.paths import mvit_home, torch_hub_checkpoints

    monkeypatch.delenv("MVIT_HOME")
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert mvit_home() == tmp_path / "user" / ".cache" / "mvit"  # as it always was
    assert torch_hub_checkpoints() == tmp_path / "user" / ".cache" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert mvit_home() == tmp_path / "xdg" / "mvit" and mvit_home().is_dir()
    assert torch_hub_checkpoints() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "t"))
    assert torch_hub_checkpoints() == tmp_path / "t" / "hub" / "checkpoints"
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "mine"))
    assert mvit_home() == tmp_path / "mine"
