"""The synthetic motion dataset: files that decode, variety, determinism, and motion that
matches the label, measured from the rendered pixels rather than taken from the spec."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import av  # (imported before decord, whose libvpx would break PyAV's VP9 encoder)
import numpy as np
import pytest
import torch  # noqa: F401  (decord must come after torch)
from PIL import Image

from mvit_cli import synth
from mvit_cli.synth import LABELS, clip_spec, motion, render, write_dataset

from conftest import run_cli

SEED = 7
CLIPS_PER_CLASS = 2
FOLDERS = ("moving_left", "moving_right", "moving_up", "moving_down", "rotating_clockwise",
           "rotating_counterclockwise", "growing", "shrinking")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[tuple[Path, str]]]:
    out = tmp_path_factory.mktemp("synth")
    return out, write_dataset(out, CLIPS_PER_CLASS, SEED)


def _decode(path: Path) -> tuple[np.ndarray, float]:
    """Every frame as RGB, and the frame rate, read with FFmpeg (PyAV): decord returns
    some frame widths (144 among them) padded into extra channels, which mvit's own
    decoding works around (media.decode.decode_size) but a plain get_batch does not."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return np.stack(frames), float(stream.average_rate)


def _object_mask(frames: np.ndarray, spec: synth.ClipSpec) -> np.ndarray:
    """(T, H, W) bool: pixels that differ clearly from the empty background."""
    difference = np.abs(frames.astype(np.int16) - synth.background(spec).astype(np.int16))
    return difference.max(axis=-1) > spec.contrast * spec.gain / 2


def _centroids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:mask.shape[1], 0:mask.shape[2]] + 0.5
    area = mask.sum(axis=(1, 2))
    return (mask * xs).sum(axis=(1, 2)) / area, (mask * ys).sum(axis=(1, 2)) / area


def _specs(label: str, variety: str = "classic", count: int = 4) -> list[synth.ClipSpec]:
    """Clips whose motion the pixels show exactly: the wide variety's blur and noise, which
    are there to hide edges, are left out (the geometry is the same)."""
    specs = [clip_spec(123, label, index, variety) for index in range(count)]
    if variety == "wide":
        specs = [dataclasses.replace(s, blur=0.0, noise=0.0) for s in specs]
    return specs


VARIETIES = pytest.mark.parametrize("variety", synth.VARIETIES)


# -- the files ---------------------------------------------------------------------------------

def test_folders_and_labels_file(dataset):
    out, written = dataset
    assert (out / "labels.txt").read_text().splitlines() == list(LABELS)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(FOLDERS)
    assert len(written) == CLIPS_PER_CLASS * len(LABELS)
    for path, label in written:
        assert path.parent == out / label.replace(" ", "_") and path.is_file()
        assert path.stem in {f"{i:05d}" for i in range(CLIPS_PER_CLASS)}
    assert not list(out.rglob("*.part"))
    for folder in FOLDERS:
        assert len(list((out / folder).iterdir())) == CLIPS_PER_CLASS


