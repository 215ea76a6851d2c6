"""`mvit timeline`: windows over long videos, segments, every output format, features.

The long video is joined from `mvit synth` clips of known motions, so the right answer is
known second by second; motion-demo labels it.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

import mvit_cli
from mvit_cli.media.protocol import protocol_for
from mvit_cli.media.windows import Windowing, sample_times, windowing_for
from mvit_cli.jobs.timeline import VideoTimeline, Window

from conftest import (PEAK_KB, PROTOCOL, TINY_V1, register_tiny_architectures, run_cli,
                      save_tiny)
from media import ORDER, SECONDS, join_clips, read_number, write_video

WINDOW, STRIDE = 1.5, 0.75
LABELS = ["walk", "run", "jump"]
STAMP = {"model": "m", "weights": "w", "weights_sha256": "0" * 64, "protocol": "p",
         "mvit_version": "1"}


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return join_clips(tmp_path_factory.mktemp("long") / "motions.mp4")


@pytest.fixture(scope="module")
def demo():
    return mvit_cli.load("motion-demo")


def timeline(*args):
    return run_cli("timeline", *args, "--weights", "motion-demo", "--window", WINDOW,
                   "--workers", "0")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The tiny random video model: windows of 4 frames 2/30 s apart (0.27 s), cheap to run."""
    return save_tiny(tmp_path_factory.mktemp("tiny") / "tiny.safetensors")


@pytest.fixture(scope="module")
def second(tmp_path_factory) -> Path:
    """One second of numbered frames: seven windows of the tiny model, each its own frames."""
    return write_video(tmp_path_factory.mktemp("second") / "second.mp4", frames=30, fps=30)


def tiny_timeline(video, weights, *args):
    return run_cli("timeline", video, "--weights", weights, "--workers", "0", *args)


def hand_made(path: Path, *probs: list[float], duration: float = 4.0) -> VideoTimeline:
    """A timeline of `path` with one-second windows every second, scored as given."""
    windows = [Window(float(i), float(i) + 1.0, np.array(p, np.float32))
               for i, p in enumerate(probs)]
    return VideoTimeline(str(path), duration=duration, windows=windows)


# ---- windows ---------------------------------------------------------------------------------

def test_windows_cover_the_video_and_end_at_its_end():
    windowing = Windowing(2.0, 1.0)
    assert windowing.starts(10.0).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8]
    assert windowing.starts(10.5).tolist()[-2:] == [8.0, 8.5]  # the tail gets a window
    assert windowing.starts(1.2).tolist() == [0.0]  # shorter than a window: one


def test_a_window_is_one_clip_of_the_protocol():
    fixed = protocol_for(TINY_V1, PROTOCOL)  # 4 frames every 2/30 s
    windowing = windowing_for(fixed, None, None)
    assert windowing.length == pytest.approx(4 * 2 / 30) and windowing.stride == pytest.approx(
        2 / 30 * 2)
    assert np.allclose(sample_times(1.0, windowing, fixed, 10), 1 + np.arange(4) * 2 / 30)
    with pytest.raises(mvit_cli.UsageError, match="--window applies"):
        windowing_for(fixed, 5.0, None)
    uniform = protocol_for(TINY_V1, {**PROTOCOL, "uniform": True})
    spread = windowing_for(uniform, 2.0, 0.5)
    assert np.allclose(sample_times(4.0, spread, uniform, 10), 4 + (np.arange(4) + 0.5) * 0.5)


def test_windows_get_the_frame_on_screen_at_each_sample_time(tmp_path):
    """Decoded once, in order, in stretches: the same frames as the rule says."""
    from mvit_cli.media.sequential import window_views

    video = write_video(tmp_path / "numbered.mp4", frames=90, fps=30)
    protocol = protocol_for(TINY_V1, PROTOCOL)
    windowing = windowing_for(protocol, None, None)
    starts = windowing.starts(3.0)
    views, decoded = window_views(str(video), list(starts[3:9]), windowing, protocol, 3.0)
    assert decoded >= 6 and views.shape == (6, 4, 32, 32, 3)
    got = [read_number(frame) for view in views for frame in view]
    expected = [int(np.floor(t * 30 + 1e-3)) for s in starts[3:9]
                for t in sample_times(s, windowing, protocol, 3.0)]
    assert got == expected


