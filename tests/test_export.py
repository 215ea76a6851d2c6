"""`mvit export` (ONNX, checked with onnxruntime) and `--backend openvino`, on the reduced
networks of the reference fixtures: real exports, real runtimes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY_V2, run_cli, save_tiny
from media import write_video

pytestmark = pytest.mark.slow

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from conftest import register_tiny_architectures

    register_tiny_architectures()
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny-v2.safetensors", cfg=TINY_V2)


def test_an_export_runs_in_onnxruntime_at_any_batch_size(weights, tmp_path):
    import mvit_cli

    out = tmp_path / "tiny.onnx"
    result = run_cli("export", "--weights", weights, "-o", out, "--dynamic-batch")
    assert result.exit_code == 0, result.output
    assert "onnxruntime's logits within" in result.stderr
    clf = mvit_cli.load(weights)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.randn(batch, 3, TINY_V2.frames, TINY_V2.size, TINY_V2.size)
        [got] = session.run(None, {"clips": x.numpy()})
        expected = clf.forward(x).numpy()
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() < 1e-4
    graph = onnx.load(str(out), load_external_data=False)
    # The skip's max pool is on the token layout (models/fast/graph_pooling): no transposes.
    assert "MaxPool" not in {node.op_type for node in graph.graph.node}
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["mvit.architecture"] == "tiny-v2"
    assert props["mvit.weights_sha256"] == clf.provenance.sha256
    assert json.loads(props["mvit.labels"]) == clf.labels


def test_export_never_replaces_a_file_unasked(weights, tmp_path):
    out = tmp_path / "mine.onnx"
    out.write_text("someone's file")
    result = run_cli("export", "--weights", weights, "-o", out)
    assert result.exit_code == 2 and "--overwrite" in result.stderr
    assert out.read_text() == "someone's file"
    assert run_cli("export", "--weights", weights, "-o", tmp_path / "x.pt").exit_code == 2


def test_the_openvino_backend_gives_torchs_labels_and_caches_its_compile(weights, tmp_path):
    pytest.importorskip("openvino")
    import mvit_cli

    folder = tmp_path / "clips"
    folder.mkdir()
    for i in range(3):
        write_video(folder / f"c{i}.mp4", frames=8 + 2 * i)
    torch_results = {r.path: r for r in mvit_cli.load(weights).classify(folder, workers=0)}
    first = mvit_cli.load(weights, backend="openvino")
    assert first._forward.first_run_s is not None  # exported and compiled here
    ov_results = {r.path: r for r in first.classify(folder, workers=0)}
    assert set(ov_results) == set(torch_results)
    for path, result in torch_results.items():
        assert ov_results[path].labels == result.labels
        assert ov_results[path].scores == pytest.approx(result.scores, abs=1e-4)
    again = mvit_cli.load(weights, backend="openvino")
    assert again._forward.first_run_s is None  # from the cache
    assert again._forward.folder == first._forward.folder
    x = torch.randn(2, 3, TINY_V2.frames, TINY_V2.size, TINY_V2.size)
    assert torch.allclose(again.forward(x), mvit_cli.load(weights).forward(x), atol=1e-4)

    result = run_cli("classify", folder, "--weights", weights, "--backend", "openvino",
                     "--workers", "0")
    assert result.exit_code == 0 and "(openvino)" in result.stderr
