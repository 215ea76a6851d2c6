"""`mvit classify` on real files the tests make: sampling, formats, bad input, output, resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mvit_cli import Pipeline, build_model
from mvit_cli.engines.local.workers import DecodePool, Task, prepare
from mvit_cli.media.protocol import protocol_for

from conftest import INTERRUPTIBLE, PROTOCOL, TINY_V1, TINY_V1_IMAGE, run_cli
from media import read_number, write_audio_only, write_image, write_video



def tiny_protocol(clips=1, crops=1, **changes):
    return protocol_for(TINY_V1, {**PROTOCOL, **changes}, clips, crops)


def expected_indices(timestamps, protocol) -> list[int]:
    """Independent statement of the sampling rule: clips centred on equal parts of the
    video, frames every `frame_interval` seconds, the frame on screen at each time."""
    timestamps = list(timestamps)
    duration = timestamps[-1] + (timestamps[-1] - timestamps[-2] if len(timestamps) > 1 else 0)
    span = protocol.frames * protocol.frame_interval
    out = []
    for k in range(protocol.clips):
        start = max(duration - span, 0) * (k + 0.5) / protocol.clips
        for i in range(protocol.frames):
            t = start + i * protocol.frame_interval
            out.append(max(j for j, s in enumerate(timestamps) if s <= t + 1e-9))
    return out


def numbers_in(views: np.ndarray) -> list[int]:
    return [read_number(frame) for view in views for frame in view]


# ---- sampling and preprocessing --------------------------------------------------------

def test_frames_reach_the_model_in_order(tmp_path, monkeypatch):
    """Capture the model's actual input and read the frame numbers back out of it (on one
    thread: clip lanes would call the hook in whichever order clips finish)."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    video = write_video(tmp_path / "numbered.mp4", frames=60, fps=30)
    model = build_model(TINY_V1)
    seen = []
    model.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    clf = Pipeline.from_model(model, protocol=PROTOCOL)
    protocol = clf.protocol_with(clips=3)
    [result] = list(clf.classify(video, clips=3, batch_size=2, workers=1))
    assert result.ok and result.views == 3
    x = torch.cat(seen)  # (views, 3, T, 32, 32), normalised
    mean = torch.tensor(protocol.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(protocol.std).view(1, 3, 1, 1, 1)
    pixels = ((x * std + mean) * 255).round().clamp(0, 255).byte().permute(0, 2, 3, 4, 1)
    assert numbers_in(pixels.numpy()) == expected_indices([i / 30 for i in range(60)], protocol)


def test_overlapping_clips_keep_each_clips_frames(tmp_path):
    """Three clips over 15 frames interleave without sharing a frame (0,3,6,9 / 1,4,7,10 /
    2,5,8,11): the decoder reads them in file order, and each clip gets its own back."""
    video = write_video(tmp_path / "overlap.mp4", frames=15, fps=30)
    protocol = tiny_protocol(clips=3, rate=3)
    prepared = prepare(Task(0, str(video), "video"), protocol)
    wanted = expected_indices([i / 30 for i in range(15)], protocol)
    assert len(set(wanted)) == len(wanted) and wanted != sorted(wanted)
    assert numbers_in(prepared.views) == wanted


def test_decords_frames_come_over_without_a_copy(tmp_path):
    from mvit_cli.media.decode import _as_numpy, _decord

    decord = _decord()
    reader = decord.VideoReader(str(write_video(tmp_path / "v.mp4", frames=8)), num_threads=1)
    batch = reader.get_batch([1, 3, 5])
    frames = _as_numpy(batch)
    assert not frames.flags["OWNDATA"]  # decord's own buffer, through DLPack
    assert np.array_equal(frames, batch.asnumpy())
    del batch, reader
    assert [read_number(frame) for frame in frames] == [1, 3, 5]  # still alive


def test_variable_frame_rate_samples_by_time(tmp_path):
    stamps = [0, 100, 200, 300, 400, 425, 450, 475, 500, 525, 550, 575]
    video = write_video(tmp_path / "vfr.mp4", frames=len(stamps), pts_ms=stamps)
    protocol = tiny_protocol(rate=1.5)  # one frame every 50 ms
    prepared = prepare(Task(0, str(video), "video"), protocol)
    assert not prepared.error
    assert numbers_in(prepared.views) == expected_indices([s / 1000 for s in stamps], protocol)


@pytest.mark.parametrize("frames", [1, 3])
def test_videos_shorter_than_a_clip_repeat_frames(tmp_path, frames):
    video = write_video(tmp_path / f"short{frames}.mp4", frames=frames, fps=30)
    prepared = prepare(Task(0, str(video), "video"), tiny_protocol(rate=8))
    got = numbers_in(prepared.views)
    assert len(got) == 4 and got == sorted(got) and got[-1] == frames - 1


def test_normalising_in_place_gives_standardise_exactly():
    from mvit_cli.media.transform import normalise, standardise

    protocol = tiny_protocol()
    views = torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8)
    expected = standardise(views.permute(0, 4, 1, 2, 3).float() / 255.0, protocol.mean,
                           protocol.std)
    assert torch.equal(normalise(views, protocol, video=True), expected)
    assert torch.equal(normalise(views[:, :1], protocol, video=False), expected[:, :, 0])


