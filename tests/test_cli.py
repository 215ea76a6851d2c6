"""The `mvit` command as users run it: a real subprocess, real files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

from mvit_cli.models.architectures import BUILTIN

from conftest import reference, register_tiny_architectures, run_cli


def mvit(*args: str, home) -> subprocess.CompletedProcess:
    exe = shutil.which("mvit")
    command = [exe] if exe else [sys.executable, "-m", "mvit_cli.cli"]
    env = dict(os.environ, MVIT_HOME=str(home), COLUMNS="160")
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


def test_models_lists_every_architecture_with_counts(tmp_path):
    result = mvit("models", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in BUILTIN:
        assert name in result.stdout
    assert "36.6M" in result.stdout and "70.6" in result.stdout  # B-16x4
    assert "b16x4-k400*" in result.stdout  # the default weights, marked
    assert (tmp_path / "counts.json").exists()


def test_inspect_a_good_checkpoint():
    register_tiny_architectures()
    _, weights, _, _ = reference("tv_v1_tiny")
    result = run_cli("inspect", weights)
    assert result.exit_code == 0, result.stderr
    assert "torchvision" in result.stdout
    assert "architecture: tiny-v1 (by its tensors' shapes)" in result.stdout
    assert "classes: 10; labels: none known" in result.stdout


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated", "other-arch",
                                  "unknown-arch"])
def test_bad_input_is_one_line_and_an_error_status(tmp_path, kind):
    _, weights, _, _ = reference("tv_v1_tiny")
    path = tmp_path / "model.pth"
    model = "B-16x4"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "other-arch":
        path = weights
    elif kind == "unknown-arch":
        path, model = weights, "B-99x9"
    result = mvit("inspect", str(path), "--model", model, home=tmp_path)
    assert result.returncode == (2 if kind == "unknown-arch" else 1)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr


def test_version(tmp_path):
    result = mvit("--version", home=tmp_path)
    assert result.returncode == 0 and "mvit" in result.stdout
