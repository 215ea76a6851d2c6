"""`mvit weights ...` as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from conftest import reference, register_tiny_architectures, run_cli as run
from media import write_video


def test_import_list_verify_remove(tmp_path, monkeypatch):
    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, weights, _, _ = reference("tv_v1_tiny")
    checkpoint = tmp_path / "mine.pth"
    torch.save(load_file(str(weights)), checkpoint)

    result = run("weights", "import", str(checkpoint), "--model", "tiny-v1", "--name", "mine")
    assert result.exit_code == 0, result.output
    listing = run("weights", "list")
    row = next(line for line in listing.output.splitlines() if line.strip().startswith("mine"))
    assert "tiny-v1" in row and row.rstrip().endswith("yes")
    assert "b16x4-k400*" in listing.output  # published entries are listed too
    published = next(line for line in listing.output.splitlines()
                     if line.strip().startswith("b16x4-k400*"))
    assert published.rstrip().endswith("no")  # not downloaded here
    assert run("weights", "verify", "mine").exit_code == 0
    assert "removed" in run("weights", "remove", "mine").output
    assert "mine " not in run("weights", "list").output


def test_import_of_a_file_for_another_architecture_is_one_line(tmp_path, monkeypatch):
    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    _, weights, _, _ = reference("tv_v2_tiny")
    result = run("weights", "import", str(weights), "--model", "tiny-v1", "--name", "x")
    assert result.exit_code == 1
    assert "does not fit tiny-v1" in result.output


def test_offline_download_with_an_empty_cache_fails_fast(tmp_path):
    env = dict(os.environ, MVIT_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "weights", "download",
                             "b16x4-k400"], capture_output=True, text=True, env=env, timeout=60)
    assert time.monotonic() - started < 20  # interpreter start-up included
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth" in lines[0]
    assert "mvit weights import FILE --model B-16x4 --name b16x4-k400" in lines[0]


# ---- importing under a published name ------------------------------------------------------

def _published(monkeypatch, tmp_path, digest: str | None):
    """Make a published default entry for tiny-v1 (as the registry ships b16x4-k400), whose
    file has `digest`; return the torchvision-layout file that is, or is not, that file."""
    import hashlib

    from mvit_cli.pretrained import registry

    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _, weights, _, _ = reference("tv_v1_tiny")
    checkpoint = tmp_path / "tiny-tv.pth"
    torch.save(load_file(str(weights)), checkpoint)
    real = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    entry = registry.WeightsEntry(
        name="tiny-k", architecture="tiny-v1", labels="custom", default=True, top1=77.7,
        url="https://example.invalid/tiny-k.pth", sha256_prefix=real[:8] if digest is None else digest,
        protocol={"frames": 4, "rate": 2, "clips": 3, "short_side": 40, "crop": 32})
    others = tuple(e for e in registry.published_entries() if not e.default)
    monkeypatch.setattr(registry, "published_entries", lambda: (entry, *others))
    return checkpoint, real


def test_a_published_file_imported_is_as_if_downloaded(tmp_path, monkeypatch):
    from mvit_cli.pretrained.registry import default_entry, find_entry, user_entries

    checkpoint, _ = _published(monkeypatch, tmp_path, digest=None)
    result = run("weights", "import", str(checkpoint), "--name", "tiny-k")
    assert result.exit_code == 0, result.output
    assert "verified: the published file" in result.stdout
    assert user_entries() == []  # the published entry itself, now cached
    entry = find_entry("tiny-k")
    assert entry.default and entry.top1 == 77.7 and default_entry() == entry
    assert (tmp_path / "home" / "weights" / "tiny-k.safetensors").exists()
    assert run("weights", "verify", "tiny-k").exit_code == 0
    video = write_video(tmp_path / "clip.mp4", frames=30)
    out = tmp_path / "labels.csv"
    assert run("classify", str(video), "-o", str(out), "--clips", "protocol",
               "--workers", "0").exit_code == 0
    assert "3 clips" in out.read_text() and ",3," in out.read_text()  # the entry's protocol


def test_a_file_that_is_not_the_published_one_is_refused_then_forced(tmp_path, monkeypatch):
    from mvit_cli.pretrained.registry import default_entry, find_entry

    checkpoint, real = _published(monkeypatch, tmp_path, digest="dbeb1030")
    result = run("weights", "import", str(checkpoint), "--name", "tiny-k", "--model", "tiny-v1")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and real in lines[0] and "dbeb1030" in lines[0]
    assert "--force" in lines[0]
    assert not (tmp_path / "home" / "weights" / "tiny-k.safetensors").exists()

    forced = run("weights", "import", str(checkpoint), "--name", "tiny-k", "--force")
    assert forced.exit_code == 0, forced.output
    entry = find_entry("tiny-k")
    assert entry.file and entry.top1 is None and entry.top5 is None
    assert "not the published file" in entry.reported_by
    assert entry.default and default_entry().name == "tiny-k"  # classify's default still works
    assert entry.protocol["clips"] == 3
    video = write_video(tmp_path / "clip.mp4", frames=30)
    classified = run("classify", str(video), "--workers", "0")
    assert classified.exit_code == 0, classified.output
    listing = run("weights", "list")
    row = next(line for line in listing.stdout.splitlines() if "tiny-k" in line)
    assert "77.7" not in row


def test_a_published_entry_without_a_digest_cannot_be_claimed(tmp_path, monkeypatch):
    checkpoint, _ = _published(monkeypatch, tmp_path, digest="")
    result = run("weights", "import", str(checkpoint), "--name", "tiny-k")
    assert result.exit_code == 2 and "no published digest" in result.stderr


def test_no_state_of_the_user_registry_is_a_traceback(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MVIT_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    video = write_video(tmp_path / "clip.mp4", frames=10)
    for content in ("{", "[]", '{"weights": 3}', '{"weights": [1]}',
                    '{"weights": [{"name": "x"}]}',
                    '{"weights": [{"name": 5, "architecture": [], "labels": null}]}',
                    '{"weights": [{"name": "b16x4-k400", "architecture": "B-99", '
                    '"labels": "kinetics400"}]}', "\xff\xfe"):
        (home / "registry.json").write_text(content, encoding="utf-8", errors="surrogateescape")
        for args in (["weights", "list"], ["classify", str(video), "--workers", "0"],
                     ["weights", "import", str(video), "--name", "b16x4-k400"]):
            result = run(*args)  # an exception other than SystemExit would fail the test here
            if result.exit_code or args[0] != "weights":
                assert result.exit_code in (1, 2), (content, args, result.output)
                assert result.stderr.startswith("error:"), (content, args, result.output)
                assert len(result.stderr.strip().splitlines()) == 1


def test_a_published_file_imported_with_other_labels_is_refused(tmp_path, monkeypatch):
    """Published weights keep the labels they were published with: names given on import
    would be dropped without a word, or relabel a file that claims to be the published one."""
    checkpoint, _ = _published(monkeypatch, tmp_path, digest=None)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"mine {i}\n" for i in range(10)))
    result = run("weights", "import", str(checkpoint), "--name", "tiny-k", "--labels", str(labels))
    assert result.exit_code == 2 and "keep their own labels" in result.stderr
    assert not (tmp_path / "home" / "weights" / "tiny-k.safetensors").exists()


def test_a_published_name_in_other_case_imports_the_published_entry(tmp_path, monkeypatch):
    from mvit_cli.pretrained.registry import find_entry
    from mvit_cli.pretrained.store import cached_file

    checkpoint, _ = _published(monkeypatch, tmp_path, digest=None)
    result = run("weights", "import", str(checkpoint), "--name", "TINY-K")
    assert result.exit_code == 0, result.output
    assert cached_file(find_entry("tiny-k")) == tmp_path / "home" / "weights" / "tiny-k.safetensors"


def test_a_file_forced_under_a_hub_entrys_name_is_used_from_disk(tmp_path, monkeypatch):
    """A Hub entry imported with --force becomes the user's own file: later runs read it
    offline and never ask the Hub for the published one."""
    from safetensors.torch import save_file

    from conftest import TINY_V2_IMAGE
    from mvit_cli import build_model
    from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native
    from mvit_cli.pretrained import registry
    from mvit_cli.pretrained.store import ensure_weights

    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint = tmp_path / "model.safetensors"
    model = build_model(TINY_V2_IMAGE)
    save_file(from_native(model.state_dict(), LAYOUTS_BY_NAME["timm"], TINY_V2_IMAGE),
              str(checkpoint))
    entry = registry.WeightsEntry(name="tiny-hubbed", architecture="tiny-v2-image",
                                  labels="custom", hub={"repo": "timm/tiny-hubbed",
                                                        "file": "model.safetensors"})
    published = registry.published_entries()
    monkeypatch.setattr(registry, "published_entries", lambda: (entry, *published))
    assert run("weights", "import", str(checkpoint), "--name", "tiny-hubbed").exit_code == 2
    forced = run("weights", "import", str(checkpoint), "--name", "tiny-hubbed", "--force")
    assert forced.exit_code == 0, forced.output
    path = ensure_weights(registry.find_entry("tiny-hubbed"))
    assert path == tmp_path / "home" / "weights" / "tiny-hubbed.safetensors"


# ---- verify's verdicts --------------------------------------------------------------------

def _home(tmp_path, monkeypatch):
    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_verify_fails_for_a_file_with_no_recorded_digest(tmp_path, monkeypatch):
    from conftest import TINY_V1, save_tiny
    from mvit_cli.pretrained.registry import WeightsEntry, save_user_entries

    _home(tmp_path, monkeypatch)
    path = save_tiny(tmp_path / "loose.safetensors", cfg=TINY_V1)
    save_user_entries([WeightsEntry(name="loose", architecture="tiny-v1", labels="custom",
                                    file=str(path))])
    result = run("weights", "verify", "loose")
    assert result.exit_code == 1 and "unverifiable" in result.stdout


def test_verify_of_a_named_entry_not_cached_fails_and_says_so(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch)
    result = run("weights", "verify", "b16x4-k400")
    assert result.exit_code == 1 and "b16x4-k400: not cached" in result.stdout


def test_verify_of_everything_checks_what_is_cached_and_skips_the_rest(tmp_path, monkeypatch):
    _home(tmp_path, monkeypatch)
    result = run("weights", "verify")
    assert result.exit_code == 0, result.output
    assert "motion-demo: ok" in result.stdout and "not cached" not in result.stdout


def test_verify_loads_the_file_into_its_entrys_architecture(tmp_path, monkeypatch):
    """A digest only says the bytes are the ones recorded; a registry entry edited to name
    another architecture makes them unusable, and verify says so."""
    import json

    from mvit_cli.pretrained.registry import user_registry_path

    _home(tmp_path, monkeypatch)
    _, weights, _, _ = reference("tv_v1_tiny")
    assert run("weights", "import", str(weights), "--model", "tiny-v1", "--name",
               "mine").exit_code == 0
    assert run("weights", "verify", "mine").exit_code == 0
    registry = json.loads(user_registry_path().read_text())
    registry["weights"][0]["architecture"] = "tiny-v2"
    user_registry_path().write_text(json.dumps(registry))
    result = run("weights", "verify", "mine")
    assert result.exit_code == 1
    assert "corrupt" in result.stdout and "not tiny-v2" in result.stdout