def test_three_crops_span_the_long_side(tmp_path):
    from mvit_cli.media.transform import make_views

    ramp = np.tile(np.linspace(0, 255, 120).astype(np.uint8)[None, :, None], (40, 1, 3))
    views = make_views(np.stack([ramp] * 4), tiny_protocol(crops=3))
    means = [views[i].mean() for i in range(3)]
    assert views.shape == (3, 4, 32, 32, 3) and means[0] < means[1] < means[2]
    portrait = np.transpose(ramp, (1, 0, 2))
    views = make_views(np.stack([portrait] * 4), tiny_protocol(crops=3))
    means = [views[i].mean() for i in range(3)]
    assert means[0] < means[1] < means[2]


@pytest.mark.parametrize("name,codec,size,fps,frames", [
    ("h264.mp4", "libx264", (64, 48), 30, 20),
    ("mpeg4.avi", "mpeg4", (64, 48), 25, 20),
    ("vp9.webm", "libvpx-vp9", (64, 48), 30, 12),
    ("h264.mkv", "libx264", (64, 48), 24, 20),
    ("portrait.mp4", "libx264", (360, 640), 30, 12),
    ("narrow-48.mp4", "libx264", (48, 64), 30, 12),  # widths decord mis-sizes
    ("narrow-72.mkv", "libx264", (72, 108), 25, 12),
    ("square-144.mp4", "libx264", (144, 144), 24, 12),
    ("tenfps.mp4", "libx264", (64, 48), 10, 20),
    ("sixtyfps.mp4", "libx264", (64, 48), 60, 40),
    ("full-hd.mp4", "libx264", (1920, 1080), 30, 3),
    ("minute.mp4", "libx264", (64, 48), 10, 600),
])
def test_containers_codecs_sizes_and_rates(tmp_path, name, codec, size, fps, frames):
    video = write_video(tmp_path / name, frames=frames, fps=fps, width=size[0],
                        height=size[1], codec=codec)
    prepared = prepare(Task(0, str(video), "video"), tiny_protocol())
    assert not prepared.error, prepared.error
    assert prepared.views.shape == (1, 4, 32, 32, 3)
    assert prepared.source_frames == frames
    assert abs(prepared.duration - frames / fps) < 0.15
    got = numbers_in(prepared.views)
    expected = [n % 256 for n in expected_indices([i / fps for i in range(frames)],
                                                  tiny_protocol())]
    assert got == expected


@pytest.mark.parametrize("width,height", [(48, 64), (96, 96), (144, 144)])
def test_widths_decord_mis_sizes_are_read_by_decord_itself(monkeypatch, tmp_path, width, height):
    """decord pads some frame widths into extra channels (media.decode.decode_size); the
    workaround resizes while decoding so that decord reads them right. The PyAV fallback
    would hide a broken workaround behind slower decoding, so here it is not allowed. A
    short side of 64 keeps these sizes under decode_size's other reason to resize."""
    from mvit_cli.media import decode

    def no_fallback(name, protocol):
        raise AssertionError(f"decord failed on {width}x{height}; PyAV fallback taken")

    monkeypatch.setattr(decode, "_decode_with_pyav", no_fallback)
    video = write_video(tmp_path / f"w{width}.mp4", frames=12, fps=24, width=width,
                        height=height)
    protocol = tiny_protocol(short_side=64)
    prepared = prepare(Task(0, str(video), "video"), protocol)
    assert not prepared.error, prepared.error
    assert prepared.views.shape == (1, 4, 32, 32, 3)
    expected = [n % 256 for n in expected_indices([i / 24 for i in range(12)], protocol)]
    assert numbers_in(prepared.views) == expected