def test_a_video_shorter_than_a_window_is_one_window_ending_at_its_end(tmp_path, tiny):
    """Its one window repeats the last frame (media/windows.py), but stands for the video's
    own length, not a window's: rows and segments end where the video does."""
    clf = mvit_cli.load(tiny)
    video = write_video(tmp_path / "short.mp4", frames=5, fps=30)
    [timeline_] = clf.timeline(video, workers=0)
    assert timeline_.ok and timeline_.duration < clf.windowing().length
    [window] = timeline_.windows
    assert window.start == 0 and window.end == pytest.approx(timeline_.duration)


def test_a_video_of_exactly_one_stretch_of_windows_is_finished(tmp_path, tiny):
    """A stretch is one decoding task of up to `windows_per_stretch` windows: a video whose
    windows fill whole stretches exactly must still come back, with every window."""
    from mvit_cli.jobs.timeline import windows_per_stretch

    clf = mvit_cli.load(tiny)
    per_stretch = windows_per_stretch(clf.protocol_with(1, 1))
    length = clf.windowing().length  # 8 frames at 30 fps; one window per frame after it
    video = write_video(tmp_path / "stretch.mp4", frames=round(length * 30) + per_stretch - 1,
                        fps=30, width=32, height=32)
    [timeline_] = clf.timeline(video, stride=1 / 30, workers=0)
    assert timeline_.ok and len(timeline_.windows) == per_stretch
    starts = [w.start for w in timeline_.windows]
    assert starts == sorted(set(starts)) and timeline_.windows[-1].end == pytest.approx(
        timeline_.duration)


def test_windows_already_done_are_skipped_and_a_video_with_none_left_comes_back(second):
    """`skip` resumes a video part-way: only the windows not done are decoded and scored, and
    a video with nothing left still comes back (with its length), or a caller would wait
    for it forever."""
    import torch

    from mvit_cli.engines.local.timeline_runner import TimelineRunner
    from mvit_cli.jobs.timeline import TimelineJob
    from mvit_cli.media.discover import as_items

    protocol = protocol_for(TINY_V1, PROTOCOL)
    windowing = windowing_for(protocol, None, None)
    runner = TimelineRunner(lambda views: (torch.full((len(views), 2), 0.5), None),
                            TimelineJob(protocol, windowing))
    starts = windowing.starts(1.0).tolist()
    done = set(starts[:3])
    [partly] = runner.run(as_items([second]), workers=0, timeout=60, skip=lambda path: done)
    assert partly.ok and [w.start for w in partly.windows] == pytest.approx(starts[3:])
    [finished] = runner.run(as_items([second]), workers=0, timeout=60,
                            skip=lambda path: set(starts))
    assert finished.ok and finished.windows == [] and finished.duration == pytest.approx(1.0)


# ---- the command's options, on the tiny model -------------------------------------------------

def test_rows_hold_the_top_k_most_likely_first_at_the_stride_asked_for(tiny, second, tmp_path):
    """-k 10 on a model of 10 classes: every label once per row, in falling order."""
    out = tmp_path / "rows.csv"
    result = tiny_timeline(second, tiny, "-o", out, "-k", "10", "--stride", "0.1")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, newline="")))
    starts = [float(r["start"]) for r in rows]
    assert np.allclose(np.diff(starts)[:-1], 0.1) and starts[0] == 0
    assert float(rows[-1]["end"]) == pytest.approx(1.0, abs=0.01)  # the tail's window
    for row in rows:
        scores = [float(row[f"score_{r}"]) for r in range(1, 11)]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-4)
        assert sorted(row[f"label_{r}"] for r in range(1, 11)) == sorted(
            f"action {i}" for i in range(10))


