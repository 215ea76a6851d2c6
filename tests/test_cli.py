"""The `mvit` command as users run it: a real subprocess, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mvit_cli.models.architectures import BUILTIN

from conftest import reference, register_tiny_architectures, run_cli
from media import write_video


def mvit(*args: str, home) -> subprocess.CompletedProcess:
    # The console script installed beside this interpreter, not whichever `mvit` PATH finds
    # first (a pyenv shim would run another Python's install).
    exe = Path(sys.executable).with_name("mvit")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mvit_cli.cli"]
    env = dict(os.environ, MVIT_HOME=str(home), COLUMNS="160")
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_models_lists_every_architecture_with_counts(tmp_path):
    result = mvit("models", home=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in BUILTIN:
        assert name in result.stdout
    assert "36.6M" in result.stdout and "70.6" in result.stdout  # B-16x4
    assert "b16x4-k400*" in result.stdout  # the default weights, marked


def test_models_lists_every_architecture_with_its_counts_and_default_weights(monkeypatch):
    """In this process, from the counts shipped with the package: the fast twin of the
    subprocess test above."""
    monkeypatch.setenv("COLUMNS", "200")
    result = run_cli("models")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.split()}
    for name in BUILTIN:
        assert name in rows
    assert rows["B-16x4"][1:4] == ["16x224", "36.6M", "70.6"]
    assert "b16x4-k400*" in rows["B-16x4"]  # the default weights, marked


def test_classify_quietly_says_only_failures_and_the_summary(tmp_path, tiny_weights):
    """--quiet is for scripts and logs: nothing on stdout, on stderr only what failed and the
    summary."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        write_video(folder / f"clip{i}.mp4", frames=8)
    (folder / "broken.mp4").write_text("not a video")
    result = run_cli("classify", folder, "--weights", tiny_weights, "--workers", "0", "-q")
    assert result.exit_code == 1 and result.stdout == "", result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "broken.mp4: error" in lines[0], lines
    assert lines[1].startswith("2 of 3 files classified, 1 failed")


def test_classify_quietly_of_a_single_file_prints_its_top_label(tmp_path, tiny_weights):
    """A single file without -o: its top label is the whole result, so --quiet keeps that
    one line on stdout (path, label, score, tab-separated) and nothing else."""
    video = write_video(tmp_path / "clip.mp4", frames=8)
    result = run_cli("classify", video, "--weights", tiny_weights, "--workers", "0", "-q")
    assert result.exit_code == 0 and result.stderr == "", result.output
    [line] = result.stdout.splitlines()
    path, label, score = line.split("\t")
    assert path.endswith("clip.mp4") and label.startswith("action ") and 0 < float(score) <= 1


def test_classify_makes_the_features_folder_and_refuses_one_under_a_file(tmp_path,
                                                                         tiny_weights):
    """--features, like -o, has its folder made before the work; one that would have to be
    a regular file is one line before the model loads (the weights named do not exist)."""
    video = write_video(tmp_path / "clip.mp4", frames=8)
    made = run_cli("classify", video, "--weights", tiny_weights, "--workers", "0", "-q",
                   "--features", tmp_path / "new" / "dir" / "f.npy")
    assert made.exit_code == 0 and (tmp_path / "new" / "dir" / "f.npy").is_file(), made.output
    (tmp_path / "file").write_text("not a folder")
    for option, name in (("--features", "f.npy"), ("-o", "rows.csv")):
        refused = run_cli("classify", video, "--weights", tmp_path / "absent.safetensors",
                          option, tmp_path / "file" / name)
        assert refused.exit_code == 2, refused.output
        [line] = refused.stderr.splitlines()
        assert option in line and "is a file" in line