def test_images_with_an_image_model(tmp_path):
    files = [write_image(tmp_path / f"picture.{ext}") for ext in ("jpg", "png", "webp")]
    clf = Pipeline.from_model(build_model(TINY_V1_IMAGE),
                              protocol={"short_side": 36, "crop": 32})
    results = list(clf.classify(files, top_k=3, workers=1))
    assert len(results) == 3 and all(r.ok and len(r.labels) == 3 for r in results), results


def test_kind_mismatch_is_a_per_file_error(tmp_path):
    image = write_image(tmp_path / "picture.png")
    video = write_video(tmp_path / "clip.mp4", frames=8)
    video_model = Pipeline.from_model(build_model(TINY_V1), protocol=PROTOCOL)
    [result] = list(video_model.classify(image, workers=1))
    assert "image model" in result.error and "v2-T" in result.error and "B-16" in result.error
    image_model = Pipeline.from_model(build_model(TINY_V1_IMAGE))
    [result] = list(image_model.classify(video, workers=1))
    assert "video model" in result.error and "B-16x4" in result.error


def test_each_row_names_its_own_file_its_error_or_its_warning(tmp_path):
    """Bad files between good ones: each result is of the file it names. A cut AVI is
    classified from the frames that decode, and its row says so."""
    good = write_video(tmp_path / "good.mp4", frames=12)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    whole = write_video(tmp_path / "whole.avi", frames=60, codec="mpeg4")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    clf = Pipeline.from_model(build_model(TINY_V1), protocol=PROTOCOL)
    results = {Path(r.path).name: r for r in clf.classify([good, text, cut], workers=0)}
    assert sorted(results) == ["cut.avi", "good.mp4", "notes.mp4"]
    assert results["good.mp4"].ok and results["good.mp4"].warning == ""
    assert "not a readable video" in results["notes.mp4"].error
    assert results["notes.mp4"].labels == []
    damaged = results["cut.avi"]
    assert damaged.ok and damaged.labels and 0 < damaged.frames < 60
    assert damaged.warning == (f"damaged: {damaged.frames} of the 60 frames its container "
                               "lists decode")


# ---- decoding workers ------------------------------------------------------------------

def _next_results(results, count: int, within: float) -> list:
    """Up to `count` results (Nones are the pool's waits) within `within` seconds."""
    got, deadline = [], time.monotonic() + within
    while len(got) < count and time.monotonic() < deadline:
        result = next(results)
        if result is not None:
            got.append(result)
    return got


def test_taking_turns_decodes_only_the_files_asked_for(tmp_path):
    tasks = [Task(i, str(write_video(tmp_path / f"v{i}.mp4", frames=12)), "video")
             for i in range(5)]
    with DecodePool(2, tiny_protocol(), timeout=60, take_turns=True) as pool:
        results = pool.run(tasks)
        assert _next_results(results, 1, within=1.5) == []  # nothing asked for yet
        pool.request(2)
        first = _next_results(results, 2, within=60)
        assert len(first) == 2 and pool.outstanding == 0
        assert _next_results(results, 1, within=1.5) == []  # the model's turn: no decoding
        pool.request(10)
        rest = [result for result in results if result is not None]
    assert sorted(r.index for r in first + rest) == list(range(5))
    assert all(r.views is not None and not r.error for r in first + rest)


def test_a_pool_kept_across_runs_takes_turns_in_each(tmp_path):
    """What one run was granted must not let the next decode unasked beside the model."""
    tasks = [Task(i, str(write_video(tmp_path / f"v{i}.mp4", frames=12)), "video")
             for i in range(4)]
    with DecodePool(1, tiny_protocol(), timeout=60, take_turns=True) as pool:
        results = pool.run(tasks[:2])
        pool.request(2)
        assert len(_next_results(results, 2, within=60)) == 2
        results.close()
        results = pool.run(tasks[2:])
        assert _next_results(results, 1, within=1.5) == []
        pool.request(1)
        assert [r.index for r in _next_results(results, 1, within=60)] == [2]
        results.close()