def test_window_features_are_what_the_head_reads_in_batches_as_asked(tiny, second, tmp_path,
                                                                      monkeypatch):
    """Each window's feature, through the head, gives that window's row of scores; the model
    is called with --batch-size windows at a time."""
    import torch

    from mvit_cli.outputs.registry import read_features
    from mvit_cli.engines.local.timeline_runner import TimelineRunner

    batches = []
    score = TimelineRunner._score

    def counted(self, batch, videos):
        batches.append(len(batch))
        return score(self, batch, videos)

    monkeypatch.setattr(TimelineRunner, "_score", counted)
    out, features_path = tmp_path / "rows.csv", tmp_path / "windows.npy"
    result = tiny_timeline(second, tiny, "-o", out, "-k", "10", "--features", features_path,
                           "-b", "3")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, newline="")))
    keys, features = read_features(features_path)
    assert len(rows) == len(keys) == len({f.tobytes() for f in features}) > 3
    assert batches == [3] * (len(rows) // 3) + ([len(rows) % 3] if len(rows) % 3 else [])
    clf = mvit_cli.load(tiny)
    with torch.inference_mode():
        probs = clf.model.head(torch.from_numpy(features)).softmax(dim=-1).numpy()
    for row, key, window in zip(rows, keys, probs, strict=True):
        assert (float(row["start"]), float(row["end"])) == (round(key[1], 3), round(key[2], 3))
        for rank in range(1, 11):
            label = clf.labels.index(row[f"label_{rank}"])
            assert window[label] == pytest.approx(float(row[f"score_{rank}"]), abs=1e-5)


def test_segments_print_unless_quiet_and_a_threshold_leaves_unsure_windows_out(tiny, second):
    """Without an output the segments go to stdout, a tab-separated line each, below the
    video's path; --quiet leaves only errors and a failure's summary."""
    said = tiny_timeline(second, tiny)
    assert said.exit_code == 0, said.output
    path, *lines = said.stdout.splitlines()
    assert path.endswith("second.mp4") and lines
    for line in lines:
        start, end, label, score = line.split("\t")
        assert float(start) < float(end) and label.startswith("action ") and 0 < float(score) < 1
    assert "with weights" in said.stderr and "1 of 1 videos" in said.stderr
    quiet = tiny_timeline(second, tiny, "-q")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")
    unsure = tiny_timeline(second, tiny, "--threshold", "0.99")  # a random model never is
    assert unsure.exit_code == 0 and unsure.stdout.splitlines() == [path]


@pytest.mark.parametrize("option", ["--plot", "--annotate"])
def test_pictures_of_several_videos_need_a_stem(tmp_path, second, option):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(second.read_bytes())
    result = run_cli("timeline", folder, "--weights", tmp_path / "absent.safetensors", option,
                     tmp_path / "one.png", "--workers", "0")
    assert result.exit_code == 2 and "{stem}" in result.stderr, result.output


def test_pictures_into_missing_folders_have_their_folders_made(tmp_path, second,
                                                                monkeypatch):
    """--plot and --annotate make their folders, as -o does; a {stem} one per video."""
    monkeypatch.chdir(tmp_path)
    result = timeline(second, "--plot", "missing/dir/p.png", "--annotate", "missing2/a.mp4")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "missing/dir/p.png").stat().st_size > 0
    assert (tmp_path / "missing2/a.mp4").stat().st_size > 0
    stem = timeline(second, "--plot", "plots/{stem}/p.png")
    assert stem.exit_code == 0 and (tmp_path / "plots/second/p.png").is_file(), stem.output


@pytest.mark.parametrize("option", ["--plot", "--annotate", "--features", "-o"])
def test_an_output_under_a_file_is_one_line_before_any_work(tmp_path, second, option):
    """A path whose folder would have to be a regular file is refused before the model loads
    (the weights named do not even exist): one line, no traceback."""
    (tmp_path / "file").write_text("not a folder")
    target = {"--plot": "p.png", "--annotate": "a.mp4", "--features": "f.npy",
              "-o": "rows.csv"}[option]
    result = run_cli("timeline", second, "--weights", tmp_path / "absent.safetensors", option,
                     tmp_path / "file" / "sub" / target, "--workers", "0")
    assert result.exit_code == 2 and result.stdout == "", result.output
    [line] = result.stderr.splitlines()
    assert option in line and "is a file" in line and "absent" not in line


def test_a_full_disk_mid_run_stops_and_keeps_the_videos_written(tiny, second, tmp_path,
                                                                 monkeypatch):
    """As classify (test_hostile.py): one line, exit 1, the videos written before kept, so the
    same command resumes once there is room."""
    import errno

    from mvit_cli.outputs.rows import WindowRows

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (folder / name).write_bytes(second.read_bytes())
    real_write, calls = WindowRows.write, []

    def write(self, video):
        calls.append(video.path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, video)

    monkeypatch.setattr(WindowRows, "write", write)
    out = tmp_path / "rows.csv"
    result = tiny_timeline(folder, tiny, "-o", out)
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.stderr and "make room" in result.stderr
    assert len(calls) == 2  # stopped at the first failure
    assert {r["path"] for r in csv.DictReader(open(out, newline=""))} == {calls[0]}


