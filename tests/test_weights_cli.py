"""`mvit weights ...` as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from conftest import reference, register_tiny_architectures, run_cli as run


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