def test_files_decode_as_rendered_with_varied_formats(dataset):
    _, written = dataset
    sizes, rates, extensions = set(), set(), set()
    for path, label in written:
        index = int(path.stem)
        spec = clip_spec(SEED, label, index)
        frames, fps = _decode(path)
        assert frames.shape[1:] == (spec.height, spec.width, 3), path
        assert abs(len(frames) - spec.frames) <= 1, path
        assert fps == pytest.approx(float(spec.fps), rel=0.02), path
        rendered = render(spec)
        for i in (0, spec.frames // 2):  # same picture, up to compression and noise
            error = np.abs(frames[i].astype(float) - rendered[i]).mean()
            assert error < 12, (path, i, error)
        sizes.add((spec.width, spec.height))
        rates.add(spec.fps)
        extensions.add(path.suffix)
    assert len(sizes) >= 8 and len(rates) >= 4 and len(extensions) >= 3


def test_parameters_vary_over_the_whole_range():
    specs = [clip_spec(0, label, i) for label in LABELS for i in range(40)]
    for spec in specs:
        assert spec.width % 2 == 0 and spec.height % 2 == 0
        assert 72 <= min(spec.width, spec.height) and max(spec.width, spec.height) <= 320
        assert 10 <= spec.fps <= 30 and 0.9 <= spec.duration <= 3.1
        obj = synth.luma(spec.object_colour)
        for colour in spec.background_colours:
            assert abs(obj - synth.luma(colour)) >= synth.MIN_CONTRAST
        truth = motion(spec)  # the object's enclosing circle stays inside the frame
        r = truth.size / 2
        assert np.all(truth.x - r >= -0.01) and np.all(truth.x + r <= spec.width + 0.01)
        assert np.all(truth.y - r >= -0.01) and np.all(truth.y + r <= spec.height + 0.01)
    assert any(s.height > s.width for s in specs) and any(s.width > s.height for s in specs)
    assert {s.extension for s in specs} == set(synth.FORMATS)
    assert {s.shape for s in specs} == set(synth.SHAPES)
    assert {s.background for s in specs} == set(synth.BACKGROUNDS)
    assert len({s.fps for s in specs}) == len(synth.FRAME_RATES)
    assert any(s.noise == 0 for s in specs) and max(s.noise for s in specs) > 6
    rotating = [s for s in specs if s.label.startswith("rotating")]
    assert all(s.shape in synth.ROTATION_SHAPES for s in rotating)
    assert all(s.marker for s in rotating if s.shape in synth.NEEDS_MARKER)


def test_the_wide_variety_widens_everything_but_the_motion(tmp_path):
    specs = [clip_spec(0, label, i, "wide") for label in LABELS for i in range(40)]
    assert {s.shape for s in specs} == set(synth.WIDE_SHAPES)
    assert {s.background for s in specs} == set(synth.WIDE_BACKGROUNDS)
    assert {s.fill for s in specs} == set(synth.FILLS)
    assert len({s.fps for s in specs}) == len(synth.WIDE_FRAME_RATES)
    assert max(s.duration for s in specs) > 5 and max(s.distractors for s in specs) == 3
    assert any(s.blur for s in specs) and any(not s.blur for s in specs)
    assert any(s.glyph.islower() for s in specs)
    for spec in specs:
        obj, other = synth.luma(spec.object_colour), synth.luma(spec.fill_colour)
        for colour in spec.background_colours:  # both object colours stand out
            assert min(abs(obj - synth.luma(colour)),
                       abs(other - synth.luma(colour))) >= spec.contrast >= 50
    assert all(s.shape in synth.WIDE_ROTATION_SHAPES for s in specs
               if s.label.startswith("rotating"))
    # A wide clip is its own clip, not the classic one widened; and it decodes as rendered.
    assert clip_spec(0, "growing", 0, "wide").start != clip_spec(0, "growing", 0).start
    written = write_dataset(tmp_path, 1, SEED, variety="wide", jobs=2)
    assert len(written) == len(LABELS)
    for path, label in written[:3]:
        spec = clip_spec(SEED, label, int(path.stem), "wide")
        frames, _ = _decode(path)
        error = np.abs(frames[0].astype(float) - render(spec)[0]).mean()
        assert frames.shape[1:] == (spec.height, spec.width, 3) and error < 12, path


# -- determinism -------------------------------------------------------------------------------

def test_same_seed_same_clip_other_seed_other_clip():
    spec = clip_spec(5, "growing", 3)
    assert clip_spec(5, "growing", 3) == spec
    assert np.array_equal(render(spec), render(clip_spec(5, "growing", 3)))
    assert clip_spec(6, "growing", 3) != spec and clip_spec(5, "growing", 4) != spec
    for label in LABELS:  # every parameter drawn afresh, not just the details
        one, other = clip_spec(5, label, 0), clip_spec(6, label, 0)
        assert one.start != other.start and one.object_colour != other.object_colour
        assert one.start_size != other.start_size and one.seed != other.seed
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert np.array_equal(synth.render_clip(rng_a, 0), synth.render_clip(rng_b, 0))
    assert not np.array_equal(synth.render_clip(rng_a, 0), synth.render_clip(rng_b, 1))


def test_the_draws_of_a_seed_never_change():
    """motion-demo was trained on these clips, and its notes give the seeds that rewrite
    them: a change in what a seed draws (or in the order of the draws) is a new dataset."""
    specs = [clip_spec(2026, label, index, variety) for variety in synth.VARIETIES
             for label in LABELS for index in range(3)]
    digest = hashlib.sha256(repr(specs).encode()).hexdigest()
    assert digest == "3ba5cc9b6d3502db79c6184a27e802082a673920092b922f9be42bf90fd1a1bc"


def test_rewriting_gives_the_same_files(dataset, tmp_path):
    """Clip 0 of every class again, in a smaller dataset: same content as in the larger one."""
    out, _ = dataset
    again = write_dataset(tmp_path, 1, SEED)
    for path, _ in again:
        first = out / path.parent.name / path.name
        assert first.is_file()
        ours, theirs = _decode(path)[0], _decode(first)[0]
        assert np.allclose(ours.mean(axis=(1, 2, 3)), theirs.mean(axis=(1, 2, 3)), atol=0.5)


def test_a_clip_written_again_in_another_container_leaves_one_file(tmp_path):
    """A rerun with another seed may draw another container for the same clip: the old file
    goes, or the class folder would hold that clip twice."""
    small = dict(width=64, height=48, frames=10, noise=0.0)
    first = dataclasses.replace(clip_spec(SEED, "growing", 0), extension="avi", **small)
    second = dataclasses.replace(clip_spec(SEED + 1, "growing", 0), extension="mkv", **small)
    synth.rewrite_clip(first, tmp_path / "00000.avi")
    synth.rewrite_clip(second, tmp_path / "00000.mkv")
    assert [p.name for p in tmp_path.iterdir()] == ["00000.mkv"]
    frames, _ = _decode(tmp_path / "00000.mkv")
    assert np.abs(frames[0].astype(float) - render(second)[0]).mean() < 12


# -- motion ------------------------------------------------------------------------------------

@VARIETIES
@pytest.mark.parametrize("label, axis, sign", [("moving left", 0, -1), ("moving right", 0, 1),
                                               ("moving up", 1, -1), ("moving down", 1, 1)])
def test_moving_objects_move_the_labelled_way(label, axis, sign, variety):
    least = 0.25 if variety == "classic" else 0.15
    for spec in _specs(label, variety):
        truth = motion(spec)
        along = (truth.x, truth.y)[axis]
        assert np.all(sign * np.diff(along) > 0)
        assert np.all(np.diff(truth.size) == 0) and np.all(np.diff(truth.angle) == 0)
        length = (spec.width, spec.height)[axis]
        measured = _centroids(_object_mask(render(spec), spec))[axis]
        # The centroid need not be the enclosing circle's centre, but moves with it.
        assert np.abs((measured - measured[0]) - (along - along[0])).max() < 1.5, spec
        assert np.all(sign * np.diff(measured) > -0.5), spec
        assert sign * (measured[-1] - measured[0]) > least * length, spec
        across = (truth.y, truth.x)[axis]
        assert abs(across[-1] - across[0]) < 0.2 * abs(along[-1] - along[0])


@VARIETIES
@pytest.mark.parametrize("label", ["growing", "shrinking"])
def test_scaling_objects_change_size_by_the_labelled_factor(label, variety):
    sign = 1 if label == "growing" else -1
    for spec in _specs(label, variety):
        truth = motion(spec)
        assert np.all(sign * np.diff(truth.size) > 0)
        factor = max(truth.size[0], truth.size[-1]) / min(truth.size[0], truth.size[-1])
        assert factor >= (synth.MIN_SCALE_FACTOR if variety == "classic" else 1.45)
        area = _object_mask(render(spec), spec).sum(axis=(1, 2)).astype(float)
        assert np.all(sign * np.diff(area) > -0.05 * area[1:]), spec
        ratio = area[-1] / area[0] if sign > 0 else area[0] / area[-1]
        assert ratio == pytest.approx(factor ** 2, rel=0.3), spec


def _rotated(mask: np.ndarray, clockwise_degrees: float, centre: tuple[float, float]):
    """The mask turned on screen by Pillow, whose positive angles turn counterclockwise."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    turned = image.rotate(-clockwise_degrees, resample=Image.Resampling.BILINEAR, center=centre)
    return np.asarray(turned) > 127


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / max((a | b).sum(), 1)


@VARIETIES
@pytest.mark.parametrize("label", ["rotating clockwise", "rotating counterclockwise"])
def test_rotating_objects_turn_the_labelled_way_on_screen(label, variety):
    sign = 1 if label == "rotating clockwise" else -1
    for spec in _specs(label, variety):
        truth = motion(spec)
        assert np.all(sign * np.diff(truth.angle) > 0)
        total = abs(truth.angle[-1] - truth.angle[0])
        assert total >= (90 if variety == "classic" else 45)
        assert np.all(np.abs(np.diff(truth.angle)) <= 30)  # no wagon-wheel illusion
        if variety == "wide":  # nor between 8 frames spread over the clip
            samples = truth.angle[np.linspace(0, spec.frames - 1, 8).round().astype(int)]
            assert np.abs(np.diff(samples)).max() <= 115, spec
        mask = _object_mask(render(spec), spec)
        centre = (truth.x[0], truth.y[0])
        checked = 0
        for i in range(0, spec.frames, 3):
            later = [j for j in range(i + 1, spec.frames)
                     if 20 <= abs(truth.angle[j] - truth.angle[i]) <= 60]
            if not later:
                continue
            j = later[0]
            turn = abs(truth.angle[j] - truth.angle[i])
            # Turned the labelled way, frame i must look like frame j; turned back, not.
            labelled = _iou(_rotated(mask[i], sign * turn, centre), mask[j])
            opposite = _iou(_rotated(mask[i], -sign * turn, centre), mask[j])
            assert labelled > 0.7 and labelled > opposite + 0.1, (spec, i, j, labelled, opposite)
            checked += 1
        assert checked >= 3


# -- the command -------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [(), ("--variety", "wide", "--jobs", "2")])
def test_command_writes_the_dataset(tmp_path, extra):
    out = tmp_path / "made" / "here"
    result = run_cli("synth", out, "--per-class", "1", "--seed", "3", *extra)
    assert result.exit_code == 0, result.output
    videos = [p for p in out.rglob("*") if p.suffix.lstrip(".") in synth.FORMATS]
    assert len(videos) == len(LABELS)
    assert (out / "labels.txt").is_file()
    variety = extra[1] if extra else "classic"
    assert f"8 {variety} clips" in result.output
    assert len(result.output.strip().splitlines()) == 1
    if extra:  # two jobs write the bytes one does
        serial = write_dataset(tmp_path / "serial", 1, 3, variety="wide", jobs=1)
        for path, _ in serial:
            assert path.read_bytes() == (out / path.parent.name / path.name).read_bytes()


def test_command_reports_an_unwritable_folder_in_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("synth", blocker / "out", "--per-class", "1")
    assert result.exit_code == 1
    assert result.output.startswith("error:") and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_command_rejects_zero_clips(tmp_path):
    result = run_cli("synth", tmp_path, "--per-class", "0")
    assert result.exit_code == 2
