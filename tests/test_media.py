"""Decoding, sampling and preprocessing, file by file: what each step hands the next.

Real files written here with PyAV and Pillow, decoded by the same functions a classify run
uses; numbered frames (tests/media.py) say which moment each sampled frame shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mvit_cli import Pipeline, build_model
from mvit_cli.engines.local.workers import Task, prepare
from mvit_cli.media.decode import _decode_with_decord, _decode_with_pyav, decode
from mvit_cli.media.protocol import protocol_for

from conftest import PROTOCOL, TINY_V1, TINY_V1_IMAGE
from media import read_number, write_video
from media import write_colour_video as write_one_colour

# A colour whose three channels differ, so that swapped channels cannot pass unseen.
COLOUR = (200, 40, 110)


def tiny_protocol(clips=1, crops=1, **changes):
    return protocol_for(TINY_V1, {**PROTOCOL, **changes}, clips, crops)


def numbers(frames: np.ndarray) -> list[int]:
    return [read_number(frame) for frame in frames]


def write_colour_video(path: Path, colour=COLOUR, frames: int = 6, width: int = 64,
                       height: int = 48) -> Path:
    return write_one_colour(path, colour, frames, width=width, height=height)


# ---- sampling ------------------------------------------------------------------------------

def test_uniform_protocols_take_the_centre_of_each_slice(tmp_path):
    """Weights that spread T frames over a clip see the middle of T equal slices of it: 40
    frames at 30 fps in 4 slices of 10 frames are frames 5, 15, 25 and 35."""
    video = write_video(tmp_path / "numbered.mp4", frames=40, fps=30)
    protocol = tiny_protocol(uniform=True)
    assert protocol.frame_interval == 0
    prepared = prepare(Task(0, str(video), "video"), protocol)
    assert [read_number(frame) for frame in prepared.views[0]] == [5, 15, 25, 35]


def test_the_frame_by_frame_fallback_samples_what_decord_samples(tmp_path):
    """A file decord cannot read whole is decoded packet by packet with PyAV: the same length,
    the same moments and the same frames, in the clips' own order (three overlapping clips
    interleave: 0,3,6,9 / 1,4,7,10 / 2,5,8,11)."""
    video = write_video(tmp_path / "overlap.mp4", frames=15, fps=30)
    protocol = tiny_protocol(clips=3, rate=3)
    whole = _decode_with_decord(str(video), protocol)
    fallback = _decode_with_pyav(str(video), protocol)
    assert whole.duration == pytest.approx(0.5, abs=1e-3)
    assert fallback.duration == pytest.approx(whole.duration, abs=1e-3)
    assert fallback.source_frames == whole.source_frames == 15
    assert numbers(whole.frames) == numbers(fallback.frames) == [0, 3, 6, 9, 1, 4, 7, 10,
                                                                 2, 5, 8, 11]


# ---- damage --------------------------------------------------------------------------------

def test_only_a_video_missing_frames_is_called_damaged(tmp_path):
    """An AVI header lists its frames; cut in half, decord reads the frames that remain and the
    warning says how many of the listed ones that is. A whole file carries no warning."""
    whole = write_video(tmp_path / "whole.avi", frames=60, codec="mpeg4")
    assert decode(whole, "video", tiny_protocol()).warning == ""
    assert decode(write_video(tmp_path / "whole.mp4", frames=20), "video",
                  tiny_protocol()).warning == ""
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    sampled = decode(cut, "video", tiny_protocol())
    assert 0 < sampled.source_frames < 60
    assert sampled.warning == (f"damaged: {sampled.source_frames} of the 60 frames its "
                               "container lists decode")


# ---- sizes ---------------------------------------------------------------------------------

def test_large_sources_are_decoded_at_twice_the_target_not_below(tmp_path):
    """A 640x480 video for a short side of 40 is decoded small (cheap) but with its short
    side still at least twice the target, which the final antialiased resize needs; both
    decoders agree."""
    video = write_video(tmp_path / "large.mp4", frames=4, width=640, height=480)
    protocol = tiny_protocol()
    target = protocol.resize_target()
    for sampled in (_decode_with_decord(str(video), protocol),
                    _decode_with_pyav(str(video), protocol)):
        height, width = sampled.frames.shape[1:3]
        assert 2 * target <= min(height, width) < 480
        assert width / height == pytest.approx(640 / 480, rel=0.05)


def test_widths_decord_mis_sizes_are_widened_not_narrowed(tmp_path):
    """decord's workaround for a 96-pixel width resizes to a multiple of 64: the next one up
    (128), never one that throws detail away (64)."""
    video = write_video(tmp_path / "w96.mp4", frames=4, width=96, height=64)
    sampled = _decode_with_decord(str(video), tiny_protocol(short_side=64))
    height, width = sampled.frames.shape[1:3]
    assert width >= 96 and width % 64 == 0 and height >= 64


# ---- colours and normalisation -------------------------------------------------------------

def test_both_decoders_give_rgb(tmp_path):
    video = write_colour_video(tmp_path / "colour.mp4")
    for sampled in (_decode_with_decord(str(video), tiny_protocol()),
                    _decode_with_pyav(str(video), tiny_protocol())):
        means = sampled.frames.reshape(-1, 3).mean(axis=0)
        assert np.allclose(means, COLOUR, atol=8), means


@pytest.mark.parametrize("kind", ["video", "image"])
def test_the_model_gets_each_channel_standardised_by_its_own_mean_and_std(tmp_path, kind):
    """The published statistics, written out here: Kinetics' for video weights, ImageNet's
    (three different channels) for image weights, each applied to its own channel of RGB."""
    from PIL import Image

    if kind == "video":
        path = write_colour_video(tmp_path / "colour.mp4")
        clf = Pipeline.from_model(build_model(TINY_V1), protocol=PROTOCOL)
        mean, std, tolerance = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 8 / 255 / 0.225
    else:
        path = tmp_path / "colour.png"
        Image.fromarray(np.full((30, 40, 3), COLOUR, np.uint8)).save(path)
        clf = Pipeline.from_model(build_model(TINY_V1_IMAGE),
                                  protocol={"short_side": 36, "crop": 32})
        mean, std, tolerance = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1e-5
    x = clf.preprocess(path)
    assert x.shape == ((1, 3, 4, 32, 32) if kind == "video" else (1, 3, 32, 32))
    for channel in range(3):
        expected = (COLOUR[channel] / 255 - mean[channel]) / std[channel]
        got = x[:, channel].mean().item()
        assert got == pytest.approx(expected, abs=tolerance), (channel, got, expected)
    assert torch.isfinite(x).all()


# ---- resizing and cropping -----------------------------------------------------------------

def test_the_short_side_is_resized_and_the_long_side_floored():
    """As torchvision's test presets: the short side to the target, the long side keeping the
    aspect ratio, rounded down (121 x 36 / 40 = 108.9 becomes 108)."""
    from mvit_cli.media.transform import resize_short_side

    landscape = torch.zeros(1, 3, 40, 121, dtype=torch.uint8)
    assert resize_short_side(landscape, 36, "bilinear").shape[-2:] == (36, 108)
    portrait = torch.zeros(1, 3, 121, 40, dtype=torch.uint8)
    assert resize_short_side(portrait, 36, "bilinear").shape[-2:] == (108, 36)


def test_bicubic_protocols_resize_bicubically():
    """Bicubic overshoots at a sharp edge (values beyond both sides of it); bilinear never
    leaves the range between them: which one ran shows in the views."""
    from mvit_cli.media.transform import make_views

    edge = np.full((4, 20, 30, 3), 60, np.uint8)
    edge[:, :, 15:] = 190
    bilinear = make_views(edge, tiny_protocol())
    bicubic = make_views(edge, tiny_protocol(interpolation="bicubic"))
    assert bicubic.dtype == np.uint8 and bicubic.shape == bilinear.shape == (1, 4, 32, 32, 3)
    assert bilinear.min() >= 60 and bilinear.max() <= 190
    assert bicubic.min() < 55 and bicubic.max() > 195


def ramp(height: int, width: int, offset: int = 0) -> np.ndarray:
    """A frame brightening from left to right: a crop's mean says where it was taken."""
    row = np.linspace(0, 127, width)
    return np.tile((row + offset).round().astype(np.uint8)[None, :, None], (height, 1, 3))


