"""The CLI follows the conventions users bring from other tools: one name for one thing
across commands, the device names the Python API takes, and Typer's shell completion."""

from __future__ import annotations

import json

import pytest

from conftest import register_tiny_architectures, run_cli


def test_a_gpu_is_named_as_the_python_api_names_it():
    """cuda:N is a device name, checked for existence when the model loads (here: no CUDA),
    not refused as an unknown choice; a name that is no device is a usage error."""
    register_tiny_architectures()
    chosen = run_cli("profile", "-m", "tiny-v1", "--device", "cuda:1", "--repeat", "0")
    assert chosen.exit_code == 2 and "Invalid value" not in chosen.stderr
    assert chosen.stderr.strip() == ("error: device cuda:1: no CUDA device is available "
                                     f"(this torch: {__import__('torch').__version__})")
    wrong = run_cli("profile", "-m", "tiny-v1", "--device", "gpu", "--repeat", "0")
    assert wrong.exit_code == 2 and "'gpu': auto, cpu, cuda, cuda:N or mps" in wrong.stderr
    upper = run_cli("profile", "-m", "tiny-v1", "--device", "CPU", "--repeat", "0", "--json")
    assert upper.exit_code == 0, upper.output


def test_every_batch_is_a_batch_size():
    register_tiny_architectures()
    by_new_name = run_cli("profile", "-m", "tiny-v1", "--batch-size", "2", "--repeat", "0",
                          "--json")
    by_old_name = run_cli("profile", "-m", "tiny-v1", "--batch", "2", "--repeat", "0", "--json")
    assert by_new_name.exit_code == by_old_name.exit_code == 0, by_new_name.output
    assert json.loads(by_new_name.stdout)["input"]["batch"] == 2
    assert json.loads(by_new_name.stdout)["gflops"] == json.loads(by_old_name.stdout)["gflops"]
    for command in ("classify", "timeline", "profile"):
        assert "--batch-size" in run_cli(command, "--help").stdout


def test_shell_completion_is_offered():
    assert "--install-completion" in run_cli("--help").stdout


@pytest.mark.slow
def test_verbose_is_v_and_shows_the_decoders_own_messages(tmp_path):
    """-v, as in other tools, on both commands that decode; classify's decoders (in worker
    processes) then let FFmpeg's and decord's complaints through."""
    import subprocess
    import sys

    for command in ("classify", "timeline"):
        assert "-v, --verbose" in run_cli(command, "--help").stdout
    broken = tmp_path / "text.mp4"
    broken.write_text("not a video")

    def stderr_of(*flags: str) -> str:
        done = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "classify", str(broken),
                               "-w", "motion-demo", "--workers", "1", "-o",
                               str(tmp_path / f"out{len(flags)}.csv"), *flags],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 1, done.stderr
        return done.stderr

    assert "ERROR opening" not in stderr_of()
    assert "ERROR opening" in stderr_of("-v")


def test_the_timeline_passes_verbose_to_its_decoders(tmp_path, monkeypatch):
    import mvit_cli.api
    from conftest import save_tiny
    from media import write_video

    register_tiny_architectures()
    weights = save_tiny(tmp_path / "tiny.safetensors")
    asked = []
    timeline = mvit_cli.api.Pipeline.timeline

    def spied(self, *args, **kwargs):
        asked.append(kwargs.get("decoder_messages"))
        return timeline(self, *args, **kwargs)

    monkeypatch.setattr(mvit_cli.api.Pipeline, "timeline", spied)
    video = write_video(tmp_path / "v.mp4", frames=12)
    for flags, expected in (((), False), (("-v",), True)):
        result = run_cli("timeline", video, "-w", weights, "--workers", "0",
                         "-o", tmp_path / f"t{len(flags)}.csv", *flags)
        assert result.exit_code == 0, result.output
        assert asked[-1] is expected