# ---- segments on a real long video ------------------------------------------------------------

def test_segments_follow_the_motions(long_video, demo):
    from mvit_cli.jobs.segments import segments

    [video] = list(demo.timeline(long_video, window=WINDOW, stride=STRIDE, workers=1))
    assert video.ok and video.duration == pytest.approx(len(ORDER) * SECONDS, abs=0.05)
    assert [w.start for w in video.windows] == sorted(w.start for w in video.windows)
    found = segments(video.windows, demo.labels, video.duration, smooth_windows=3)
    right = 0.0
    for segment in found:
        for k, label in enumerate(ORDER):  # overlap of the segment with where label truly is
            overlap = min(segment.end, (k + 1) * SECONDS) - max(segment.start, k * SECONDS)
            if overlap > 0 and segment.label == label:
                right += overlap
    assert right / video.duration >= 0.9, found
    assert [s.label for s in found] == ORDER
    for k, segment in enumerate(found[1:], start=1):
        assert abs(segment.start - k * SECONDS) <= STRIDE, found


def test_every_format_reads_back(long_video, tmp_path):
    out = {name: tmp_path / name for name in ("w.csv", "w.jsonl", "s.json", "s.vtt", "s.srt")}
    for path in out.values():
        result = timeline(long_video, "-o", path, "--smooth", "3", "-k", "2")
        assert result.exit_code == 0, result.output
    with open(out["w.csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    jsonl = [json.loads(line) for line in out["w.jsonl"].read_text().splitlines()]
    assert len(rows) == len(jsonl) > 10
    assert float(rows[0]["start"]) == 0 and float(rows[-1]["end"]) == pytest.approx(12, abs=0.05)
    assert {"label_1", "score_2", "model", "weights_sha256"} <= set(jsonl[0])
    activitynet = json.loads(out["s.json"].read_text())
    assert activitynet["version"] == "VERSION 1.3" and activitynet["external_data"] == {}
    [(video, found)] = activitynet["results"].items()
    assert video == str(long_video) and [s["label"] for s in found] == ORDER
    for segment in found:
        assert set(segment) == {"label", "score", "segment"} and 0 <= segment["score"] <= 1
    cue = r"(\d\d):(\d\d):(\d\d)[.,](\d{3}) --> (\d\d):(\d\d):(\d\d)[.,](\d{3})"
    vtt = out["s.vtt"].read_text()
    assert vtt.startswith("WEBVTT\n") and "NOTE made by mvit" in vtt
    assert len(re.findall(cue.replace("[.,]", r"\."), vtt)) == len(ORDER)
    srt = out["s.srt"].read_text().strip().split("\n\n")
    assert [block.splitlines()[0] for block in srt] == ["1", "2", "3", "4"]
    assert all(re.fullmatch(cue.replace("[.,]", ","), block.splitlines()[1]) for block in srt)
    assert [block.splitlines()[2].rsplit(" (", 1)[0] for block in srt] == ORDER


def test_the_annotated_copy_has_the_source_frames_and_duration(long_video, tmp_path):
    copy = tmp_path / "annotated.mp4"
    picture = tmp_path / "timeline.png"
    result = timeline(long_video, "--annotate", copy, "--plot", picture)
    assert result.exit_code == 0, result.output

    def frames_and_duration(path):
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.decode(stream))
            return count, float(stream.duration * stream.time_base)

    assert frames_and_duration(copy) == frames_and_duration(long_video)
    width, _ = Image.open(picture).size
    assert 700 <= width <= 2500  # it follows the video's length (tests/test_timeline_plot.py)


def test_resume_and_bad_files(long_video, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(long_video.read_bytes())
    (folder / "broken.mp4").write_text("not a video")
    (folder / "empty.mp4").write_bytes(b"")
    out = tmp_path / "rows.csv"
    first = timeline(folder, "-o", out)
    assert first.exit_code == 1 and "broken.mp4: error" in first.stderr
    rows = list(csv.DictReader(open(out, newline="")))
    assert any(r["error"] and r["path"].endswith("broken.mp4") for r in rows)
    assert any(r["error"] == "the file is empty" and r["path"].endswith("empty.mp4") for r in rows)
    again = timeline(folder, "-o", out)
    assert "3 already in the output" in again.stderr
    assert len(list(csv.DictReader(open(out, newline="")))) == len(rows)
    other = run_cli("timeline", folder, "--weights", "motion-demo", "--window", "2", "-o", out,
                    "--workers", "0")
    assert other.exit_code == 2 and "protocol" in other.stderr


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_an_output_that_is_not_ours_is_refused_before_the_model_loads(long_video, tmp_path,
                                                                      suffix):
    out = tmp_path / f"notes{suffix}"
    out.write_text("hello")
    result = run_cli("timeline", long_video, "--weights", tmp_path / "absent.safetensors",
                     "-o", out, "--workers", "0")
    assert result.exit_code == 2, result.output
    assert str(out) in result.stderr and "checkpoint" not in result.stderr
    assert out.read_text() == "hello"


def test_a_row_with_other_columns_is_refused_before_the_model_loads(long_video, tmp_path):
    """As classify does (one reader, classify.output.csv_records): a row of another width
    under mvit's header was once skipped, and the run appended to the file."""
    from mvit_cli.outputs.rows import window_columns

    out = tmp_path / "rows.csv"
    content = ",".join(window_columns(3)) + "\n" + "/videos/a.mp4,0.0\n"  # top-k 3: the default
    out.write_text(content)
    result = run_cli("timeline", long_video, "--weights", tmp_path / "absent.safetensors",
                     "-o", out, "--workers", "0")
    assert result.exit_code == 2, result.output
    assert "some rows do not have mvit's columns" in result.stderr
    assert "checkpoint" not in result.stderr and out.read_text() == content


def test_subtitles_for_several_videos_need_a_stem(long_video, tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(long_video.read_bytes())
    refused = timeline(folder, "-o", tmp_path / "one.vtt")
    assert refused.exit_code == 2 and "{stem}" in refused.stderr
    made = timeline(folder, "-o", tmp_path / "subs" / "{stem}.vtt")
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (tmp_path / "subs").glob("*.vtt")) == ["a.vtt", "b.vtt"]
    (tmp_path / "subs" / "c.vtt").write_text("mine")
    (folder / "c.mp4").write_bytes(long_video.read_bytes())
    again = timeline(folder, "-o", tmp_path / "subs" / "{stem}.vtt")
    assert again.exit_code == 2 and "not written by mvit" in again.stderr
    assert (tmp_path / "subs" / "c.vtt").read_text() == "mine"


# ---- outputs, from hand-made timelines ----------------------------------------------------------

def test_a_killed_activitynet_run_resumes_from_its_journal(tmp_path):
    """Until the run ends, finished videos are only in the journal beside the .json: a resumed
    run must take them (failures too) from there, and refuse a journal made otherwise."""
    from mvit_cli.outputs.registry import open_timeline_output
    from mvit_cli.outputs.timeline_settings import Settings
    from mvit_cli.outputs.stamp import OutputError
    from mvit_cli.outputs.resume import journal_of

    out = str(tmp_path / "segments.json")
    settings = Settings(LABELS, top_k=1, smooth=1, threshold=0.0)
    good, bad = str(tmp_path / "good.mp4"), str(tmp_path / "bad.mp4")
    first = open_timeline_output(out, settings, STAMP, overwrite=False)
    first.write(hand_made(good, [0.75, 0.25, 0], [0.25, 0.75, 0], duration=2.0))
    first.write(VideoTimeline(bad, error="not a video"))
    first.format.handle.close()  # as a kill leaves it: the lock gone, no document written
    first._release()
    assert journal_of(Path(out)).exists() and not Path(out).exists()
    resumed = open_timeline_output(out, settings, STAMP, overwrite=False)
    assert resumed.is_done(good) and resumed.is_done(bad)  # a failure is done too, as classify
    resumed.close()
    document = json.loads(Path(out).read_text())
    assert document["results"] == {good: [{"label": "walk", "score": 0.75, "segment": [0, 1]},
                                          {"label": "run", "score": 0.75, "segment": [1, 2]}]}
    assert document["mvit"]["errors"] == {bad: "not a video"}
    assert not journal_of(Path(out)).exists()  # the document is whole: no journal left
    with pytest.raises(OutputError, match="other settings"):
        open_timeline_output(out, settings, {**STAMP, "protocol": "other"}, overwrite=False)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_row_torn_by_a_kill_is_cut_when_rows_are_resumed(tmp_path, suffix):
    """Appending after half a row would glue the next row onto it."""
    from mvit_cli.outputs.registry import open_timeline_output
    from mvit_cli.outputs.timeline_settings import Settings

    out = str(tmp_path / f"rows{suffix}")
    settings = Settings(LABELS, top_k=2, smooth=1, threshold=0.0)
    first, second = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
    writer = open_timeline_output(out, settings, STAMP, overwrite=False)
    writer.write(hand_made(first, [0.75, 0.25, 0], [0.25, 0.75, 0], duration=2.0))
    writer.close()
    with open(out, "a", encoding="utf-8") as handle:  # the first bytes of a row, then a kill
        handle.write(f"{second},0.0,1.0,wal" if suffix == ".csv" else f'{{"path": "{second}", "st')
    resumed = open_timeline_output(out, settings, STAMP, overwrite=False)
    assert resumed.is_done(first) and not resumed.is_done(second)
    resumed.write(hand_made(second, [0, 0.25, 0.75], duration=1.0))
    resumed.close()
    if suffix == ".csv":
        rows = list(csv.DictReader(open(out, newline="")))
    else:
        rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    assert [(r["path"], r["label_1"]) for r in rows] == [(first, "walk"), (first, "run"),
                                                         (second, "jump")]


def test_subtitles_are_skipped_only_when_made_the_same_way(tmp_path):
    """The manifest beside them says how each file was made: one made otherwise is neither
    skipped as done nor silently replaced."""
    from mvit_cli.outputs.registry import open_timeline_output
    from mvit_cli.outputs.timeline_settings import Settings
    from mvit_cli.outputs.stamp import OutputError

    template = str(tmp_path / "subs" / "{stem}.srt")
    settings = Settings(LABELS, top_k=1, smooth=1, threshold=0.0)
    video = hand_made(tmp_path / "clip.mp4", [0.75, 0.25, 0])
    writer = open_timeline_output(template, settings, STAMP, overwrite=False)
    assert not writer.is_done(video.path)
    writer.write(video)
    writer.close()
    made = (tmp_path / "subs" / "clip.srt").read_text()
    assert made == "1\n00:00:00,000 --> 00:00:04,000\nwalk (0.75)\n"
    same = open_timeline_output(template, settings, STAMP, overwrite=False)
    assert same.is_done(video.path)
    same.close()
    other = open_timeline_output(template, settings, {**STAMP, "weights": "x"}, overwrite=False)
    with pytest.raises(OutputError, match="other settings"):
        other.is_done(video.path)
    other.close()
    afresh = open_timeline_output(template, settings, {**STAMP, "weights": "x"}, overwrite=True)
    assert not afresh.is_done(video.path)
    afresh.close()


@pytest.mark.parametrize("suffix", [".json", ".vtt"])
def test_segments_are_not_resumed_with_another_smooth_or_threshold(tiny, second, tmp_path,
                                                                   suffix):
    """Segments made with one --smooth or --threshold are not what another would make: a run
    with other ones refuses in one line, naming both values, and leaves the output as it was
    (rather than counting the video as already in it)."""
    out = tmp_path / f"segments{suffix}"
    assert tiny_timeline(second, tiny, "-o", out).exit_code == 0
    before = out.read_bytes()
    for option, value, said in [("--smooth", "3", "--smooth 1 (this run: 3)"),
                                ("--threshold", "0.5", "--threshold 0 (this run: 0.5)"),
                                ("--min-segment", "2", "--min-segment 0 (this run: 2)")]:
        refused = tiny_timeline(second, tiny, "-o", out, option, value)
        assert refused.exit_code == 2 and said in refused.stderr, refused.output
        assert len(refused.stderr.strip().splitlines()) == 1 and out.read_bytes() == before
    again = tiny_timeline(second, tiny, "-o", out)
    assert again.exit_code == 0 and "1 already in the output" in again.stderr


def test_segment_settings_are_recorded_only_where_they_are_not_the_defaults(tmp_path):
    """With the defaults the ActivityNet document and the subtitle manifest hold what they held
    before the settings were recorded (so outputs made before then resume with the defaults);
    other settings are recorded beside the stamp and resume only with the same ones."""
    from mvit_cli.outputs.registry import open_timeline_output
    from mvit_cli.outputs.resume import journal_of
    from mvit_cli.outputs.stamp import OutputError
    from mvit_cli.outputs.subtitles import SUBTITLE_MANIFEST
    from mvit_cli.outputs.timeline_settings import Settings

    video = hand_made(tmp_path / "clip.mp4", [0.75, 0.25, 0], [0.25, 0.75, 0])
    defaults = Settings(LABELS, top_k=1, smooth=1, threshold=0.0)
    smoothed = Settings(LABELS, top_k=1, smooth=2, threshold=0.5)
    for name in ("plain.json", "subs/{stem}.srt"):
        out = str(tmp_path / name)
        writer = open_timeline_output(out, defaults, STAMP, overwrite=False)
        writer.write(video)
        writer.close()
        if name.endswith(".json"):
            assert json.loads(Path(out).read_text())["mvit"] == {**STAMP, "errors": {}}
        else:
            [entry] = [json.loads(line) for line in
                       (tmp_path / "subs" / SUBTITLE_MANIFEST).read_text().splitlines()]
            assert set(entry) == {"file", "video", *STAMP}
        for settings in (defaults, smoothed):
            writer = open_timeline_output(out, settings, STAMP, overwrite=settings is smoothed)
            assert writer.is_done(video.path) == (settings is defaults)
            if settings is smoothed:
                writer.write(video)
            writer.close()
        with pytest.raises(OutputError, match=r"--smooth 2 \(this run: 1\); --threshold 0.5 "
                                              r"\(this run: 0\)"):
            writer = open_timeline_output(out, defaults, STAMP, overwrite=False)
            writer.is_done(video.path)
        writer.close()
        resumed = open_timeline_output(out, smoothed, STAMP, overwrite=False)
        assert resumed.is_done(video.path)
        resumed.close()
    document = json.loads((tmp_path / "plain.json").read_text())
    assert document["mvit"] == {**STAMP, "smooth": 2, "threshold": 0.5, "errors": {}}
    assert not journal_of(tmp_path / "plain.json").exists()


def white_video(path: Path, frames: int, fps: int, width: int, height: int) -> Path:
    """A white video, on which the annotation's translucent black box shows plainly."""
    from media import write_colour_video

    return write_colour_video(path, (255, 255, 255), frames, fps, width, height)


def test_each_frame_of_the_annotated_copy_shows_the_window_standing_for_it(tmp_path):
    """A short label in the first second, a long one in the next: the dark box behind the
    text is as wide as its line, so its width tells which window a frame shows."""
    from mvit_cli.outputs.annotate import annotate

    source = white_video(tmp_path / "white.mp4", frames=20, fps=10, width=320, height=48)
    video = hand_made(source, [0.9, 0.1], [0.1, 0.9], duration=2.0)
    copy = tmp_path / "annotated.mp4"
    assert annotate(video, ["a", "a much longer label"], copy, k=1) == 20
    widths = {}
    with av.open(str(copy)) as container:
        for frame in container.decode(video=0):
            row = frame.to_ndarray(format="rgb24")[5, :, 0]  # above the text, inside the box
            widths[round(frame.time, 2)] = int(np.flatnonzero(row < 180).max())
    assert sorted(widths) == [round(0.1 * i, 2) for i in range(20)]
    short = {width for t, width in widths.items() if t < 1}  # "a  0.90"
    long = {width for t, width in widths.items() if t >= 1}  # "a much longer label  0.90"
    assert len(short) == len(long) == 1 and min(long) > 2.5 * max(short) > 0


def test_the_plot_shows_the_likeliest_classes_along_the_video_in_seconds(tmp_path, monkeypatch):
    """The figure as saved (kept on its way to the file): rows by best score, the whole video
    along x, each segment labelled in the band."""
    import matplotlib.figure

    from mvit_cli.outputs.plot import plot_timeline
    from mvit_cli.jobs.segments import segments

    figures = []
    save = matplotlib.figure.Figure.savefig

    def kept(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", kept)
    video = hand_made(tmp_path / "clip.mp4", [0.5, 0.3, 0.2], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1],
                      [0.1, 0.1, 0.8])
    found = segments(video.windows, LABELS, video.duration)
    picture = tmp_path / "timeline.png"
    plot_timeline(video, found, LABELS, picture, "w")
    assert picture.read_bytes()[:4] == b"\x89PNG"
    [figure] = figures
    band, heat = figure.axes[:2]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["jump", "run", "walk"]
    assert heat.get_xlabel() == "time (seconds)" and heat.get_xlim() == (0.0, 4.0)
    assert [t.get_text().split("\n")[0] for t in band.texts] == ["walk", "run", "jump"]


# ---- features -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".parquet"])
def test_features_of_files_and_windows_read_back(long_video, tmp_path, tiny_weights, suffix):
    from mvit_cli.outputs.registry import read_features

    register_tiny_architectures()
    clips = [write_video(tmp_path / f"c{i}.mp4", frames=12) for i in range(3)]
    path = tmp_path / f"files{suffix}"
    result = run_cli("classify", *clips, "--weights", tiny_weights, "--features", path,
                     "--workers", "0", "--clips", "2")
    assert result.exit_code == 0, result.output
    keys, features = read_features(path)
    clf = mvit_cli.load(tiny_weights)
    width = clf.model.head.in_features
    assert [k[0] for k in keys] == [str(c) for c in clips] and features.shape == (3, width)
    assert features.dtype == np.float32 and all(k[1] == -1 for k in keys)
    views = clf.preprocess(clips[0], clips=2)
    import torch

    with torch.inference_mode():
        expected = clf.model.forward_features(views).mean(dim=0).numpy()
    np.testing.assert_allclose(features[0], expected, rtol=1e-5, atol=1e-6)
    windows = tmp_path / f"windows{suffix}"
    assert timeline(long_video, "--features", windows).exit_code == 0
    keys, features = read_features(windows)
    assert len(keys) > 10 and features.shape[1] == 256
    assert [k[1] for k in keys] == sorted(k[1] for k in keys) and keys[0][1] == 0.0


def test_features_from_other_weights_are_not_mixed_in(tmp_path, tiny_weights):
    from conftest import save_tiny

    register_tiny_architectures()
    clip = write_video(tmp_path / "c.mp4", frames=12)
    path = tmp_path / "f.npy"
    assert run_cli("classify", clip, "--weights", tiny_weights, "--features", path,
                   "--workers", "0").exit_code == 0
    other = save_tiny(tmp_path / "other.safetensors", seed=5)
    result = run_cli("classify", clip, "--weights", other, "--features", path, "--workers", "0")
    assert result.exit_code == 2 and "other settings" in result.stderr


@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".parquet"])
def test_resumed_features_keep_earlier_entries_and_take_the_newest(tmp_path, suffix):
    """The file is written whole at the end: a resumed run must carry over what is there,
    each key (path, start, end) once, with the newest vector."""
    from mvit_cli.outputs.registry import open_features, read_features

    path = tmp_path / f"features{suffix}"
    first = open_features(path, STAMP)
    first.add("a.mp4", np.full(4, 1.0), 0.0, 2.0)
    first.add("a.mp4", np.full(4, 2.0), 1.0, 3.0)
    first.add("b.mp4", np.full(4, 3.0))
    first.close()
    again = open_features(path, STAMP)
    again.add("a.mp4", np.full(4, 4.0), 0.0, 2.0)  # that window again: its newest feature
    again.add("c.mp4", np.full(4, 5.0), 0.5, 1.5)
    again.close()
    keys, features = read_features(path)
    assert keys == [("a.mp4", 0.0, 2.0), ("a.mp4", 1.0, 3.0), ("b.mp4", -1.0, -1.0),
                    ("c.mp4", 0.5, 1.5)]
    assert features.dtype == np.float32 and features[:, 0].tolist() == [4.0, 2.0, 3.0, 5.0]


# ---- memory ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_memory_does_not_grow_with_the_length_of_the_video(tmp_path):
    """A four times longer video in about the same peak memory: it is decoded in stretches
    of up to 64 windows (32 s here), and both videos are longer than one stretch (a video
    shorter than a stretch needs less)."""
    peaks = {}
    for seconds in (60, 240):
        video = write_video(tmp_path / f"v{seconds}.mp4", frames=seconds * 10, fps=10,
                            width=320, height=240)
        code = ("import sys, mvit_cli\n"
                "clf = mvit_cli.load('motion-demo')\n"
                "[v] = list(clf.timeline(sys.argv[1], window=1.0, workers=0))\n"
                "assert v.ok, v.error\n"
                f"print({PEAK_KB})")
        done = subprocess.run([sys.executable, "-c", code, str(video)], capture_output=True,
                              text=True, timeout=600, check=True)
        peaks[seconds] = int(done.stdout.split()[-1])
    assert peaks[240] <= 1.10 * peaks[60], peaks
