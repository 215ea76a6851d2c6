"""One run writes an output at a time (`outputs.writer.lock_output`).

Two runs appending to one file would duplicate rows, and one started with --overwrite would
delete what the other is writing. A run that finds the output held refuses in one line and
touches nothing; once the holder ends, the output is free again, including after a run
that failed. The holder here is a small process that takes the lock as a run does (an
interpreter with mvit's output module, not a model), so each case takes a second or less;
the full two-run case with real decoding is in test_hostile.py (slow).
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from mvit_cli.outputs.registry import open_output, open_timeline_output
from mvit_cli.outputs.timeline_settings import Settings
from mvit_cli.outputs.stamp import OutputError
from mvit_cli.outputs.writer import lock_output

from conftest import run_cli, save_tiny
from media import write_video

HELD = "another mvit run is writing it now"
# Takes the output's lock as a run does, says so, and keeps it until its stdin closes.
HOLDER = ("import sys; from mvit_cli.outputs.writer import lock_output; "
          "lock = lock_output(sys.argv[1]); print('held', flush=True); sys.stdin.read()")


@contextmanager
def held_by_another_process(path: Path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline() == "held\n"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def _one_error(result) -> str:
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("in") / "clip.mp4", frames=8)


def test_classify_on_a_held_output_is_refused_before_the_model_loads(tmp_path, weights,
                                                                     video):
    """Even with --overwrite, which would otherwise delete the file: it stays as it was."""
    out = tmp_path / "labels.csv"
    out.write_text("the other run's rows\n")
    with held_by_another_process(out), pytest.MonkeyPatch.context() as patch:
        patch.setattr("mvit_cli.api.load", lambda *a, **k: pytest.fail("loaded the model"))
        refused = run_cli("classify", video, "--weights", weights, "-o", out,
                          "--workers", "0", "--overwrite")
    error = _one_error(refused)
    assert str(out) in error and HELD in error
    assert out.read_text() == "the other run's rows\n"

    again = run_cli("classify", video, "--weights", weights, "-o", out, "--workers", "0",
                    "--overwrite")
    assert again.exit_code == 0, again.output  # the holder ended: the output is free
    assert len(out.read_text().splitlines()) == 2  # the header and the video's row


def test_timeline_on_a_held_output_is_refused_and_leaves_it(tmp_path, weights, video):
    """Timeline takes the lock before the model loads, as classify does."""
    out = tmp_path / "windows.jsonl"
    out.write_text("the other run's windows\n")
    with held_by_another_process(out):
        refused = run_cli("timeline", video, "--weights", weights, "-o", out, "--overwrite",
                          "--workers", "0")
    assert HELD in _one_error(refused)
    assert out.read_text() == "the other run's windows\n"
    again = run_cli("timeline", video, "--weights", weights, "-o", out, "--overwrite",
                    "--workers", "0")
    assert again.exit_code == 0, again.output
    assert "the other run's" not in out.read_text() and out.read_text().count("\n") >= 1


def test_a_run_that_fails_frees_the_output(tmp_path, video):
    """A failure after the lock was taken (here: weights that do not load) releases it."""
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    out = tmp_path / "labels.jsonl"
    failed = run_cli("classify", video, "--weights", broken, "-o", out, "--workers", "0")
    assert failed.exit_code != 0 and "not a readable checkpoint" in failed.stderr
    lock_output(out).release()  # would refuse if the failed run still held it


STAMP = {"model": "tiny-v1", "weights": "tiny.safetensors", "weights_sha256": "0" * 64,
         "protocol": "1 clip", "mvit_version": "0"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet"])
def test_a_writer_holds_its_output_until_closed(tmp_path, suffix):
    out = tmp_path / f"labels{suffix}"
    first = open_output(out, 1, STAMP)
    with pytest.raises(OutputError, match=HELD):
        open_output(out, 1, STAMP)
    first.close()
    open_output(out, 1, STAMP).close()


def test_a_writer_that_refuses_a_file_frees_it(tmp_path):
    """Freed when refusing, not when the refusal is collected: a caller that keeps the error
    (its traceback holds the half-made writer) must not keep the output locked."""
    out = tmp_path / "labels.csv"
    out.write_text("not,ours\n")
    with pytest.raises(OutputError, match="not an output of this mvit") as refusal:
        open_output(out, 1, STAMP)
    lock_output(out).release()
    assert refusal.tb is not None  # still held here, with everything it references
    assert out.read_text() == "not,ours\n"


@pytest.mark.parametrize("suffix", [".csv", ".json", ".vtt"])
def test_a_timeline_writer_holds_its_output_until_closed(tmp_path, suffix):
    out = str(tmp_path / f"timeline{suffix}")
    settings = Settings(["a", "b"], top_k=1, smooth=1, threshold=0.5)
    first = open_timeline_output(out, settings, STAMP, overwrite=False)
    with pytest.raises(OutputError, match=HELD):
        open_timeline_output(out, settings, STAMP, overwrite=True)
    first.close()
    open_timeline_output(out, settings, STAMP, overwrite=False).close()


def test_standard_output_takes_no_lock():
    """`-o -` is a pipe, not a file: any number of runs may write to theirs."""
    first = open_output("-", 1, STAMP)
    second = open_output("-", 1, STAMP)
    assert lock_output("-") is None
    first.close()
    second.close()


def test_no_lock_file_is_left_once_a_run_is_done_or_refused(tmp_path, weights, video):
    out = tmp_path / "labels.csv"
    result = run_cli("classify", video, "--weights", weights, "-o", out, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]
    other = tmp_path / "other.csv"
    other.write_text("not ours\n")  # refused: not an output of mvit
    refused = run_cli("classify", video, "--weights", weights, "-o", other, "--workers", "0")
    assert refused.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv", "other.csv"]


def test_a_lock_file_left_by_a_killed_run_is_taken_and_removed(tmp_path):
    out = tmp_path / "labels.csv"
    left = tmp_path / ".labels.csv.lock"
    left.write_text("")  # a holder killed before it could remove it
    lock = lock_output(out)
    with pytest.raises(OutputError, match=HELD):
        lock_output(out)
    lock.release()
    assert not left.exists()
    lock_output(out).release()  # free again, and again nothing left
    assert list(tmp_path.iterdir()) == []
