"""`mvit export` (ONNX, checked with onnxruntime) and `--backend openvino`, on the reduced
networks of the reference fixtures: real exports, real runtimes.

An export takes several seconds even for the tiny model, so the module makes one (through
the CLI, at any batch size) and the fast tests read it: its metadata against the weights it
came from, its logits against torch's in onnxruntime and in OpenVINO, and the CLI's refusals
(where a copy of it stands in for a fresh export). What exports and compiles afresh, end to
end, is marked slow one test at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import torch

import mvit_cli

from conftest import TINY_V2, run_cli, save_tiny
from media import write_video

# Not the default "action i": one name outside ASCII, and none a prefix of another, so a
# label written shifted, re-encoded or dropped reads differently.
LABELS = ["abseiling", "café dancing", "juggling", "knitting", "rowing", "sailing",
          "skating", "tap dancing", "whistling", "yawning"]


def _errors(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from conftest import register_tiny_architectures

    register_tiny_architectures()
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny-v2.safetensors", labels=LABELS,
                     cfg=TINY_V2)


@pytest.fixture(scope="module")
def exported(weights, tmp_path_factory):
    """(the ONNX file, the CLI's result): one `mvit export --dynamic-batch` for the module."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("export") / "tiny.onnx"
    result = run_cli("export", "--weights", weights, "-o", out, "--dynamic-batch")
    return out, result


@pytest.fixture
def copy_instead_of_exporting(exported, monkeypatch):
    """`export_onnx` copies the module's export into place: for tests of what happens around
    an export, which need a real ONNX file but not a fresh one. Returns the calls made."""
    calls = []

    def copy(pipeline, path, **options):
        calls.append(path)
        shutil.copyfile(exported[0], path)
        return path

    monkeypatch.setattr("mvit_cli.export.export_onnx", copy)
    return calls


def test_the_export_is_checked_against_torch_and_kept(exported, weights):
    path, result = exported
    assert result.exit_code == 0, result.output
    assert (f"exporting tiny-v2 ({os.path.abspath(weights)}) at 4x32x32, any batch size"
            in result.stderr)
    assert f"wrote {path}: onnxruntime's logits within" in result.stderr
    assert path.is_file() and not list(path.parent.glob(".*"))  # no temporary left


def test_the_metadata_says_what_made_the_export(exported, weights):
    """Each field against where it comes from: the weights file (its path, its bytes, the
    labels and architecture saved in it), the package, and the graph's own input."""
    import onnx

    graph = onnx.load(str(exported[0]), load_external_data=False)
    props = {p.key: p.value for p in graph.metadata_props}
    assert set(props) == {"mvit.architecture", "mvit.weights", "mvit.weights_sha256",
                          "mvit.version", "mvit.labels", "mvit.input", "mvit.preprocessing"}
    assert props["mvit.architecture"] == TINY_V2.name
    assert props["mvit.weights"] == os.path.abspath(weights)
    assert props["mvit.weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert props["mvit.version"] == mvit_cli.__version__
    assert json.loads(props["mvit.labels"]) == LABELS
    # The input without its batch: the architecture's clip, and what the graph takes.
    assert json.loads(props["mvit.input"]) == [3, TINY_V2.frames, TINY_V2.size, TINY_V2.size]
    [clips] = graph.graph.input
    dims = [d.dim_value or d.dim_param for d in clips.type.tensor_type.shape.dim]
    assert clips.name == "clips" and dims[1:] == json.loads(props["mvit.input"])
    assert isinstance(dims[0], str)  # --dynamic-batch: a named, free batch dimension
    assert [output.name for output in graph.graph.output] == ["logits"]
    # How a clip becomes the input, from the weights' own protocol: enough to use the file alone.
    protocol = mvit_cli.load(weights, device="cpu").protocol_with(1, 1)
    steps = json.loads(props["mvit.preprocessing"])
    assert steps["described"] == protocol.describe()
    assert (steps["frames"], steps["frame_interval"], steps["short_side"], steps["crop"]) == (
        protocol.frames, protocol.frame_interval, protocol.short_side, protocol.crop)
    assert steps["frames"] == TINY_V2.frames and steps["crop"] == TINY_V2.size
    assert steps["mean"] == list(protocol.mean) and steps["std"] == list(protocol.std)
    assert steps["scale"] == 1 / 255 and steps["interpolation"] == protocol.interpolation


def test_the_graph_gives_torchs_logits_at_any_batch_size(exported, weights):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported[0]),
                                           providers=["CPUExecutionProvider"])
    clf = mvit_cli.load(weights)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        x = torch.randn(batch, 3, TINY_V2.frames, TINY_V2.size, TINY_V2.size,
                        generator=generator)
        [got] = session.run(None, {"clips": x.numpy()})
        expected = clf.forward(x).numpy()
        assert got.shape == expected.shape == (batch, TINY_V2.num_classes)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_the_skip_pooling_exports_without_max_pool(exported):
    """The skip's max pool is on the token layout (models/fast/graph_pooling): no MaxPool
    node, and so none of the transposes it would need."""
    import onnx

    graph = onnx.load(str(exported[0]), load_external_data=False)
    assert "MaxPool" not in {node.op_type for node in graph.graph.node}