def test_classify_takes_the_crops_clips_and_batch_size_asked_for(tmp_path, tiny_weights,
                                                                 monkeypatch):
    """Two files of 2 clips x 3 crops: 6 views each, 4 to a model call."""
    import json

    from mvit_cli.engines.local.runner import BatchRunner

    batches = []
    run_batch = BatchRunner._run_batch

    def counted(self, queue, pending):
        batches.append(min(len(queue), self.batch_size))
        yield from run_batch(self, queue, pending)

    monkeypatch.setattr(BatchRunner, "_run_batch", counted)
    clips = [write_video(tmp_path / f"clip{i}.mp4", frames=16) for i in range(2)]
    out = tmp_path / "rows.jsonl"
    result = run_cli("classify", *clips, "--weights", tiny_weights, "--workers", "0", "-o", out,
                     "--clips", "2", "--crops", "3", "-b", "4")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["views"] for line in out.read_text().splitlines()] == [6, 6]
    assert batches == [4, 4, 4]


def test_closing_outputs_closes_every_one_and_reports_the_first_failure():
    """A full disk on one output's last flush must not leave the others unclosed (a features
    file is written whole only when closed), nor hide which failed first."""
    import errno

    from mvit_cli.commands.common import close_all

    closed = []

    class Output:
        def __init__(self, name, error=None):
            self.name, self.error = name, error

        def close(self):
            closed.append(self.name)
            if self.error:
                raise OSError(self.error, self.name)

    failure = close_all(Output("rows", errno.ENOSPC), None, Output("features", errno.EIO),
                        Output("plot"))
    assert closed == ["rows", "features", "plot"]
    assert failure.errno == errno.ENOSPC and failure.strerror == "rows"
    assert close_all(Output("rows"), None) is None


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


def _imports_torch(*args: str, home) -> tuple[bool, str]:
    """Run `mvit ARGS` in a fresh interpreter; whether torch got imported, and the output."""
    code = ("import sys\nfrom mvit_cli.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint('TORCH', 'torch' in sys.modules)")
    env = dict(os.environ, MVIT_HOME=str(home), COLUMNS="120")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=300)
    return done.stdout.rstrip().endswith("TORCH True"), done.stdout + done.stderr


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["classify", "--help"],
                                  ["profile", "--help"], ["train", "--help"],
                                  ["weights", "import", "--help"]])
def test_help_and_version_import_no_torch(tmp_path, args):
    imported, output = _imports_torch(*args, home=tmp_path)
    assert not imported, output
    assert "<bool>" not in output and "Traceback" not in output


@pytest.mark.parametrize("command", ["classify", "timeline"])
def test_a_path_that_is_not_there_is_said_before_torch_or_decoders_start(tmp_path, command):
    """A wrong path costs neither torch's import nor the decoders' server (which classify and
    timeline otherwise start first thing)."""
    code = ("import sys\nfrom multiprocessing import forkserver\nfrom mvit_cli.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules, 'SERVER', forkserver._forkserver._forkserver_pid)")
    done = subprocess.run([sys.executable, "-c", code, command, str(tmp_path / "missing.mp4")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, MVIT_HOME=str(tmp_path)))
    assert done.stdout.split()[-4:] == ["TORCH", "False", "SERVER", "None"], done.stdout
    assert "no such file" in done.stderr and "Traceback" not in done.stderr


def test_help_describes_every_option():
    import click
    import typer.main

    from mvit_cli.cli import app

    def commands(group):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command)
            else:
                yield name, command

    for name, command in commands(typer.main.get_command(app)):
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                assert param.help, f"mvit {name} {param.opts[0]} has no help"


@pytest.mark.slow
def test_models_answers_from_its_cache_without_torch(tmp_path):
    first = mvit("models", home=tmp_path)
    assert first.returncode == 0
    imported, output = _imports_torch("models", home=tmp_path)
    assert not imported and "B-16x4" in output


def test_a_bad_device_is_a_usage_error_not_a_traceback(tmp_path):
    for args in (["profile", "-m", "B-16x4", "--device", "foo"],
                 ["classify", "x.mp4", "--device", "tpu"]):
        result = mvit(*args, home=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "Invalid value for '--device'" in result.stderr


def test_train_from_weights_that_cannot_be_fetched_is_one_line(tmp_path):
    env = dict(os.environ, MVIT_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "train", str(tmp_path),
                             "-m", "v2-XS-8", "-o", str(tmp_path / "x.safetensors"),
                             "--weights", "b16x4-k400"], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "are not cached and cannot be downloaded" in lines[0]
