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

from conftest import PEAK_KB, PROTOCOL, TINY_V1, register_tiny_architectures, run_cli
from media import ORDER, SECONDS, join_clips, read_number, write_video

WINDOW, STRIDE = 1.5, 0.75

@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return join_clips(tmp_path_factory.mktemp("long") / "motions.mp4")


@pytest.fixture(scope="module")
def demo():
    return mvit_cli.load("motion-demo")


def timeline(*args):
    return run_cli("timeline", *args, "--weights", "motion-demo", "--window", WINDOW,
                   "--workers", "0")


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


# ---- segments on a real long video ------------------------------------------------------------

def test_segments_follow_the_motions(long_video, demo):
    from mvit_cli.timeline.segments import segments

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
    assert 1400 <= width <= 1700


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
    from mvit_cli.timeline.output import window_columns

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


# ---- features -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".npy", ".safetensors", ".parquet"])
def test_features_of_files_and_windows_read_back(long_video, tmp_path, tiny_weights, suffix):
    from mvit_cli.features import read_features

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