def test_the_centre_crop_is_centred():
    from mvit_cli.media.transform import make_views

    frame = ramp(40, 120)
    views = make_views(np.stack([frame] * 4), tiny_protocol())
    assert views.shape == (1, 4, 32, 32, 3)
    assert np.array_equal(views[0, 0], frame[4:36, 44:76])


def test_three_crops_tile_the_frame_resized_to_the_crop():
    """The 3-crop protocol resizes the short side to the crop itself, so that the three
    crops (start, centre, end of the long side) cover the whole frame between them."""
    from mvit_cli.media.transform import make_views, resize_short_side

    frame = ramp(40, 120)
    views = make_views(np.stack([frame] * 4), tiny_protocol(crops=3))
    resized = resize_short_side(torch.from_numpy(frame).permute(2, 0, 1)[None], 32,
                                "bilinear")[0].permute(1, 2, 0).numpy()
    assert resized.shape == (32, 96, 3)
    assert np.array_equal(np.concatenate(list(views[:, 0]), axis=1), resized)


def test_views_come_clip_by_clip_each_in_its_three_crops():
    """(clips x crops) views, clip-major: clip 0's start, centre and end crops, then clip 1's
    (what `preprocess` documents and features are averaged over)."""
    from mvit_cli.media.transform import make_views

    frames = np.stack([ramp(32, 96)] * 4 + [ramp(32, 96, offset=128)] * 4)
    views = make_views(frames, tiny_protocol(clips=2, crops=3))
    assert views.shape == (6, 4, 32, 32, 3)
    means = [float(view.mean()) for view in views]
    assert means == sorted(means)  # clip 1 is brighter than clip 0, end crops than starts
    assert means[2] < 128 <= means[3]


