"""The OpenVINO backend's own part (backends/openvino.py), with a stand-in for OpenVINO.

What is ours: the cache key and folder, export once and compile per precision, one clip on
the latency model, a batch's clips spread over the streams model's request queue and put
back in order, and the errors. The stand-in (`FakeOpenVino`) compiles "graphs" that run the
torch model the export came from, finishes queued requests last-started-first and reuses
their output buffers, as a real queue may: a clip put back by completion order, or a buffer
kept without a copy, gives the wrong logits. Real OpenVINO on a real export is in
test_export.py.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import mvit_cli
from mvit_cli import UsageError
from mvit_cli.backends import openvino as backend

from conftest import TINY_V1, register_tiny_architectures, save_tiny
from media import write_video

CLIP = (3, TINY_V1.frames, TINY_V1.size, TINY_V1.size)


class FakeRequest:
    """One inference request: an output buffer that the next clip on it overwrites."""

    def __init__(self, classes: int) -> None:
        self.output = np.full((1, classes), np.nan, dtype=np.float32)

    def get_output_tensor(self, index: int):
        assert index == 0
        return types.SimpleNamespace(data=self.output)


class FakeCompiledModel:
    def __init__(self, model: torch.nn.Module, config: dict, requests: int) -> None:
        self.model, self.config, self.requests = model, config, requests
        self.clips_per_call: list[int] = []

    def run(self, clips: np.ndarray) -> np.ndarray:
        assert clips.shape == (1, *CLIP), clips.shape  # a graph of fixed shape: batch 1
        assert clips.dtype == np.float32 and clips.flags.c_contiguous
        self.clips_per_call.append(len(clips))
        with torch.inference_mode():
            return self.model(torch.from_numpy(clips.copy())).numpy()

    def __call__(self, clips: np.ndarray) -> list[np.ndarray]:
        return [self.run(clips)]

    def get_property(self, name: str):
        assert name == "OPTIMAL_NUMBER_OF_INFER_REQUESTS"
        return self.requests


class FakeQueue:
    """AsyncInferQueue's behaviour that the backend relies on: a callback per finished request
    with its userdata; a full queue frees a request before taking the next clip. Requests
    finish newest first, so completion order is never submission order."""

    def __init__(self, compiled: FakeCompiledModel, jobs: int) -> None:
        self.compiled, self.jobs = compiled, jobs
        self.idle = [FakeRequest(compiled.model.num_classes) for _ in range(jobs)]
        self.running: list[tuple[FakeRequest, object]] = []
        self.finished: list[object] = []
        self.callback = None

    def set_callback(self, callback) -> None:
        self.callback = callback

    def start_async(self, inputs: dict, userdata) -> None:
        assert set(inputs) == {0}
        if not self.idle:
            self._finish_newest()
        request = self.idle.pop()
        request.output[...] = self.compiled.run(inputs[0])
        self.running.append((request, userdata))

    def wait_all(self) -> None:
        while self.running:
            self._finish_newest()

    def _finish_newest(self) -> None:
        request, userdata = self.running.pop()
        self.callback(request, userdata)
        self.finished.append(userdata)
        request.output[...] = np.nan  # the buffer is the request's, not the caller's
        self.idle.append(request)


class FakeOpenVino:
    """The `openvino` module as the backend uses it; records compiles and queues."""

    __version__ = "2099.0-fake"

    def __init__(self, requests: int = 3) -> None:
        self.requests = requests
        self.graphs: dict[str, torch.nn.Module] = {}  # ONNX path -> the model exported there
        self.exports: list[Path] = []
        self.compiles: list[FakeCompiledModel] = []
        self.compile_calls: list[tuple[str, str, dict, str]] = []  # path, device, config, cache
        self.queues: list[FakeQueue] = []
        fake = self

        class Core:
            def __init__(self) -> None:
                self.properties: dict = {}

            def set_property(self, properties: dict) -> None:
                self.properties.update(properties)

            def compile_model(self, path: str, device: str, config: dict):
                cache = self.properties["CACHE_DIR"]
                Path(cache).mkdir(parents=True, exist_ok=True)  # where the blob would go
                fake.compile_calls.append((path, device, dict(config), cache))
                compiled = FakeCompiledModel(fake.graphs[path], dict(config), fake.requests)
                fake.compiles.append(compiled)
                return compiled

        def AsyncInferQueue(compiled, jobs):  # noqa: N802 (OpenVINO's name)
            queue = FakeQueue(compiled, jobs)
            fake.queues.append(queue)
            return queue

        self.Core, self.AsyncInferQueue = Core, AsyncInferQueue

    def export_onnx(self, pipeline, path, frames=None, size=None, dynamic_batch=False):
        assert (frames, size, dynamic_batch) == (TINY_V1.frames, TINY_V1.size, False)
        Path(path).write_bytes(b"an export")
        self.exports.append(Path(path))
        self.graphs[str(path)] = pipeline.model
        return Path(path)

    def hints(self) -> list[str]:
        return [config["PERFORMANCE_HINT"] for _, _, config, _ in self.compile_calls]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    register_tiny_architectures()
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture
def fake_openvino(monkeypatch, tmp_path) -> FakeOpenVino:
    """The stand-in in place of OpenVINO and of the (slow) ONNX export; a cache of its own."""
    fake = FakeOpenVino()
    monkeypatch.setattr(backend, "require_openvino", lambda: fake)
    monkeypatch.setattr("mvit_cli.export.export_onnx", fake.export_onnx)
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    return fake


def clips(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, *CLIP, generator=torch.Generator().manual_seed(seed))


def test_one_clip_runs_on_the_latency_model(weights, fake_openvino):
    pipeline = mvit_cli.load(weights, backend="openvino", precision="fp32")
    assert pipeline.backend.name == "openvino"
    assert isinstance(pipeline.backend.graph, backend.OpenVinoForward)
    [(path, device, config, _)] = fake_openvino.compile_calls
    assert path == str(pipeline.backend.graph.folder / "model.onnx") and device == "CPU"
    assert config == {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    x = clips(1)
    torch.testing.assert_close(pipeline.forward(x), mvit_cli.load(weights).forward(x),
                               atol=1e-6, rtol=0)
    assert fake_openvino.hints() == ["LATENCY"]  # no streams model for one clip
    assert fake_openvino.compiles[0].clips_per_call == [1]


@pytest.mark.parametrize("requests, jobs", [(3, 3), (0, 1)])
def test_a_batch_comes_back_in_its_order_whatever_order_its_clips_finish_in(
        weights, fake_openvino, requests, jobs):
    """Batches of five clips, then two, on a queue of `jobs` requests (the compiled model's
    optimal number, at least one); the streams model is compiled at the first batch and
    kept for the next."""
    fake_openvino.requests = requests
    pipeline = mvit_cli.load(weights, backend="openvino", precision="fp32")
    torch_pipeline = mvit_cli.load(weights)
    for n, seed in ((5, 0), (2, 1)):
        x = clips(n, seed)
        torch.testing.assert_close(pipeline.forward(x), torch_pipeline.forward(x),
                                   atol=1e-6, rtol=0)
    assert fake_openvino.hints() == ["LATENCY", "THROUGHPUT"]
    [queue] = fake_openvino.queues
    assert queue.jobs == jobs
    assert sorted(queue.finished) == [0, 0, 1, 1, 2, 3, 4]  # each clip once
    if jobs > 1:  # the order really was shuffled (one request can only go in order)
        assert queue.finished[:5] != [0, 1, 2, 3, 4]
    assert fake_openvino.compiles[1].clips_per_call == [1] * 7  # one clip per request
    assert fake_openvino.compiles[0].clips_per_call == []


def test_classify_runs_its_clips_through_openvino(weights, fake_openvino, tmp_path):
    """The pipeline's own path from a file to labels, with OpenVINO's logits: torch's
    labels and scores (the stand-in computes what the export would)."""
    video = write_video(tmp_path / "clip.mp4", frames=10)
    pipeline = mvit_cli.load(weights, backend="openvino", precision="fp32")
    [got] = pipeline.classify([video], workers=0, clips=2)
    [expected] = mvit_cli.load(weights).classify([video], workers=0, clips=2)
    assert not got.error and got.labels == expected.labels
    assert got.scores == pytest.approx(expected.scores, abs=1e-6)
    ran = sum(len(c.clips_per_call) for c in fake_openvino.compiles)
    assert ran == 2


def test_a_first_run_says_what_it_is_doing_before_the_long_export(weights, fake_openvino,
                                                                   capsys, monkeypatch):
    """A full-size model's export and compile take minutes: the line saying so comes before
    them, not only after."""
    said_before_export = []
    export = fake_openvino.export_onnx

    def exporting(*args, **kwargs):
        said_before_export.append(capsys.readouterr().err)
        return export(*args, **kwargs)

    monkeypatch.setattr("mvit_cli.export.export_onnx", exporting)
    graph = mvit_cli.load(weights, backend="openvino", precision="fp32").backend.graph
    [before] = said_before_export
    assert "OpenVINO: exporting" in before and "once" in before and str(graph.folder) in before
    assert "exported and compiled once" in capsys.readouterr().err


def test_the_export_and_the_compiled_blob_are_made_once_and_cached(weights, fake_openvino,
                                                                   capsys):
    first = mvit_cli.load(weights, backend="openvino", precision="fp32").backend.graph
    assert first.first_run_s is not None
    assert fake_openvino.exports == [first.folder / "model.onnx"]
    assert first.folder.parent == Path(fake_openvino.compile_calls[0][3]).parent.parent
    assert fake_openvino.compile_calls[0][3] == str(first.folder / "compiled-f32")
    said = capsys.readouterr().err
    assert "exported and compiled once" in said and str(first.folder) in said

    again = mvit_cli.load(weights, backend="openvino", precision="fp32").backend.graph
    assert again.folder == first.folder and again.first_run_s is None
    assert len(fake_openvino.exports) == 1
    assert "exported and compiled" not in capsys.readouterr().err

    # The other precision: the same export, a blob (and a first run) of its own.
    bf16 = mvit_cli.load(weights, backend="openvino", precision="bf16").backend.graph
    assert bf16.folder == first.folder and bf16.first_run_s is not None
    assert len(fake_openvino.exports) == 1
    assert fake_openvino.compile_calls[-1][2]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert fake_openvino.compile_calls[-1][3] == str(first.folder / "compiled-bf16")


def test_the_cache_key_follows_the_weights_and_openvinos_version(weights, fake_openvino,
                                                                 tmp_path):
    folder = mvit_cli.load(weights, backend="openvino").backend.graph.folder
    other = save_tiny(tmp_path / "other.safetensors", seed=1)
    assert mvit_cli.load(other, backend="openvino").backend.graph.folder != folder
    fake_openvino.__version__ = "2100.0-fake"
    newer = mvit_cli.load(weights, backend="openvino").backend.graph
    assert newer.folder != folder and newer.first_run_s is not None
    assert len(fake_openvino.exports) == 3


def test_quiet_says_nothing_on_a_first_run(weights, fake_openvino, capsys):
    pipeline = mvit_cli.load(weights)
    forward = backend.OpenVinoForward(pipeline, torch.float32, quiet=True)
    assert forward.first_run_s is not None
    assert capsys.readouterr().err == ""


def test_a_clip_of_another_shape_is_refused_in_one_line(weights, fake_openvino):
    pipeline = mvit_cli.load(weights, backend="openvino")
    wrong = torch.zeros(2, 3, TINY_V1.frames + 4, TINY_V1.size, TINY_V1.size)
    with pytest.raises(UsageError, match=r"takes \(3, 4, 32, 32\) inputs, not \(3, 8, 32, 32\)"):
        pipeline.forward(wrong)
    assert all(not c.clips_per_call for c in fake_openvino.compiles)


def test_fp16_is_refused(weights, fake_openvino):
    with pytest.raises(UsageError, match="fp32 or bf16"):
        backend.OpenVinoForward(mvit_cli.load(weights), torch.float16)
    assert fake_openvino.exports == []


def test_a_model_without_a_weights_file_is_refused(fake_openvino):
    """The cache is keyed by the weights' digest; an in-memory model has none."""
    from mvit_cli import build_model

    pipeline = mvit_cli.Pipeline.from_model(build_model(TINY_V1))
    with pytest.raises(UsageError, match="caches by the weights' digest"):
        backend.OpenVinoForward(pipeline, torch.float32)
    assert fake_openvino.exports == []


def test_without_openvino_installed_the_error_says_what_to_install(weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'openvino>=2025.0'"):
        mvit_cli.load(weights, backend="openvino")


def test_openvino_runs_without_torch_compile(weights, fake_openvino):
    with pytest.raises(UsageError, match="on the CPU, without --compile"):
        mvit_cli.load(weights, backend="openvino", compile=True)
    assert fake_openvino.compile_calls == []
