"""`backend="openvino"`: the model's ONNX export, compiled by OpenVINO for this CPU.

The export and OpenVINO's compiled blob are cached under MVIT_HOME/openvino/KEY, where KEY
hashes everything that changes the graph or its compilation: the weights' sha256, the
architecture, the input shape, the precision, and the versions of mvit, torch and OpenVINO.
A first run pays for the export and the compile (reported on stderr); later runs load the
compiled blob. Why export through ONNX: OpenVINO's direct conversion of torch models fails
on this model (aten::cat, aten::view), while its ONNX reader takes the dynamo export.

Why one clip at a time through a graph of fixed shape: OpenVINO compiled the batch-free
graph into slower code than the graph with its batch fixed at 1, and a graph fixed at a
batch of 8 was slower per clip than the batch-1 graph run clip by clip, as in torch
(models/fast/clip_batches). Clips are independent, so the logits are the same.

Why a second compile for batches: one clip is fastest on all cores at once (the LATENCY
hint), but the clips of a batch run faster side by side, each on a stream of its own with
fewer threads (the THROUGHPUT hint), for the reason torch's clip lanes do: no core waits for
the others after every layer; the logits are identical. That second model is made from the
same cached blob (OpenVINO's cache does not key on the hint) the first time a batch of more
than one clip comes; it holds its own weights and each stream its own activations. The
measurements behind both choices: benchmarks/RESULTS.md, "The OpenVINO backend's batches
side by side" and "What OpenVINO spent on mvit's graph".
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..version import __version__
from ..errors import UsageError
from ..extras import install_hint
from .pytorch import TorchBackend

if TYPE_CHECKING:
    from ..export import Exportable

PRECISIONS = {torch.float32: "f32", torch.bfloat16: "bf16"}


def require_openvino():
    try:
        import openvino
    except ImportError:
        raise UsageError(f"--backend openvino needs OpenVINO: {install_hint('openvino')}"
                         ) from None
    return openvino


class OpenVinoBackend(TorchBackend):
    """The torch backend's scoring with OpenVINO's compile as the graph: the fp32 model is
    exported and OpenVINO compiles it at bf16 itself (no cast), and OpenVINO runs its own
    threads on one inference request, so never in clip lanes."""

    name = "openvino"

    @classmethod
    def check(cls, device: torch.device, compile: bool) -> None:
        if device.type != "cpu" or compile:
            raise UsageError("the OpenVINO backend runs on the CPU, without --compile")
        require_openvino()  # before resolving (and perhaps downloading) anything

    def __init__(self, model, device: torch.device, dtype: torch.dtype = torch.float32,
                 compile: bool = False, exportable: Exportable | None = None) -> None:
        super().__init__(model, device, dtype, compile, cast=False)
        if exportable is None:
            raise UsageError("the OpenVINO backend exports the weights it runs: load() them")
        self.graph = OpenVinoForward(exportable, dtype)

    @property
    def lanes(self) -> bool:
        return False

    @property
    def precision_note(self) -> str:
        if super().precision_note:
            return "this CPU has no native bf16 (AVX512-BF16 or AMX): OpenVINO runs f32"
        return ""


class OpenVinoForward:
    """Logits from normalised clips, as the torch model's forward gives them."""

    def __init__(self, pipeline: Exportable, dtype: torch.dtype, quiet: bool = False) -> None:
        ov = require_openvino()
        from ..export import export_onnx
        from ..paths import mvit_home

        if dtype not in PRECISIONS:
            raise UsageError("the OpenVINO backend runs fp32 or bf16")
        self.precision = PRECISIONS[dtype]
        cfg = pipeline.cfg
        self.shape = (3, cfg.frames, cfg.size, cfg.size) if cfg.is_video else (3, cfg.size,
                                                                              cfg.size)
        sha256 = pipeline.provenance.sha256
        if not sha256:
            raise UsageError("the OpenVINO backend caches by the weights' digest: load() the "
                             "pipeline from a weights file")
        # One export serves both precisions; each has its own compiled blob.
        key = hashlib.sha256(json.dumps({
            "weights": sha256, "architecture": cfg.name, "input": self.shape, "batch": 1,
            "mvit": __version__, "torch": torch.__version__, "openvino": ov.__version__},
            sort_keys=True).encode()).hexdigest()[:24]
        self.folder = mvit_home() / "openvino" / key
        self.folder.mkdir(parents=True, exist_ok=True)
        onnx_path = self.folder / "model.onnx"
        started = time.perf_counter()
        compiled_folder = self.folder / f"compiled-{self.precision}"
        first = not compiled_folder.exists()
        if first and not quiet:  # minutes for a full-size model: say so before, not only after
            print(f"OpenVINO: exporting {cfg.name} and compiling it for this CPU "
                  f"({self.precision}), once; later runs load it from {self.folder}",
                  file=sys.stderr, flush=True)
        if not onnx_path.exists():
            export_onnx(pipeline, onnx_path, frames=self.shape[1] if cfg.is_video else None,
                        size=cfg.size)
        self._core = ov.Core()
        self._core.set_property({"CACHE_DIR": str(compiled_folder)})
        self._onnx_path = onnx_path
        self.compiled = self._compile("LATENCY")
        self.first_run_s = time.perf_counter() - started if first else None
        if first and not quiet:
            print(f"OpenVINO: {cfg.name} ({self.precision}) exported and compiled once, in "
                  f"{self.first_run_s:.0f} s; cached in {self.folder}", file=sys.stderr)
        self._side_by_side = None  # (compiled model, its queue), made for the first batch

    def _compile(self, hint: str):
        return self._core.compile_model(str(self._onnx_path), "CPU", {
            "INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": hint})

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise UsageError(f"the OpenVINO graph takes {self.shape} inputs, not "
                             f"{tuple(x.shape[1:])}")
        clips = np.ascontiguousarray(x.detach().float().cpu().numpy())
        if len(clips) == 1:
            return torch.from_numpy(self.compiled(clips)[0].copy())
        return torch.from_numpy(self._clips_side_by_side(clips))

    def _clips_side_by_side(self, clips: np.ndarray) -> np.ndarray:
        """The clips of a batch on OpenVINO's streams, one clip per request, in order."""
        if self._side_by_side is None:
            ov = require_openvino()
            compiled = self._compile("THROUGHPUT")
            jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._side_by_side = compiled, ov.AsyncInferQueue(compiled, max(jobs, 1))
        _, queue = self._side_by_side
        out: list[np.ndarray | None] = [None] * len(clips)

        def keep(request, index: int) -> None:
            out[index] = request.get_output_tensor(0).data.copy()

        queue.set_callback(keep)
        for index in range(len(clips)):
            queue.start_async({0: clips[index:index + 1]}, index)
        queue.wait_all()
        return np.concatenate(out)