def test_export_never_replaces_a_file_unasked(weights, tmp_path, monkeypatch):
    """Refused before the model loads or anything is exported; the file stays as it was."""
    def must_not_export(*args, **kwargs):
        raise AssertionError("exported over an existing file")

    monkeypatch.setattr("mvit_cli.export.export_onnx", must_not_export)
    out = tmp_path / "mine.onnx"
    out.write_text("someone's file")
    result = run_cli("export", "--weights", weights, "-o", out)
    assert result.exit_code == 2, result.output
    [error] = _errors(result)
    assert str(out) in error and "--overwrite" in error
    assert out.read_text() == "someone's file"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.onnx"]


def test_overwrite_replaces_the_file(weights, tmp_path, exported, copy_instead_of_exporting):
    out = tmp_path / "old.onnx"
    out.write_text("an old export")
    result = run_cli("export", "--weights", weights, "-o", out, "--dynamic-batch",
                     "--overwrite")
    assert result.exit_code == 0, result.output
    assert copy_instead_of_exporting == [out]
    assert out.read_bytes() == exported[0].read_bytes()
    assert "onnxruntime's logits within" in result.stderr


def test_an_export_that_disagrees_with_torch_is_removed(tmp_path, copy_instead_of_exporting):
    """The module's export checked against other weights of the same architecture: its
    logits differ, so the CLI says so in one line and keeps nothing."""
    other = save_tiny(tmp_path / "other.safetensors", seed=1, labels=LABELS, cfg=TINY_V2)
    out = tmp_path / "wrong.onnx"
    result = run_cli("export", "--weights", other, "-o", out, "--dynamic-batch")
    assert result.exit_code == 2, result.output
    [error] = _errors(result)
    assert "differ from torch's" in error and "the export was removed" in error
    assert copy_instead_of_exporting == [out]
    assert not out.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("name, words", [("model.pt", "must end in .onnx"),
                                         ("absent/model.onnx", "no such folder")])
def test_an_output_that_cannot_be_written_is_refused_first(weights, tmp_path, monkeypatch,
                                                           name, words):
    monkeypatch.setattr("mvit_cli.api.load", lambda *a, **k: pytest.fail("loaded the model"))
    result = run_cli("export", "--weights", weights, "-o", tmp_path / name)
    assert result.exit_code == 2, result.output
    [error] = _errors(result)
    assert words in error
    assert list(tmp_path.iterdir()) == []


def test_the_openvino_backend_runs_the_export(weights, tmp_path, monkeypatch,
                                              copy_instead_of_exporting):
    """Real OpenVINO on the module's export (copied where the backend would export): one
    clip on the latency model, a batch on the streams model, torch's logits both ways."""
    pytest.importorskip("openvino")
    monkeypatch.setenv("MVIT_HOME", str(tmp_path))  # this cache holds the copy, no other
    ov = mvit_cli.load(weights, backend="openvino")
    assert copy_instead_of_exporting == [ov.backend.graph.folder / "model.onnx"]
    clf = mvit_cli.load(weights)
    generator = torch.Generator().manual_seed(2)
    for batch in (1, 3):
        x = torch.randn(batch, 3, TINY_V2.frames, TINY_V2.size, TINY_V2.size,
                        generator=generator)
        torch.testing.assert_close(ov.forward(x), clf.forward(x), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_openvino_backend_gives_torchs_labels_and_caches_its_compile(weights, tmp_path):
    pytest.importorskip("openvino")
    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"c{i}.mp4", frames=8 + 2 * i)
    torch_results = {r.path: r for r in mvit_cli.load(weights).classify(folder, workers=0)}
    first = mvit_cli.load(weights, backend="openvino")
    assert first.backend.graph.first_run_s is not None  # exported and compiled here
    ov_results = {r.path: r for r in first.classify(folder, workers=0)}
    assert set(ov_results) == set(torch_results)
    for path, result in torch_results.items():
        assert ov_results[path].labels == result.labels
        assert ov_results[path].scores == pytest.approx(result.scores, abs=1e-4)
    again = mvit_cli.load(weights, backend="openvino")
    assert again.backend.graph.first_run_s is None  # from the cache
    assert again.backend.graph.folder == first.backend.graph.folder
    x = torch.randn(2, 3, TINY_V2.frames, TINY_V2.size, TINY_V2.size)
    assert torch.allclose(again.forward(x), mvit_cli.load(weights).forward(x), atol=1e-4)

    result = run_cli("classify", folder, "--weights", weights, "--backend", "openvino",
                     "--workers", "0")
    assert result.exit_code == 0 and "(openvino)" in result.stderr
