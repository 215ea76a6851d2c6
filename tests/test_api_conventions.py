"""The Python API behaves as users of other libraries expect: a list in, a list out in its
order; results in the inputs' order when asked; segments from a timeline without the CLI;
and the model's input made from frames the caller decoded, as torchvision's transforms do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mvit_cli
from conftest import register_tiny_architectures, save_tiny
from media import write_video
from mvit_cli.jobs.classify import FileResult
from mvit_cli.media.discover import InputItem


@pytest.fixture(scope="module")
def clf(tmp_path_factory):
    register_tiny_architectures()
    weights = save_tiny(tmp_path_factory.mktemp("w") / "tiny.safetensors")
    return mvit_cli.load(weights, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"v{i}.mp4", frames=8 + 7 * i) for i in range(3)]


def test_a_list_of_files_gives_a_list_of_answers_in_its_order(clf, videos):
    one_by_one = [clf(video, top_k=2) for video in videos]
    together = clf(list(reversed(videos)), top_k=2)
    assert together == list(reversed(one_by_one))
    assert len({tuple(a["score"] for a in answer) for answer in one_by_one}) == 3


def test_a_list_with_a_bad_file_names_it_in_one_error(clf, videos, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(mvit_cli.MediaError, match="bad.mp4"):
        clf([videos[0], bad])


def test_ordered_results_follow_the_inputs_whatever_order_they_finish_in():
    from mvit_cli.api import in_order

    items = [InputItem(f"f{i}", "video") for i in range(5)] + [InputItem("f1", "video")]
    finished = [FileResult(p) for p in ("f3", "f1", "f0", "f4", "f1", "f2")]
    assert [r.path for r in in_order(iter(finished), items)] == [
        "f0", "f1", "f2", "f3", "f4", "f1"]
    assert len(list(in_order(iter(finished[:4]), items))) == 4  # nothing lost or invented


def test_classify_in_order_gives_the_same_results(clf, videos):
    reordered = videos[::-1]
    ordered = list(clf.classify(reordered, workers=0, ordered=True))
    assert [r.path for r in ordered] == [str(v) for v in reordered]
    as_done = {r.path: r.scores for r in clf.classify(reordered, workers=0)}
    assert {r.path: r.scores for r in ordered} == as_done


def test_segments_are_the_clis(clf, videos, tmp_path):
    import json

    from conftest import run_cli

    [video] = clf.timeline([videos[2]], workers=0)
    out = tmp_path / "segments.json"
    weights = clf.source.weights
    result = run_cli("timeline", videos[2], "--weights", weights, "-o", out, "--smooth", "2",
                     "--threshold", "0.05", "--workers", "0", "--device", "cpu",
                     "--precision", "fp32")
    assert result.exit_code == 0, result.output
    [written] = json.loads(out.read_text())["results"].values()
    found = clf.segments(video, smooth=2, threshold=0.05)
    assert [(s.label, round(s.start, 3), round(s.end, 3)) for s in found] == [
        (s["label"], round(s["segment"][0], 3), round(s["segment"][1], 3)) for s in written]
    assert found and found != clf.segments(video, smooth=1, threshold=0.99)
    with pytest.raises(mvit_cli.UsageError):
        clf.segments(video, smooth=0)


def test_transform_makes_from_decoded_frames_what_a_file_gives(clf, videos):
    """The frames the pipeline itself samples from a file, handed to `transform`, give the
    views `preprocess` gives for that file, bit for bit."""
    import av

    protocol = clf.protocol_with(1, 1)
    with av.open(str(videos[1])) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    from pathlib import Path

    from mvit_cli.media.decode import decode

    frames = decode(Path(videos[1]), "video", protocol).frames  # the pipeline's own sampling
    views = clf.transform(frames)
    assert torch.equal(views, clf.preprocess(videos[1]))
    assert views.shape == (1, 3, protocol.frames, protocol.crop, protocol.crop)
    with pytest.raises(mvit_cli.UsageError, match="frames"):
        clf.transform(decoded[:protocol.frames - 1])
    with pytest.raises(mvit_cli.UsageError, match="uint8"):
        clf.transform(decoded[:protocol.frames].astype(np.float32))


def test_frames_and_fps_override_the_protocol_everywhere(clf, videos, tmp_path):
    """As Hugging Face's num_frames and frame_sampling_rate: the clips the model gets, the
    protocol outputs record, and a resume made with other ones refused."""
    from conftest import run_cli

    sampled = mvit_cli.load(clf.source.weights, device="cpu", precision="fp32",
                            frames=6, fps=5.0)
    protocol = sampled.protocol_with(1, 1)
    assert (protocol.frames, protocol.frame_interval) == (6, 0.2)
    assert sampled.preprocess(videos[2]).shape[2] == 6
    [result] = sampled.classify([videos[2]], workers=0)
    assert result.ok and result.scores[0] != clf(videos[2], top_k=5)[0]["score"]
    with pytest.raises(mvit_cli.UsageError, match="frames"):
        sampled.sample(frames=0)
    out = tmp_path / "rows.csv"
    args = ("classify", videos[2], "-w", clf.source.weights, "-o", out, "--workers", "0",
            "--device", "cpu", "--precision", "fp32")
    assert run_cli(*args, "--frames", "6", "--fps", "5").exit_code == 0
    assert "6 frames at 5 fps" in out.read_text()
    refused = run_cli(*args)  # the protocol's own frames: another protocol than the output's
    assert refused.exit_code == 2 and "other settings" in refused.stderr


def test_an_image_model_takes_no_frames(tmp_path):
    from conftest import TINY_V2_IMAGE

    weights = save_tiny(tmp_path / "image.safetensors", cfg=TINY_V2_IMAGE)
    with pytest.raises(mvit_cli.UsageError, match="image model"):
        mvit_cli.load(weights, device="cpu", frames=8)