# ---- finding the inputs --------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path) -> Path:
    """A folder as users have them: media in any case of extension, in subfolders, beside
    hidden files and folders (editors', sync tools', ours), notes and archives."""
    root = tmp_path / "in"
    for name in ("b.mp4", "a.MP4", "sub/c.jpg", "sub/deeper/d.MKV", ".hidden.mp4",
                 ".cache/e.mp4", "notes.txt", "README", "x.gz", "y.gz"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not decoded here")
    return root


def test_a_folder_is_walked_for_media_sorted_without_hidden_files(tree):
    from mvit_cli.media.discover import find_inputs

    found = find_inputs([str(tree)])
    assert [(Path(i.path).relative_to(tree).as_posix(), i.kind, i.error) for i in found.items] == [
        ("a.MP4", "video", ""), ("b.mp4", "video", ""), ("sub/c.jpg", "image", ""),
        ("sub/deeper/d.MKV", "video", "")]
    assert all(Path(i.path).is_absolute() for i in found.items) and not found.unmatched
    assert found.skipped_summary() == ("4 files skipped for their extension (.gz 2, .txt 1, "
                                       "no extension 1)")


def test_a_recursive_glob_keeps_only_media(tree, monkeypatch):
    from mvit_cli.media.discover import find_inputs

    monkeypatch.chdir(tree)
    found = find_inputs(["**/*"])
    assert [Path(i.path).relative_to(tree).as_posix() for i in found.items] == [
        "a.MP4", "b.mp4", "sub/c.jpg", "sub/deeper/d.MKV"]
    assert [i.kind for i in find_inputs(["sub/*.jpg"]).items] == ["image"]


def test_arguments_that_name_no_media_say_why(tree, tmp_path):
    from mvit_cli.media.discover import find_inputs

    (tmp_path / "dangling.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (tmp_path / "empty").mkdir()
    found = find_inputs([str(tmp_path / "dangling.mp4"), str(tree / "notes.txt"),
                         str(tmp_path / "absent.mp4"), str(tmp_path / "empty"),
                         str(tree / "*.avi")])
    assert [(Path(i.path).name, i.error) for i in found.items] == [
        ("dangling.mp4", "a symbolic link to nothing"),
        ("notes.txt", "not a video or image file (.txt)"),
        ("absent.mp4", "no such file or folder"),
        ("empty", "no video or image files in this folder"),
        ("*.avi", "the pattern matches no video or image files")]
    assert [argument for argument, _ in found.unmatched] == [str(tmp_path / "absent.mp4"),
                                                            str(tmp_path / "empty"),
                                                            str(tree / "*.avi")]


def test_a_temporary_file_being_written_is_not_an_input(tmp_path):
    """Files mvit writes whole (synthetic clips, outputs) go to a hidden temporary name
    until they are complete: a classify of the same folder meanwhile does not see them."""
    from mvit_cli.fileio import atomic_path
    from mvit_cli.media.discover import find_inputs

    with atomic_path(tmp_path / "clip.mp4", suffix=".mp4") as partial:
        assert partial.parent == tmp_path
        partial.write_bytes(b"half a video")
        assert find_inputs([str(tmp_path)]).items[0].error.startswith("no video or image")
    assert [Path(i.path).name for i in find_inputs([str(tmp_path)]).items] == ["clip.mp4"]


# ---- manifests and URIs --------------------------------------------------------------------

def test_a_text_manifest_skips_comments_and_is_read_from_its_own_folder(tmp_path,
                                                                        monkeypatch):
    from mvit_cli.media.discover import manifest_items

    folder = tmp_path / "lists"
    folder.mkdir()
    manifest = folder / "inputs.txt"
    manifest.write_text("# my clips\nnear.mp4\n\n  ../far/pic.png  \ns3://bucket/key.mov\n"
                        "notes.doc\n")
    monkeypatch.chdir(tmp_path)
    items = manifest_items(Path("lists/inputs.txt"))
    assert [(i.path, i.kind, i.error) for i in items] == [
        (str(folder / "near.mp4"), "video", ""),
        (str(tmp_path / "far" / "pic.png"), "image", ""),
        ("s3://bucket/key.mov", "video", ""),
        (str(folder / "notes.doc"), None, "not a video or image file")]


def test_a_csv_manifest_needs_a_path_column(tmp_path):
    from mvit_cli.errors import UsageError
    from mvit_cli.media.sources import read_manifest

    good = tmp_path / "good.csv"
    good.write_text("label,path\ncat,/data/a.mp4\ndog,\nfox,/data/b.jpg\n")
    assert read_manifest(good) == ["/data/a.mp4", "/data/b.jpg"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\n/data/a.mp4,cat\n")
    with pytest.raises(UsageError, match="no 'path' column"):
        read_manifest(bad)


def test_local_paths_and_file_uris_are_not_object_store_uris():
    from mvit_cli.media.sources import is_uri, uri_kind

    assert is_uri("s3://bucket/clip.mp4") and is_uri("gs://b/x.png")
    assert not is_uri("file:///data/clip.mp4") and not is_uri("/data/clip.mp4")
    assert not is_uri("C:\\clips\\a.mp4")
    assert uri_kind("s3://bucket/clip.MOV?versionId=3") == "video"


# ---- files that are not what they seem ----------------------------------------------------

def test_an_empty_file_is_said_to_be_empty(tmp_path):
    from mvit_cli.media.decode import MediaError

    for name, kind in (("empty.mp4", "video"), ("empty.png", "image")):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(MediaError, match="^the file is empty$"):
            decode(tmp_path / name, kind, tiny_protocol())


def test_transparency_is_laid_over_white():
    """A transparent pixel is white, as a viewer shows it, not black as its colour values
    alone would give; half transparency is halfway to white."""
    from PIL import Image

    from mvit_cli.media.decode import _rgb8

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0] = (200, 40, 110, 255)  # opaque
    rgba[1, :, 3] = 0  # transparent black
    rgba[1, 1] = (0, 0, 0, 128)  # half-transparent black
    rgb = _rgb8(Image.fromarray(rgba, "RGBA"))
    assert rgb[0, 0].tolist() == list(COLOUR) and rgb[1, 0].tolist() == [255, 255, 255]
    assert np.allclose(rgb[1, 1], 127, atol=2)


def test_a_video_whose_streams_do_not_say_their_length_is_measured_by_its_container(tmp_path):
    """Matroska stores no per-stream duration; the timeline's probe then takes the
    container's, given in microseconds."""
    from mvit_cli.media.sequential import probe

    info = probe(str(write_video(tmp_path / "clip.mkv", frames=24, fps=24)))
    assert info.duration == pytest.approx(1.0, abs=0.05) and info.fps == pytest.approx(24)
