"""ONNX export: a model's forward pass as a graph that onnxruntime and OpenVINO run.

Why the dynamo exporter (`torch.onnx.export(..., dynamo=True)`): the legacy TorchScript
exporter fails on the channels-last 3-D layout the model keeps its tensors in, while the
dynamo exporter traces the fast paths as they are. Under export the CPU's clip-by-clip
batching is left out (`models/fast/clip_batches`), so the batch dimension can stay free.
The file records what made it (architecture, weights, their sha256, labels, mvit's
version) in its metadata, as every other output does, and how a clip becomes its input
(`mvit.preprocessing`: sampling, resizing, crop, scale, mean and std), so the file can be
used on its own.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Protocol

import torch

from .version import __version__
from .errors import UsageError
from .extras import install_hint
from .fileio import atomic_path


class Exportable(Protocol):
    """What an export records beside the graph: a pipeline, or the weights `load` read."""

    model: torch.nn.Module
    labels: list[str]
    recorded_protocol: dict | None

    @property
    def cfg(self): ...

    @property
    def provenance(self): ...


@contextmanager
def _quiet():
    """The exporter's own chatter (per-node notes and warnings) stays off the terminal."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx",
                                                      "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings(), open(os.devnull, "w") as sink, \
            redirect_stdout(sink):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def example_input(cfg, frames: int | None = None, size: int | None = None,
                  batch: int = 1) -> torch.Tensor:
    """A random normalised clip (or image) of the shape the graph is traced at."""
    side = size or cfg.size
    generator = torch.Generator().manual_seed(0)
    if cfg.is_video:
        shape = (batch, 3, frames or cfg.frames, side, side)
    else:
        shape = (batch, 3, side, side)
    return torch.randn(shape, generator=generator)


def export_onnx(pipeline: Exportable, path: str | os.PathLike, frames: int | None = None,
                size: int | None = None, dynamic_batch: bool = False) -> Path:
    """Write the pipeline's model as ONNX at `path` (atomically) and return the path.

    `frames` and `size` (default: the architecture's) fix the graph's input shape; with
    `dynamic_batch` the batch size is free, otherwise it is 1.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError(f"ONNX export needs onnx and onnxscript: {install_hint('onnx')}"
                         ) from None
    model = pipeline.model.float().cpu().eval()
    example = example_input(pipeline.cfg, frames, size, batch=2 if dynamic_batch else 1)
    dynamic = None
    if dynamic_batch:
        dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    path = Path(path)
    provenance = pipeline.provenance
    metadata = {"mvit.architecture": pipeline.cfg.name, "mvit.weights": provenance.weights,
                "mvit.weights_sha256": provenance.sha256, "mvit.version": __version__,
                "mvit.labels": json.dumps(pipeline.labels),
                "mvit.input": json.dumps(list(example.shape[1:])),
                "mvit.preprocessing": json.dumps(preprocessing(pipeline))}
    from .models.fast import clear_tensor_caches

    with atomic_path(path, suffix=".onnx") as tmp, torch.no_grad(), _quiet():
        try:
            program = torch.onnx.export(model, (example,), dynamo=True,
                                        dynamic_shapes=dynamic, input_names=["clips"],
                                        output_names=["logits"], verbose=False)
        finally:
            clear_tensor_caches()
        for key, value in metadata.items():
            program.model.metadata_props[key] = value
        program.save(str(tmp))
    return path


def preprocessing(pipeline: Exportable) -> dict:
    """How a video becomes one clip of the graph's input, as the pipeline does it (one clip,
    one centre crop; more views are more clips through the same graph, their softmax
    averaged)."""
    from .media.protocol import protocol_for

    protocol = protocol_for(pipeline.cfg, pipeline.recorded_protocol, 1, 1)
    return {
        "described": protocol.describe(),
        "frames": protocol.frames,
        # seconds between sampled frames; 0: spread evenly over the clip's share of the video
        "frame_interval": protocol.frame_interval,
        "short_side": protocol.short_side, "interpolation": protocol.interpolation,
        "crop": protocol.crop,
        "layout": "clips, RGB, channels, frames, height, width" if pipeline.cfg.is_video
                  else "images, RGB, channels, height, width",
        "scale": 1 / 255,  # uint8 values to [0, 1], then per channel (x - mean) / std
        "mean": list(protocol.mean), "std": list(protocol.std),
    }


def check_with_onnxruntime(pipeline: Exportable, path: str | os.PathLike, batch: int = 1,
                           frames: int | None = None, size: int | None = None) -> float:
    """The largest |logit| difference between onnxruntime on `path` and torch fp32, on a
    random input of the exported shape."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError(f"checking an export needs onnxruntime: {install_hint('onnx')}"
                         ) from None
    example = example_input(pipeline.cfg, frames, size, batch=batch)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [got] = session.run(None, {session.get_inputs()[0].name: example.numpy()})
    with torch.inference_mode():
        expected = pipeline.model.float().cpu()(example).numpy()
    return float(abs(got - expected).max())
