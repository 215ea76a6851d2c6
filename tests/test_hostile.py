"""Hostile input, case by case: one clear line and the right exit status, nothing lost,
nothing of the user's overwritten, memory bounded by the work and not by what a file claims.

Real files made here; the `mvit` entry point in this process where that is enough, in a
subprocess where the case is about processes (locks, memory).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import mvit_cli
from mvit_cli import CheckpointError
from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native, save_native

from conftest import PEAK_KB, PROTOCOL, TINY_V1, reference, register_tiny_architectures, run_cli, save_tiny
from media import write_video


@pytest.fixture(autouse=True)
def _tiny():
    register_tiny_architectures()


def classify(*args):
    return run_cli("classify", *args, "--workers", "0")


def one_line(result, code: int, *words: str) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    return [json.loads(line) for line in path.read_text("utf-8").split("\n") if line]


# ---- 1. names --------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_name_that_is_not_utf8_gets_its_row_and_resumes(tmp_path, tiny_weights, suffix):
    folder = tmp_path / "in"
    folder.mkdir()
    odd = os.fsdecode(b"caf\xe9 \xff\xfe.mp4")  # Latin-1 and stray bytes, as old disks hold
    write_video(folder / "plain.mp4", frames=8)
    (folder / odd).write_bytes((folder / "plain.mp4").read_bytes())
    for name in ("line\u2028sep.mp4", "next\u0085line.mp4"):
        (folder / name).write_bytes((folder / "plain.mp4").read_bytes())
    out = tmp_path / f"labels{suffix}"
    assert classify(folder, "--weights", tiny_weights, "-o", out).exit_code == 0
    written = rows(out)
    assert len(written) == 4 and all(r["error"] == "" for r in written)
    assert any(r["path"].endswith("caf\\xe9 \\xff\\xfe.mp4") for r in written)
    again = classify(folder, "--weights", tiny_weights, "-o", out)
    assert again.exit_code == 0 and "4 already in the output" in again.stderr
    assert len(rows(out)) == 4


def test_a_name_that_is_not_utf8_is_labelled_without_an_output(tmp_path, tiny_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    write_video(folder / os.fsdecode(b"\xff.mp4"), frames=8)
    write_video(folder / "plain.mp4", frames=8)
    result = classify(folder, "--weights", tiny_weights)
    assert result.exit_code == 0, result.output
    assert "\\xff.mp4\taction" in result.stdout


# ---- 2. outputs that are not ours -------------------------------------------------------------

@pytest.mark.parametrize("name,content", [
    ("x.json", b"{}"), ("x.json", b"[1, 2]"), ("x.jsonl", b"1\n2\n"),
    ("x.jsonl", b'{"a": 1}\nnot json\n'), ("x.csv", b"\xff\xfe\x00h"),
    ("x.jsonl", b"\xff\xfe{}\n")])
def test_outputs_that_are_not_ours_are_refused_untouched(tmp_path, tiny_weights, name, content):
    video = write_video(tmp_path / "clip.mp4", frames=8)
    out = tmp_path / name
    out.write_bytes(content)
    one_line(classify(video, "--weights", tiny_weights, "-o", out), 2, "--overwrite")
    assert out.read_bytes() == content


# ---- 5. a checkpoint that asks for more than it holds -----------------------------------------

@pytest.mark.parametrize("model", [[], ["--model", "tiny-v1"]])
def test_a_head_that_claims_billions_of_classes_is_refused_before_allocating(tmp_path, model):
    _, weights, _, _ = reference("tv_v1_tiny")
    state = load_file(str(weights))
    state["head.1.weight"] = torch.empty(2**31, 0)  # no bytes on disk, 2^31 x 16 in a model
    state["head.1.bias"] = torch.empty(0)
    path = tmp_path / "greedy.safetensors"
    save_file(state, str(path))
    assert path.stat().st_size < 1_000_000
    code = ("import sys; sys.path.insert(0, 'tests'); from conftest import "
            "register_tiny_architectures; register_tiny_architectures(); "
            "import mvit_cli.cli as c\ntry:\n    c.main(['inspect', *sys.argv[1:]])\n"
            f"except SystemExit as e:\n    print('EXIT', e.code, {PEAK_KB} // 1024)")
    done = subprocess.run([sys.executable, "-c", code, str(path), *model], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parent.parent)
    exit_line = [line for line in done.stdout.splitlines() if line.startswith("EXIT")]
    assert exit_line, done.stdout + done.stderr
    _, code_, peak_mb = exit_line[0].split()
    assert code_ == "1" and int(peak_mb) < 1500, done.stdout + done.stderr
    assert ("does not fit" if model else "fit none") in done.stderr
    assert "Traceback" not in done.stderr


# ---- 6. two runs, one output -----------------------------------------------------------------

@pytest.mark.slow
def test_a_second_run_on_the_same_output_refuses_at_once(tmp_path, tiny_weights):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        write_video(folder / f"c{i:02d}.mp4", frames=8)
    os.mkfifo(folder / "waits.mp4")  # holds the first run for its --timeout
    out = tmp_path / "labels.csv"
    command = [sys.executable, "-m", "mvit_cli.cli", "classify", str(folder), "--weights",
               str(tiny_weights), "-o", str(out), "--workers", "1", "--timeout", "20"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not out.exists():
        time.sleep(0.1)
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    first.communicate(timeout=300)
    assert second.returncode == 2 and "another mvit run is writing it" in second.stderr
    assert first.returncode == 1  # the fifo's row is an error; the rest are labelled
    written = rows(out)
    assert len(written) == 7 == len({r["path"] for r in written})


# ---- 7. a full disk ------------------------------------------------------------------------

def test_a_full_disk_at_the_start_is_one_line(tmp_path, tiny_weights):
    video = write_video(tmp_path / "clip.mp4", frames=8)
    out = tmp_path / "labels.csv"
    out.symlink_to("/dev/full")  # every write: No space left on device
    one_line(classify(video, "--weights", tiny_weights, "-o", out), 1, "No space left")


def test_a_full_disk_mid_run_keeps_the_rows_written(tmp_path, tiny_weights, monkeypatch):
    import errno

    from mvit_cli.outputs import rows as output

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        write_video(folder / f"c{i}.mp4", frames=8)
    out = tmp_path / "labels.csv"
    real_write, calls = output.FileRowsCsv.write, []

    def write(self, result):
        calls.append(result.path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, result)

    monkeypatch.setattr(output.FileRowsCsv, "write", write)
    one_line(classify(folder, "--weights", tiny_weights, "-o", out), 1,
             "No space left on device", "2 rows written before are kept")
    assert len(rows(out)) == 2
    monkeypatch.setattr(output.FileRowsCsv, "write", real_write)
    again = classify(folder, "--weights", tiny_weights, "-o", out)
    assert again.exit_code == 0 and len(rows(out)) == 4


# ---- 8. our own metadata, broken -----------------------------------------------------------

@pytest.mark.parametrize("key,value,words", [
    ("mvit.config", "{not json", "mvit.config metadata is not valid JSON"),
    ("mvit.config", '{"name": "x"}', "mvit.config metadata does not describe"),
    ("mvit.labels", "[1, 2", "mvit.labels metadata is not valid JSON"),
    ("mvit.labels", '{"a": 1}', "mvit.labels metadata is not a JSON list"),
    ("mvit.protocol", "[]", "mvit.protocol metadata is not a JSON dict"),
    ("mvit.protocol", '{"fps": "fast"}', "protocol's fps must be a positive number"),
    ("mvit.protocol", '{"colour": 1}', "unknown field 'colour'"),
    ("mvit.pool_norm_eps", "tiny", "mvit.pool_norm_eps metadata is not a number")])
def test_broken_metadata_is_one_line_naming_the_field(tmp_path, key, value, words):
    path = save_tiny(tmp_path / "tiny.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as reader:
        metadata = dict(reader.metadata())
    metadata[key] = value
    save_file(tensors, str(path), metadata=metadata)
    video = write_video(tmp_path / "clip.mp4", frames=8)
    one_line(classify(video, "--weights", path), 1, words)
    assert run_cli("inspect", path).exit_code in (1, 2)


# ---- 9. weights that are not numbers --------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    model = mvit_cli.build_model(TINY_V1)
    with torch.no_grad():
        model.blocks[1].mlp.fc1.weight[0, 0] = bad
    path = tmp_path / "bad.safetensors"
    save_native(model, path, extra={"mvit.protocol": json.dumps(PROTOCOL)})
    video = write_video(tmp_path / "clip.mp4", frames=8)
    one_line(classify(video, "--weights", path), 1, "blocks.1.mlp.fc1.weight",
             "NaN or infinite")
    one_line(run_cli("inspect", path), 1, "NaN or infinite")
    pth = tmp_path / "bad.pth"
    torch.save(from_native(model.state_dict(), LAYOUTS_BY_NAME["torchvision"], TINY_V1), pth)
    one_line(run_cli("weights", "import", pth, "--name", "bad"), 1, "NaN or infinite")
    with pytest.raises(CheckpointError):
        mvit_cli.load(pth)


# ---- 11. media -------------------------------------------------------------------------------

def _image_model_weights(tmp_path) -> Path:
    from conftest import TINY_V1_IMAGE

    path = tmp_path / "image.safetensors"
    save_native(mvit_cli.build_model(TINY_V1_IMAGE), path,
                extra={"mvit.protocol": json.dumps({"short_side": 36, "crop": 32})})
    return path


def test_sixteen_bit_and_palette_images_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    from mvit_cli.media.decode import decode_image

    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (48, 1))
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    grey = decode_image(tmp_path / "deep.png").frames[0]
    assert abs(grey.mean() - 127.5) < 2 and (grey == 255).mean() < 0.05
    assert grey[0, 0, 0] == 0 and grey[0, -1, 0] == 255
    colours = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    palette = Image.fromarray(colours).convert("P", palette=Image.ADAPTIVE, colors=8)
    palette.save(tmp_path / "palette.png")
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(decode_image(tmp_path / "palette.png").frames[0], expected)
    weights = _image_model_weights(tmp_path)
    result = run_cli("classify", tmp_path / "deep.png", tmp_path / "palette.png", "--weights",
                     weights, "--workers", "0")
    assert result.exit_code == 0, result.output


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    from mvit_cli.media.decode import decode_image

    picture = np.zeros((30, 60, 3), np.uint8)
    picture[:, :20] = 255  # a white band on the left, as stored
    image = Image.fromarray(picture)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view": a phone held upright
    image.save(tmp_path / "phone.jpg", exif=exif)
    frame = decode_image(tmp_path / "phone.jpg").frames[0]
    assert frame.shape[:2] == (60, 30)  # shown upright, portrait
    assert frame[:20].mean() > 200 and frame[-20:].mean() < 50  # the band is now on top


def test_a_cut_video_is_classified_from_the_frames_that_decode(tmp_path, tiny_weights):
    import av

    from media import numbered_frame

    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for n in range(90):
            frame = av.VideoFrame.from_ndarray(numbered_frame(n, 64, 48), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    data = whole.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.9)])  # index at the front
    plain = write_video(tmp_path / "plain.mp4", frames=90)
    (tmp_path / "noindex.mp4").write_bytes(plain.read_bytes()[: plain.stat().st_size // 2])
    out = tmp_path / "labels.csv"
    result = classify(tmp_path / "cut.mp4", tmp_path / "noindex.mp4", "--weights", tiny_weights,
                      "-o", out)
    assert result.exit_code == 1
    by_name = {Path(r["path"]).name: r for r in rows(out)}
    cut = by_name["cut.mp4"]
    assert cut["error"] == "" and cut["label_1"].startswith("action")
    decoded = int(cut["frames"])
    assert 50 < decoded < 90 and f"{decoded} of the 90 frames" in cut["warning"]
    assert "index" in by_name["noindex.mp4"]["error"]
    for row in by_name.values():
        assert "/github" not in row["error"] and ".cc" not in row["error"]


# ---- 12. bounds -----------------------------------------------------------------------------

def test_requests_that_cannot_fit_in_memory_are_usage_errors(tmp_path, tiny_weights):
    video = write_video(tmp_path / "clip.mp4", frames=8)
    big = dict(PROTOCOL, crop=224, short_side=256)
    path = tmp_path / "big.safetensors"
    save_native(mvit_cli.build_model(TINY_V1), path, extra={"mvit.protocol": json.dumps(big)})
    one_line(classify(video, "--weights", path, "--clips", "100000"), 2, "at most")
    one_line(run_cli("profile", "-m", "B-16x4", "--frames", "100000"), 2, "GB for its activations")


def test_an_unusable_cache_folder_is_one_line(tmp_path, tiny_weights, monkeypatch):
    home = tmp_path / "home"
    home.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MVIT_HOME", str(home))
    video = write_video(tmp_path / "clip.mp4", frames=8)
    for args in (["weights", "list"], ["models"], ["classify", video, "--workers", "0"]):
        result = run_cli(*args)
        assert result.exit_code == 1 and result.stderr.startswith("error:"), (args, result.output)


def test_the_cache_folder_is_mvit_home_made_on_first_use(tmp_path, monkeypatch):
    from mvit_cli.paths import mvit_home

    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "shared" / "mvit"))
    assert mvit_home() == tmp_path / "shared" / "mvit" and mvit_home().is_dir()
    monkeypatch.delenv("MVIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert mvit_home() == tmp_path / "user" / ".cache" / "mvit" and mvit_home().is_dir()
