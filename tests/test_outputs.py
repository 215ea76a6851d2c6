"""Outputs say what made them, and a resumed output is only ever one made the same way.

Real videos, real weights files and the real `mvit` entry point (in this process, with
decoding inline, so each run takes a second rather than an interpreter start-up).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest

import mvit_cli
from mvit_cli.outputs.stamp import STAMP_COLUMNS
from mvit_cli.outputs.resume import complete_csv

from conftest import register_tiny_architectures, run_cli, save_tiny
from media import write_video


@pytest.fixture(autouse=True)
def _tiny():
    register_tiny_architectures()


@pytest.fixture
def videos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"clip{i}.mp4", frames=10)
    return folder


def classify(*args):
    return run_cli("classify", *args, "--workers", "0")


def read(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(path.read_text())


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_every_row_says_what_made_it(tmp_path, videos, tiny_weights, suffix):
    out = tmp_path / f"labels{suffix}"
    result = classify(videos, "--weights", tiny_weights, "-o", out, "-k", "2", "--clips", "2")
    assert result.exit_code == 0, result.output
    rows = read(out)
    assert len(rows) == 3
    digest = hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    for row in rows:
        assert row["model"] == "tiny-v1" and row["weights"] == str(tiny_weights)
        assert row["weights_sha256"] == digest and row["mvit_version"] == mvit_cli.__version__
        assert row["protocol"] == "2 clips x 1 crop, 4 frames at 15 fps, short side 40, crop 32"
        assert os.path.isabs(row["path"]) and "label_2" in row and "label_3" not in row
        assert str(row["views"]) == "2"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_resuming_with_other_settings_is_refused_and_leaves_the_file(tmp_path, videos,
                                                                      tiny_weights, suffix):
    out = tmp_path / f"labels{suffix}"
    assert classify(videos / "clip0.mp4", "--weights", tiny_weights, "-o", out).exit_code == 0
    before = out.read_bytes()
    other = save_tiny(tmp_path / "other.safetensors", seed=7)
    for args, words in (
            (["--weights", other], "weights_sha256"),
            (["--weights", tiny_weights, "-k", "3"], "top-k"),
            (["--weights", tiny_weights, "--clips", "2"], "protocol '1 clip x 1 crop"),
            (["--weights", tiny_weights, "--crops", "3"], "3 crops")):
        result = classify(videos, *args, "-o", out)
        assert result.exit_code == 2, (args, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], lines
        assert "--overwrite" in lines[0]
        assert out.read_bytes() == before
    again = classify(videos, "--weights", other, "-o", out, "--overwrite")
    assert again.exit_code == 0
    assert {row["weights"] for row in read(out)} == {str(other)} and len(read(out)) == 3


def test_another_mvit_version_is_refused(tmp_path, videos, tiny_weights):
    out = tmp_path / "labels.jsonl"
    assert classify(videos / "clip0.mp4", "--weights", tiny_weights, "-o", out).exit_code == 0
    [row] = read(out)
    out.write_text(json.dumps({**row, "mvit_version": "0.0.1"}) + "\n")  # an older mvit's
    before = out.read_bytes()
    result = classify(videos, "--weights", tiny_weights, "-o", out)
    assert result.exit_code == 2 and "mvit_version '0.0.1'" in result.stderr
    assert out.read_bytes() == before


def test_one_file_is_one_row_however_its_path_is_typed(tmp_path, videos, tiny_weights,
                                                      monkeypatch):
    out = tmp_path / "labels.csv"
    monkeypatch.chdir(tmp_path)
    assert classify("in", "./in/clip0.mp4", "--weights", tiny_weights, "-o", out).exit_code == 0
    assert len(read(out)) == 3
    (tmp_path / "link.mp4").symlink_to(videos / "clip1.mp4")
    again = classify(str(videos.resolve()), "in/../in", "link.mp4", "--weights", tiny_weights,
                     "-o", out)
    assert again.exit_code == 0 and "3 already in the output" in again.stderr
    assert len(read(out)) == 3


def test_the_output_is_not_created_before_the_model_loads(tmp_path, videos):
    out = tmp_path / "labels.csv"
    result = classify(videos, "--weights", tmp_path / "absent.safetensors", "-o", out)
    assert result.exit_code == 1 and "no such checkpoint file" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("content", ["name,age\nann,3\n", '{"not": "ours"}\n',
                                     "path,label_1\n/x.mp4,dog\n", "hello"])
def test_files_that_are_not_our_outputs_are_never_touched(tmp_path, videos, tiny_weights,
                                                          content):
    for suffix in (".csv", ".jsonl", ".json"):
        out = tmp_path / f"notes{suffix}"
        out.write_text(content)
        result = classify(videos, "--weights", tiny_weights, "-o", out)
        assert result.exit_code == 2, (suffix, result.output)
        assert "--overwrite" in result.stderr and "Traceback" not in result.output
        assert out.read_text() == content


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_file_that_is_not_ours_is_refused_before_the_model_loads(tmp_path, videos, suffix):
    # The weights do not exist, so only a check made before loading can say the output's
    # problem: a download or an OpenVINO compile would otherwise come first.
    out = tmp_path / f"notes{suffix}"
    out.write_text("hello\n")
    result = classify(videos, "--weights", tmp_path / "absent.safetensors", "-o", out)
    assert result.exit_code == 2, result.output
    assert str(out) in result.stderr and "--overwrite" in result.stderr
    assert "checkpoint" not in result.stderr
    assert out.read_text() == "hello\n"


def test_a_row_with_other_columns_is_refused_before_the_model_loads(tmp_path, videos):
    """Under mvit's own header, a row of another width is not one mvit wrote: resuming
    would append to the file and classify again whatever that row named."""
    from mvit_cli.outputs.rows import file_columns as columns

    out = tmp_path / "labels.csv"
    content = ",".join(columns(5)) + "\n" + "/videos/a.mp4,dog,0.9\n"
    out.write_text(content)
    result = classify(videos, "--weights", tmp_path / "absent.safetensors", "-o", out)
    assert result.exit_code == 2, result.output
    assert "some rows do not have mvit's columns" in result.stderr
    assert "checkpoint" not in result.stderr and out.read_text() == content


def test_another_top_k_is_refused_before_the_model_loads(tmp_path, videos, tiny_weights):
    out = tmp_path / "labels.jsonl"
    assert classify(videos / "clip0.mp4", "--weights", tiny_weights, "-o", out).exit_code == 0
    result = classify(videos, "--weights", tmp_path / "absent.safetensors", "-o", out, "-k", "3")
    assert result.exit_code == 2 and "top-k 5 (this run: 3)" in result.stderr, result.output


def test_a_row_cut_inside_a_quoted_field_is_cut_whole(tmp_path, tiny_weights):
    folder = tmp_path / "odd"
    folder.mkdir()
    write_video(folder / "a.mp4", frames=8)
    write_video(folder / "line\nbreak.mp4", frames=8)
    out = tmp_path / "labels.csv"
    assert classify(folder, "--weights", tiny_weights, "-o", out).exit_code == 0
    whole = out.read_text()
    assert '"' in whole  # the newline in the name is quoted
    start = whole.index(f'"{folder}/line')
    out.write_text(whole[:start + len(str(folder)) + 7])  # a kill inside the quoted field
    assert complete_csv(out.read_text()) == start
    result = classify(folder, "--weights", tiny_weights, "-o", out)
    assert result.exit_code == 0 and "1 already in the output" in result.stderr
    rows = read(out)
    assert sorted(Path(r["path"]).name for r in rows) == ["a.mp4", "line\nbreak.mp4"]


def test_dash_writes_json_lines_to_stdout(videos, tiny_weights):
    result = classify(videos, "--weights", tiny_weights, "-o", "-", "-k", "1")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3 and all(set(STAMP_COLUMNS) <= set(r) for r in rows)
    assert "3 of 3 files classified" in result.stderr


def test_a_folder_without_output_prints_a_line_per_file(tmp_path, videos, tiny_weights):
    (videos / "archive.mp4.gz").write_bytes(b"\x1f\x8b")
    (videos / "readme.txt").write_text("hi")
    result = classify(videos, "--weights", tiny_weights)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        path, label, score = line.split("\t")
        assert path.endswith(".mp4") and label.startswith("action") and 0 < float(score) <= 1
    assert "2 files skipped for their extension (.gz 1, .txt 1)" in result.stderr


def test_a_single_file_prints_a_table_under_its_path(tmp_path, videos, tiny_weights):
    result = classify(videos / "clip0.mp4", "--weights", tiny_weights, "-k", "2")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].endswith("clip0.mp4") and "probability" in lines[1]
    assert result.stdout.count("action") == 2


def test_paths_naming_nothing_are_usage_errors_before_any_work(tmp_path, videos,
                                                              tiny_weights):
    out = tmp_path / "labels.csv"
    empty = tmp_path / "empty"
    empty.mkdir()
    for argument, words in ((tmp_path / "missing.mp4", "no such file or folder"),
                            (empty, "no video or image files in this folder"),
                            (str(tmp_path / "*.nothing"), "matches no video")):
        result = classify(videos, argument, "--weights", tiny_weights, "-o", out)
        assert result.exit_code == 2 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not out.exists()


def test_clips_protocol_without_one_recorded_is_a_note_not_a_warning(tmp_path, videos):
    from conftest import TINY_V1
    from mvit_cli.checkpoints import save_native

    path = tmp_path / "bare.safetensors"
    save_native(mvit_cli.build_model(TINY_V1), path)  # no protocol recorded
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "classify",
                             str(videos / "clip0.mp4"), "--weights", str(path), "--clips",
                             "protocol", "--workers", "0"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "record no test protocol; --clips protocol uses 1 clip" in result.stderr
    assert "Warning" not in result.stderr


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_saved_weights_get_the_umask_s_permissions_and_keep_a_file_s_own(tmp_path, umask):
    # safetensors' save_file alone creates 0600: a team's shared weights would be unreadable.
    old = os.umask(umask)
    try:
        fresh = save_tiny(tmp_path / "fresh.safetensors")
        assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
        (tmp_path / "own.safetensors").write_bytes(b"old")
        os.chmod(tmp_path / "own.safetensors", 0o640)
        own = save_tiny(tmp_path / "own.safetensors")
        assert own.stat().st_mode & 0o777 == 0o640
        assert mvit_cli.load(own).labels  # the replaced file is the new, whole one
    finally:
        os.umask(old)


# ---- the writers themselves, without a model -------------------------------------------------

STAMP = {"model": "tiny-v1", "weights": "w.safetensors", "weights_sha256": "ab" * 32,
         "protocol": "1 clip x 1 crop, 4 frames at 15 fps, short side 40, crop 32",
         "mvit_version": mvit_cli.__version__}


def labelled(path: str, score: float = 0.5):
    from mvit_cli.jobs.classify import FileResult

    return FileResult(path, labels=["dog", "cat"], scores=[score, 1 - score], duration=1.0,
                      frames=30, views=1)


def write_rows(out: Path, results, overwrite: bool = False) -> set[str]:
    """Open `out` as a run would (resuming it), write `results`, close; the files it held."""
    from mvit_cli.outputs.registry import open_output

    writer = open_output(out, 2, STAMP, overwrite=overwrite)
    done = set(writer.done)
    for result in results:
        writer.write(result)
    writer.close()
    return done


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_resumed_output_drops_the_row_a_kill_cut_short(tmp_path, suffix):
    out = tmp_path / f"labels{suffix}"
    write_rows(out, [labelled("/v/a.mp4"), labelled("/v/b.mp4")])
    with open(out, "a", encoding="utf-8") as handle:  # what a kill mid-row leaves
        handle.write('/v/c.mp4,dog,0.5' if suffix == ".csv" else '{"path": "/v/c.mp4", "lab')
    assert write_rows(out, [labelled("/v/c.mp4")]) == {"/v/a.mp4", "/v/b.mp4"}
    rows = read(out)
    assert [row["path"] for row in rows] == ["/v/a.mp4", "/v/b.mp4", "/v/c.mp4"]
    assert all(row["label_1"] == "dog" and row["model"] == "tiny-v1" for row in rows)


def test_a_json_array_killed_before_its_journal_went_has_each_row_once(tmp_path):
    """A kill between writing the array and removing its journal leaves rows in both: the
    resumed array holds each file once."""
    from mvit_cli.outputs.resume import journal_of

    out = tmp_path / "labels.json"
    write_rows(out, [labelled("/v/a.mp4"), labelled("/v/b.mp4")])
    assert not journal_of(out).exists()
    journal_of(out).write_text(json.dumps(read(out)[1]) + "\n")
    assert write_rows(out, [labelled("/v/c.mp4")]) == {"/v/a.mp4", "/v/b.mp4"}
    assert [row["path"] for row in read(out)] == ["/v/a.mp4", "/v/b.mp4", "/v/c.mp4"]
    assert not journal_of(out).exists()


def test_overwriting_a_json_array_forgets_its_journal_too(tmp_path):
    from mvit_cli.outputs.resume import journal_of

    out = tmp_path / "labels.json"
    write_rows(out, [labelled("/v/old.mp4")])
    journal_of(out).write_text(json.dumps(read(out)[0] | {"path": "/v/older.mp4"}) + "\n")
    assert write_rows(out, [labelled("/v/new.mp4")], overwrite=True) == set()
    assert [row["path"] for row in read(out)] == ["/v/new.mp4"]


def test_a_json_array_that_fails_to_write_keeps_the_last_whole_one(tmp_path, monkeypatch):
    """The array is written to a temporary and renamed: a full disk while writing it leaves
    the previous array readable, and the journal keeps the new rows for the next run."""
    from mvit_cli.outputs import whole_files as output

    out = tmp_path / "labels.json"
    write_rows(out, [labelled("/v/a.mp4")])
    before = out.read_bytes()

    def full_disk(records, handle, **kwargs):
        handle.write('[\n {"path": "/v/a.mp4", "la')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output.json, "dump", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_rows(out, [labelled("/v/b.mp4")])
    monkeypatch.undo()
    assert out.read_bytes() == before
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock"))
    assert left == [".labels.json.partial.jsonl", "labels.json"]  # no temporary left behind
    assert write_rows(out, []) == {"/v/a.mp4", "/v/b.mp4"}
    assert [row["path"] for row in read(out)] == ["/v/a.mp4", "/v/b.mp4"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_an_error_row_has_its_error_and_no_labels(tmp_path, suffix):
    from mvit_cli.jobs.classify import FileResult

    out = tmp_path / f"labels{suffix}"
    write_rows(out, [FileResult("/v/bad.mp4", error="the file is empty"),
                     labelled("/v/good.mp4", score=0.123456789)])
    bad, good = read(out)
    empty = "" if suffix == ".csv" else None
    assert bad["error"] == "the file is empty" and bad["warning"] == ""
    assert bad["label_1"] == bad["score_1"] == bad["views"] == bad["duration"] == empty
    assert good["error"] == "" and good["label_1"] == "dog" and good["label_2"] == "cat"
    assert float(good["score_1"]) == 0.123457 and float(good["score_2"]) == 0.876543
    assert str(good["views"]) == "1" and str(good["frames"]) == "30"


def test_a_record_with_a_field_mvit_never_writes_is_not_resumed(tmp_path):
    out = tmp_path / "labels.jsonl"
    write_rows(out, [labelled("/v/a.mp4")])
    [row] = read(out)
    out.write_text(json.dumps(row | {"comment": "checked by hand"}) + "\n")
    before = out.read_bytes()
    with pytest.raises(mvit_cli.UsageError, match="its fields are not the ones mvit writes"):
        write_rows(out, [labelled("/v/b.mp4")])
    assert out.read_bytes() == before


# ---- progress bars -----------------------------------------------------------------------------

def test_progress_bars_go_to_terminals_only_and_show_file_names_as_they_are():
    """A pipe or a log file gets no bar (its lines would be clutter); a terminal gets one,
    with a file name holding braces or brackets shown literally, not as a template."""
    import io

    from rich.console import Console

    from mvit_cli.progress import RateColumn, progress_bar

    piped = progress_bar("clips", console=Console(file=io.StringIO()))
    assert piped.disable
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    bar = progress_bar("clip {1} [bold]x[/bold].mp4", RateColumn("files"), console=console)
    assert not bar.disable
    with bar:
        task = bar.add_task("", total=4)
        bar.advance(task, 3)
        bar.refresh()
    shown = screen.getvalue()
    assert "clip {1} [bold]x[/bold].mp4" in shown and "3/4" in shown
