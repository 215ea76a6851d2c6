"""`mvit_cli.load`: weights to architecture, labels, protocol and provenance, resolved once,
and the pipeline's calls (`clf(path)`, `classify`, `preprocess`, `forward`) on real files."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mvit_cli
from mvit_cli import CheckpointError, MediaError, UsageError
from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native, read_weights, save_native
from mvit_cli.labels import LabelsError, load_labels

from conftest import (PROTOCOL, TINY_V1, TINY_V1_IMAGE, TINY_V2, max_rel_error, reference,
                      register_tiny_architectures)
from media import write_video

KINETICS_HEAD = replace(TINY_V1, name="tiny-v1-k400", num_classes=400)


@pytest.fixture(autouse=True)
def _tiny():
    register_tiny_architectures()


def _torchvision_file(tmp_path, cfg, name="tv.pth", seed=1):
    torch.manual_seed(seed)
    state = mvit_cli.build_model(cfg).state_dict()
    path = tmp_path / name
    torch.save(from_native(state, LAYOUTS_BY_NAME["torchvision"], cfg), path)
    return path


# ---- architecture ---------------------------------------------------------------------------

def test_a_file_of_ours_says_its_architecture(tiny_weights):
    clf = mvit_cli.load(tiny_weights)
    assert clf.cfg.name == "tiny-v1" and clf.labels[3] == "action 3"


@pytest.mark.parametrize("layout", ["torchvision", "slowfast", "pytorchvideo"])
def test_foreign_layouts_are_recognised_by_their_shapes(tmp_path, reference_name, layout):
    cfg, weights, clip, expected = reference(reference_name)
    native = read_weights(weights).state
    path = tmp_path / f"{layout}.pth"
    state = from_native(native, LAYOUTS_BY_NAME[layout], cfg)
    torch.save(state if layout == "torchvision" else {"model_state": state}, path)
    clf = mvit_cli.load(path)  # no model named
    assert clf.cfg.name == cfg.name
    if layout == "torchvision":
        assert max_rel_error(clf.forward(clip), expected) < 1e-5


def test_timm_layout_is_recognised_by_its_shapes(tmp_path):
    from safetensors.torch import save_file

    from conftest import TINY_V2_IMAGE

    torch.manual_seed(2)
    state = mvit_cli.build_model(TINY_V2_IMAGE).state_dict()
    path = tmp_path / "model.safetensors"
    save_file(from_native(state, LAYOUTS_BY_NAME["timm"], TINY_V2_IMAGE), str(path))
    assert mvit_cli.load(path).cfg.name == "tiny-v2-image"


def test_the_published_architectures_are_told_apart_by_their_shapes(tmp_path):
    """Full-size B-16x4 and v2-S-16x4 in torchvision's layout, as torchvision publishes them
    (16 blocks each, like B-32x3, B-64x3, S-16x4, B-16 and v2-S: only shapes tell them)."""
    for name in ("B-16x4", "v2-S-16x4"):
        path = _torchvision_file(tmp_path, mvit_cli.get_config(name), f"{name}.pth")
        resolved = mvit_cli.load(path)
        assert resolved.cfg.name == name
        assert resolved.labels[0] == "abseiling" and len(resolved.labels) == 400
        path.unlink()


def test_a_file_fitting_no_architecture_asks_for_model(tmp_path):
    odd = replace(TINY_V1, name="odd", embed_dim=24)  # not registered anywhere
    path = _torchvision_file(tmp_path, odd)
    with pytest.raises(CheckpointError, match="fit none of the known architectures.*--model"):
        mvit_cli.load(path)


def test_model_and_file_must_agree(tiny_weights):
    with pytest.raises(CheckpointError, match="holds weights for tiny-v1, not tiny-v2"):
        mvit_cli.load(tiny_weights, model="tiny-v2")


# ---- labels ---------------------------------------------------------------------------------

def test_a_kinetics_sized_head_gets_kinetics_names(tmp_path):
    register = mvit_cli.register_architecture
    register(KINETICS_HEAD)
    clf = mvit_cli.load(_torchvision_file(tmp_path, KINETICS_HEAD))
    assert clf.labels == list(load_labels("kinetics400"))


def test_other_head_sizes_get_neutral_names(tmp_path):
    clf = mvit_cli.load(_torchvision_file(tmp_path, TINY_V1))
    assert clf.labels == [f"class {i}" for i in range(10)]


def test_a_labels_file_overrides_and_must_fit_the_head(tmp_path, tiny_weights):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"thing {i}\n" for i in range(10)) + "\n")
    assert mvit_cli.load(tiny_weights, labels=names).labels[9] == "thing 9"
    assert mvit_cli.load(tiny_weights, labels=[f"x{i}" for i in range(10)]).labels[0] == "x0"
    names.write_text("one\ntwo\n")
    with pytest.raises(LabelsError, match="2 labels for a head of 10 classes"):
        mvit_cli.load(tiny_weights, labels=names)
    with pytest.raises(UsageError, match="no such labels file"):
        mvit_cli.load(tiny_weights, labels=tmp_path / "absent.txt")


def test_labels_in_the_file_that_do_not_fit_are_one_error(tmp_path):
    path = tmp_path / "short.safetensors"
    save_native(mvit_cli.build_model(TINY_V1), path, labels=["a", "b"])
    with pytest.raises(LabelsError, match="2 labels for a head of 10"):
        mvit_cli.load(path)


# ---- protocol and provenance ----------------------------------------------------------------

def test_protocol_and_provenance(tiny_weights):
    clf = mvit_cli.load(tiny_weights)
    assert clf.recorded_protocol == PROTOCOL
    assert clf.protocol.frames == 4 and clf.protocol.crop == 32
    assert clf.protocol.frame_interval == pytest.approx(2 / 30)
    provenance = clf.provenance
    assert provenance.architecture == "tiny-v1"
    assert provenance.weights == str(tiny_weights)
    assert provenance.sha256 == hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
    assert provenance.mvit_version == mvit_cli.__version__


def test_weights_that_record_no_protocol_get_the_papers_recipe():
    """Kinetics' recipe for video weights (short side 256, the crop the model takes, the
    model's own frames and rate counted in 30 fps frames), ImageNet's for image weights."""
    from mvit_cli.media.protocol import protocol_for

    video = protocol_for(TINY_V1, None)
    assert (video.frames, video.clips, video.crops, video.views) == (4, 1, 1, 1)
    assert (video.short_side, video.crop, video.resize_target()) == (256, 32, 256)
    assert video.frame_interval == pytest.approx(TINY_V1.sampling_rate / 30)
    assert video.mean == (0.45,) * 3 and video.std == (0.225,) * 3
    image = protocol_for(TINY_V1_IMAGE, None, clips=4)
    assert (image.frames, image.clips, image.short_side, image.crop) == (1, 1, 256, 32)
    assert image.mean == (0.485, 0.456, 0.406) and image.std == (0.229, 0.224, 0.225)
    assert image.describe() == "1 clip x 1 crop, one frame, short side 256, crop 32"
    three = protocol_for(TINY_V1, None, clips=2, crops=3)
    assert three.views == 6 and three.resize_target() == 32


def test_a_recorded_rate_fps_or_uniform_sampling_sets_the_frame_interval():
    from mvit_cli.media.protocol import protocol_for

    assert protocol_for(TINY_V1, {"rate": 6}).frame_interval == pytest.approx(0.2)
    at_ten = protocol_for(TINY_V1, {"fps": 10, "rate": 6})
    assert at_ten.frame_interval == pytest.approx(0.1)
    assert at_ten.clip_duration == pytest.approx(0.4)
    assert "4 frames at 10 fps" in at_ten.describe()
    uniform = protocol_for(TINY_V1, {"uniform": True, "rate": 6, "clips": 3}, clips="protocol")
    assert uniform.frame_interval == 0 and uniform.clips == 3
    assert "4 frames spread over each clip's share" in uniform.describe()


def test_clips_protocol_warns_when_nothing_records_one(tmp_path):
    clf = mvit_cli.load(_torchvision_file(tmp_path, TINY_V1))
    assert clf.recorded_protocol is None
    with pytest.warns(UserWarning, match="record no test protocol"):
        assert clf.protocol_with("protocol").clips == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.protocol_with(2)  # a number asks nothing of the weights


def test_bad_device_precision_and_backend_are_usage_errors(tiny_weights):
    for kwargs, words in (({"device": "foo"}, "unknown device 'foo'"),
                          ({"device": "cuda:7"}, "device cuda:7"),
                          ({"precision": "fp8"}, "unknown precision"),
                          ({"backend": "tensorrt"}, "unknown backend")):
        with pytest.raises(UsageError, match=words):
            mvit_cli.load(tiny_weights, **kwargs)


# ---- the calls ------------------------------------------------------------------------------

def test_call_classify_preprocess_and_forward_agree(tmp_path, tiny_weights):
    video = write_video(tmp_path / "clip.mp4", frames=40)
    clf = mvit_cli.load(tiny_weights)
    top = clf(video, top_k=3)
    assert [set(row) for row in top] == [{"label", "score"}] * 3
    assert top[0]["score"] >= top[1]["score"] >= top[2]["score"]

    seen = []
    clf.model.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    [result] = list(clf.classify([video], top_k=3, clips=2, workers=1))
    views = clf.preprocess(video, clips=2)
    assert views.shape == (2, 3, 4, 32, 32)
    # Exactly what the model got, clip for clip (clip lanes call the hook in whichever
    # order the clips start, so the order of the calls is not the batch's).
    matched = sorted(next(i for i, view in enumerate(views.split(1)) if torch.equal(clip, view))
                     for clip in seen)
    assert matched == [0, 1]
    probs = clf.forward(views).softmax(dim=-1).mean(dim=0)
    assert result.labels[0] == clf.labels[int(probs.argmax())]
    assert result.scores[0] == pytest.approx(float(probs.max()), abs=1e-6)
    assert result.views == 2 and result.frames == 40


def test_forward_gives_fp32_logits_on_the_cpu(tiny_weights):
    clf = mvit_cli.load(tiny_weights, precision="bf16")
    logits = clf.forward(torch.randn(2, 3, 4, 32, 32))
    assert logits.dtype == torch.float32 and logits.shape == (2, 10)
    assert clf.precision == "bf16"


def test_bf16_casts_the_body_once_and_keeps_the_head_in_fp32(tiny_weights):
    fp32, bf16 = mvit_cli.load(tiny_weights), mvit_cli.load(tiny_weights, precision="bf16")
    body = [p for name, p in bf16.model.named_parameters()
            if not name.startswith(("norm.", "head."))]
    assert body and all(p.dtype == torch.bfloat16 for p in body)
    assert bf16.model.head.weight.dtype == bf16.model.norm.weight.dtype == torch.float32
    x = torch.randn(3, 3, 4, 32, 32)
    probs = bf16.forward(x).softmax(-1)
    assert (probs - fp32.forward(x).softmax(-1)).abs().max() < 0.02
    model = fp32.model  # a caller's model is not cast under it
    mvit_cli.Pipeline.from_model(model, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bf16_on_a_cpu_only_where_it_is_native_and_measured(
        force_gates, tiny_weights, native):
    from mvit_cli import devices
    from mvit_cli.pretrained.registry import find_entry

    force_gates(native_bf16=native)
    cpu = torch.device("cpu")
    good = {"clips": 400, "top1_agreement": 0.998, "max_score_change": 0.006}
    assert devices.resolve_precision("auto", cpu, good) == (
        torch.bfloat16 if native else torch.float32)
    for worse in ({**good, "top1_agreement": 0.99}, {**good, "max_score_change": 0.02}, {}):
        assert devices.resolve_precision("auto", cpu, worse) == torch.float32
    assert devices.resolve_precision("bf16", cpu, {}) == torch.bfloat16  # asked for: given
    # load() reads the record from the weights' registry entry; files without one: fp32.
    record = find_entry("motion-demo").bf16
    assert record["clips"] >= 160
    expected = "bf16" if native and devices.bf16_passes(record) else "fp32"
    assert mvit_cli.load("motion-demo").precision == expected
    assert mvit_cli.load(tiny_weights).precision == "fp32"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_it_says_so(force_gates, tmp_path, tiny_weights, native):
    from conftest import run_cli
    from media import write_video

    force_gates(native_bf16=native)
    video = write_video(tmp_path / "a.mp4", frames=8)
    result = run_cli("classify", video, "--weights", tiny_weights, "--precision", "bf16",
                     "--workers", "0")
    assert result.exit_code == 0, result.output
    assert ("emulates it" in result.stderr) == (not native)


def test_bad_files_raise_from_a_call_and_are_rows_from_classify(tmp_path, tiny_weights):
    clf = mvit_cli.load(tiny_weights)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(MediaError, match="notes.mp4: not a readable video"):
        clf(text)
    with pytest.raises(MediaError, match="no such file"):
        clf(tmp_path / "absent.mp4")
    [row] = list(clf.classify(text, workers=0))
    assert "not a readable video" in row.error and not row.ok


def test_build_model_stays_the_lower_level_call(tiny_weights):
    model = mvit_cli.build_model("tiny-v1", weights=tiny_weights)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.labels[0] == "action 0"
    expected = load_file(str(tiny_weights))["head.weight"]
    assert torch.equal(model.head.weight, expected)


def test_pipeline_from_an_in_memory_model():
    clf = mvit_cli.Pipeline.from_model(mvit_cli.build_model(TINY_V2), protocol=PROTOCOL)
    assert clf.labels == [f"class {i}" for i in range(10)]
    assert clf.provenance.weights == "an in-memory model" and clf.provenance.sha256 == ""


def test_importing_the_package_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, mvit_cli, mvit_cli.cli; "
            "print('torch' in sys.modules, mvit_cli.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", mvit_cli.__version__]


@pytest.mark.parametrize("avx512_bf16,amx", [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_the_cpu_probe_reads_bf16_and_amx_from_torch(monkeypatch, avx512_bf16, amx):
    """bf16 is native with either AVX512-BF16 or AMX; AMX only with its tiles. The probe is
    asked once, and `forced` changes the answers for a while only."""
    from mvit_cli import cpu_gates

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16,
                        raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    probed = cpu_gates.probe()
    assert (probed.native_bf16, probed.amx) == (avx512_bf16 or amx, amx)
    monkeypatch.setattr(cpu_gates, "_GATES", None)
    assert cpu_gates.gates() == probed
    with cpu_gates.forced(amx=not amx) as forced:
        assert cpu_gates.gates() == forced and forced.amx is not amx
        assert forced.native_bf16 == probed.native_bf16
    assert cpu_gates.gates() == probed


@pytest.mark.parametrize("vendor,capability,expected", [
    ("AuthenticAMD", "AVX512", True), ("AuthenticAMD", "AVX2", False),
    ("GenuineIntel", "AVX512", False), ("", "AVX512", False)])
def test_fp32_linears_go_through_onednn_only_on_amd_with_avx512(monkeypatch, vendor,
                                                                  capability, expected):
    """Where MKL's fp32 GEMMs were measured at half oneDNN's rate (a Zen 5); elsewhere
    torch's default stays. The probe reads the vendor and torch's capability."""
    from mvit_cli import cpu_gates

    assert cpu_gates.onednn_fp32_faster(vendor, capability) is expected
    monkeypatch.setattr(cpu_gates, "_cpu_vendor", lambda: vendor)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert cpu_gates.probe().onednn_fp32 is expected


def test_one_file_calls_take_one_file_of_the_models_kind(tmp_path):
    """A call or preprocess names one file: a folder (even of one video) and an image for a
    video model are refused in one line, and so is a top-k below 1."""
    clf = mvit_cli.Pipeline.from_model(mvit_cli.build_model(TINY_V1), protocol=PROTOCOL)
    folder = tmp_path / "one"
    folder.mkdir()
    write_video(folder / "clip.mp4", frames=8)
    for call in (clf, clf.preprocess):
        with pytest.raises(MediaError, match="one video or image file, please"):
            call(folder)
    from media import write_image

    picture = write_image(tmp_path / "picture.png")
    for call in (clf, clf.preprocess):
        with pytest.raises(MediaError, match="picture.png: this is an image, and the model is not"):
            call(picture)
    with pytest.raises(UsageError, match="top_k: at least 1"):
        clf.classify(folder, top_k=0)


def test_a_result_has_the_mean_feature_of_its_views_and_the_files_own_numbers(tmp_path):
    """Three clips of a 12-frame, 24 fps video: the pooled feature is the mean of the three
    views' features; duration and frames are the file's, views the clips scored. An image
    has neither duration nor frames."""
    from media import write_image

    video = write_video(tmp_path / "clip.mp4", frames=12, fps=24)
    clf = mvit_cli.Pipeline.from_model(mvit_cli.build_model(TINY_V1), protocol=PROTOCOL)
    [result] = list(clf.classify(video, clips=3, features=True, workers=0))
    with torch.inference_mode():
        per_view = clf.model.forward_features(clf.preprocess(video, clips=3))
    assert per_view.shape[0] == 3 and not torch.allclose(per_view[0], per_view[2])
    assert np.allclose(result.feature, per_view.mean(dim=0).numpy(), atol=1e-5)
    assert result.duration == pytest.approx(0.5) and result.frames == 12 and result.views == 3
    image_model = mvit_cli.Pipeline.from_model(mvit_cli.build_model(TINY_V1_IMAGE),
                                               protocol={"short_side": 36, "crop": 32})
    [picture] = list(image_model.classify(write_image(tmp_path / "p.png"), workers=0))
    assert picture.ok and picture.duration is None and picture.frames is None
    assert picture.views == 1