def test_a_file_that_hangs_is_stopped_at_its_deadline_and_its_worker_replaced(tmp_path):
    """Opening a FIFO nobody writes to blocks forever: that file gets the timeout's error,
    its worker is replaced, and the next file is decoded by the new one."""
    hangs = tmp_path / "hangs.mp4"
    os.mkfifo(hangs)
    good = write_video(tmp_path / "good.mp4", frames=12)
    done, deadline = [], time.monotonic() + 30
    with DecodePool(1, tiny_protocol(), timeout=1) as pool:
        first = pool.workers[0].process.pid
        for result in pool.run([Task(0, str(hangs), "video"), Task(1, str(good), "video")]):
            if result is not None:
                done.append(result)
            if time.monotonic() > deadline and not done:  # never stopped: end it, and fail
                for worker in pool.workers:
                    worker.process.kill()
        assert pool.workers[0].process.pid != first
    by_index = {r.index: r for r in done}
    assert by_index[0].error == "decoding took longer than 1 s and was stopped"
    assert not by_index[1].error and by_index[1].views.shape == (1, 4, 32, 32, 3)


_EARLY_SERVER = """
import sys
from multiprocessing import forkserver
from mvit_cli.engines.local.decoder_server import start_early
start_early()
server = forkserver._forkserver._forkserver_pid
assert server is not None and "torch" not in sys.modules, "the server waits for torch"
from mvit_cli import get_config
from mvit_cli.engines.local.workers import DecodePool
from mvit_cli.media.protocol import protocol_for
with DecodePool(1, protocol_for(get_config("B-16x4"), None, 1, 1), timeout=60) as pool:
    worker = pool.workers[0].process.pid
    with open(f"/proc/{worker}/stat") as stat:
        print(int(stat.read().rsplit(")", 1)[1].split()[1]) == server)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_the_decoders_server_starts_before_torch_and_their_workers_fork_from_it():
    """Commands that decode start the fork server first thing (its imports then overlap
    the command's own); the pool made later forks from that same server."""
    done = subprocess.run([sys.executable, "-c", _EARLY_SERVER], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_without_turns_workers_decode_ahead_unasked(tmp_path):
    tasks = [Task(i, str(write_video(tmp_path / f"v{i}.mp4", frames=12)), "video")
             for i in range(4)]
    with DecodePool(1, tiny_protocol(), timeout=60, prefetch=2) as pool:
        done = [result for result in pool.run(tasks) if result is not None]
    assert sorted(r.index for r in done) == [0, 1, 2, 3]


# ---- the command, end to end ---------------------------------------------------------------

def mvit(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "mvit_cli.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_every_bad_input_is_a_row_and_the_good_ones_are_labelled(tmp_path, tiny_weights):
    media = tmp_path / "media"
    (media / "empty folder").mkdir(parents=True)
    good = [write_video(media / "clip one.mp4", frames=10),
            write_video(media / "vidéo ünïcode.mkv", frames=10)]
    (media / "empty.mp4").write_bytes(b"")
    (media / "notes.mp4").write_text("this is not a video\n")
    (media / "noise.avi").write_bytes(np.random.default_rng(1).bytes(5000))
    whole = write_video(tmp_path / "whole.mp4", frames=60).read_bytes()
    (media / "cut off.mp4").write_bytes(whole[: len(whole) // 3])
    write_audio_only(media / "audio only.mp4")
    (media / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    out = tmp_path / "labels.csv"
    result = mvit("classify", media, "--weights", tiny_weights, "-o", out, "--workers", "2",
                  "--timeout", "30")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    for path in good:
        assert rows[path.name]["error"] == "" and rows[path.name]["label_1"].startswith("action")
        assert float(rows[path.name]["score_1"]) > 0
    expected_errors = {"empty.mp4": "empty", "notes.mp4": "", "noise.avi": "",
                       "cut off.mp4": "", "audio only.mp4": "audio", "dangling.mp4": ""}
    for name, words in expected_errors.items():
        error = rows[name]["error"]
        assert error and "\n" not in error and words in error, (name, error)
    assert "2 of" in result.stderr.splitlines()[-1]


def test_a_folder_that_cannot_be_listed_is_a_row_not_a_silent_gap(tmp_path, tiny_weights,
                                                                 monkeypatch):
    media = tmp_path / "media"
    (media / "seen").mkdir(parents=True)
    (media / "locked").mkdir()
    write_video(media / "seen" / "a.mp4", frames=8)
    write_video(media / "locked" / "b.mp4", frames=8)
    listing = os.scandir

    def scandir(path="."):  # what chmod 000 does to a user who is not root (tests run as root)
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "labels.csv"
    result = run_cli("classify", media, "--weights", tiny_weights, "-o", out, "--workers", "0")
    assert result.exit_code == 1, result.output
    rows = {Path(r["path"]).name: r for r in read_rows(out)}
    assert rows["a.mp4"]["error"] == "" and "b.mp4" not in rows
    assert rows["locked"]["error"] == ("cannot read this folder (Permission denied): its files "
                                       "were not listed")
    top = run_cli("classify", media / "locked", "--weights", tiny_weights)
    assert top.exit_code == 2 and "cannot read this folder (Permission denied)" in top.stderr


@pytest.mark.slow
def test_a_hanging_file_is_stopped_and_the_run_goes_on(tmp_path, tiny_weights):
    folder = tmp_path / "media"
    folder.mkdir()
    write_video(folder / "good.mp4", frames=10)
    os.mkfifo(folder / "hangs.mp4")  # opening it blocks forever: nobody writes to it
    out = tmp_path / "out.jsonl"
    started = time.monotonic()
    result = mvit("classify", folder, "--weights", tiny_weights, "-o", out, "--timeout", "3",
                  "--workers", "1")
    assert time.monotonic() - started < 120
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert "longer than 3 s" in rows["hangs.mp4"]["error"]
    assert rows["good.mp4"]["error"] == "" and rows["good.mp4"]["label_1"]
    assert result.returncode == 1


@pytest.mark.slow
def test_single_file_prints_a_table_and_exits_0(tmp_path, tiny_weights):
    video = write_video(tmp_path / "clip.mp4", frames=12)
    result = mvit("classify", video, "--weights", tiny_weights, "-k", "3")
    assert result.returncode == 0, result.stderr
    assert "action" in result.stdout and "probability" in result.stdout
    assert result.stdout.count("action") == 3


@pytest.mark.slow
def test_json_output_and_usage_errors(tmp_path, tiny_weights):
    video = write_video(tmp_path / "clip.mp4", frames=12)
    out = tmp_path / "out.json"
    assert mvit("classify", video, "--weights", tiny_weights, "-o", out).returncode == 0
    [record] = json.loads(out.read_text())
    assert record["path"] == str(video) and record["error"] == "" and record["views"] == 1
    assert mvit("classify", video, "--weights", tiny_weights, "--crops", "2").returncode == 2
    assert mvit("classify", video, "--model", "B-99x9").returncode == 2
    assert mvit("classify", video, "--weights", tiny_weights, "-o", tmp_path / "x.txt").returncode == 2


def _folder_of_clips(root: Path, count: int) -> Path:
    folder = root / "clips"
    folder.mkdir()
    for i in range(count):
        write_video(folder / f"clip{i:02d}.mp4", frames=8)
    return folder


def _wait_for_rows(path: Path, rows: int, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") > rows:
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} never reached {rows} rows")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupted_runs_resume_without_duplicates(tmp_path, tiny_weights, how):
    folder = _folder_of_clips(tmp_path, 24)
    out = tmp_path / "labels.csv"
    command = [sys.executable, "-m", "mvit_cli.cli", "classify", str(folder), "--weights",
               str(tiny_weights), "-o", str(out), "--workers", "1", "--batch-size", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, **INTERRUPTIBLE)
    _wait_for_rows(out, 3)
    process.send_signal(getattr(signal, how))
    _, stderr = process.communicate(timeout=60)
    if how == "SIGINT":
        assert process.returncode == 130
        assert "Traceback" not in stderr
        assert stderr.strip().splitlines()[-1].startswith("interrupted:")
    else:
        with open(out, "a", encoding="utf-8") as handle:  # a row torn by the kill
            handle.write(f"{folder}/clip23.mp4,action 1,0.5")
    done_before = len(read_rows(out)) - (1 if how == "SIGKILL" else 0)
    assert 0 < done_before < 24

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "already in the output" in again.stderr
    rows = read_rows(out)
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == 24
    assert all(r["error"] == "" and r["label_1"] for r in rows)
