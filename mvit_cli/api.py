"""`mvit_cli.load`: the one pipeline from weights to labels, for every front end.

A pipeline is three parts with small interfaces, each chosen from a table: the weights and
their backend (`assembly`: what the weights are, and `backends/`: how views become
probabilities), an engine (`engines/`: where the tasks run) and a job (`jobs/`: which items
become which tasks, how scores become rows). `mvit classify` and `mvit timeline` are thin
layers over `Pipeline.classify` and `Pipeline.timeline`; Python users get the same numbers
from the same code::

    clf = mvit_cli.load("b16x4-k400")
    clf("clip.mp4", top_k=3)          # [{"label": "abseiling", "score": 0.91}, ...]
    x = clf.preprocess("clip.mp4")    # (views, 3, T, H, W): exactly what the model gets
    logits = clf.forward(x)           # fp32 logits, at the pipeline's precision and device
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch

from .assembly import LoadArguments, LoadedWeights, assemble, make_backend
from .backends import BACKENDS
from .devices import precision_name, resolve_device, resolve_precision
from .engines import RunOptions, engine_for
from .engines.local.workers import DecodePool, default_workers, prepare
from .errors import UsageError
from .jobs.classify import ClassifyJob, FileResult
from .jobs.tasks import Task
from .jobs.segments import Segment, segments
from .jobs.timeline import TimelineJob, VideoTimeline
from .labels import choose_labels
from .media.decode import MediaError
from .media.discover import InputItem, as_items, find_inputs, kind_error
from .media.protocol import Protocol, check_recorded, protocol_for
from .media.transform import make_views, normalise
from .media.windows import Windowing, windowing_for
from .models.config import MViTConfig
from .resolve import LabelsArgument, Provenance, given_labels

if TYPE_CHECKING:
    from .backends import Backend
    from .models.model import MultiscaleTransformer

PathLike = str | os.PathLike
__all__ = ["BACKENDS", "LoadArguments", "Pipeline", "load"]


def load(weights: PathLike | None = None, *, model: str | MViTConfig | None = None,
         labels: LabelsArgument = None, device: str = "auto", precision: str = "auto",
         backend: str = "torch", compile: bool = False, frames: int | None = None,
         fps: float | None = None) -> Pipeline:
    """Resolve weights once and return a ready classifier.

    `weights`: a registry name (`mvit weights list`; downloaded, verified and cached on first
    use), a checkpoint file in any supported layout, or None for the default weights (of
    `model`, if given). `model` names the architecture where the file does not decide it.
    `labels`: class names (a list, a shipped set's name, or a file of one per line) overriding
    those of the weights. `device`: auto, cpu, cuda, cuda:N or mps. `precision`: auto, fp32,
    bf16 or fp16. `compile`: torch.compile the model (a slow first batch; for big folders).
    `backend`: torch, or openvino (CPU only: the ONNX export compiled by OpenVINO at fp32 or
    bf16, cached on disk; see backends/openvino.py). `frames` and `fps`: clips of other
    frames, sampled at another rate, than the weights' protocol (video models).
    """
    loaded, chosen_backend, arguments = assemble(weights, model, labels, device, precision,
                                                 backend, compile)
    pipeline = Pipeline(loaded, chosen_backend, arguments)
    pipeline.sample(frames, fps)
    return pipeline


class Pipeline:
    """A model with its labels and test protocol, from files (or clips) to labels."""

    def __init__(self, weights: LoadedWeights, backend: Backend,
                 source: LoadArguments | None = None) -> None:
        self.weights, self.backend = weights, backend
        self.model: MultiscaleTransformer = weights.model
        self.cfg: MViTConfig = weights.cfg
        self.labels: list[str] = weights.labels
        # How the weights were tested, as recorded (None: nothing records it).
        self.recorded_protocol = weights.recorded_protocol
        self.note = weights.note  # what the weights' registry entry says of them
        self.device, self.dtype = backend.device, backend.dtype
        self.compiled = backend.compiled
        # What another process (a Ray worker) needs to load the same pipeline; None for a
        # pipeline around a Python model.
        self.source = source
        self.frames: int | None = None  # the protocol's, unless `sample` says otherwise
        self.fps: float | None = None

    def sample(self, frames: int | None = None, fps: float | None = None) -> Pipeline:
        """Clips of `frames` frames sampled at `fps` from now on, instead of the weights'
        protocol (None: the protocol's). Checked at once; returns the pipeline."""
        protocol_for(self.cfg, self.recorded_protocol, 1, 1, frames, fps)
        self.frames, self.fps = frames, fps
        return self

    @classmethod
    def from_model(cls, model: MultiscaleTransformer, *, labels: LabelsArgument = None,
                   protocol: dict[str, Any] | None = None, device: str = "cpu",
                   precision: str = "fp32", name: str = "an in-memory model") -> Pipeline:
        """A pipeline around a model you built or trained in Python (no weights file).

        `protocol` is a recorded protocol as in the registry ({"frames": 16, "rate": 4, ...});
        its provenance names `name` and no file digest.
        """
        torch_device = resolve_device(device)
        names, where = given_labels(labels)
        chosen, _ = choose_labels(model.num_classes, given=names, given_by=where or "labels",
                                  in_file=model.labels)
        provenance = Provenance(architecture=model.cfg.name, weights=name, sha256="")
        dtype = resolve_precision(precision, torch_device)
        if dtype == torch.bfloat16:  # cast a copy: the caller's model stays as it was
            model = copy.deepcopy(model)
        weights = LoadedWeights(model, chosen, check_recorded(protocol, name), lambda: provenance)
        return cls(weights, make_backend("torch", weights, torch_device, dtype))

    # ---- what the weights are ----------------------------------------------------------

    @property
    def protocol(self) -> Protocol:
        """The weights' own test protocol (its clips and crops): what `clips="protocol"` runs."""
        return self.protocol_with("protocol")

    @property
    def provenance(self) -> Provenance:
        """Architecture, weights name and the weights file's sha256 (hashed on first use)."""
        return self.weights.provenance_of()

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    @property
    def precision_note(self) -> str:
        """What a user should know about the precision in use ("" when nothing): bf16 on a
        CPU without it in hardware is emulated, and slower than fp32."""
        return self.backend.precision_note

    def protocol_with(self, clips: int | str = 1, crops: int = 1) -> Protocol:
        """The protocol at `clips` (a number, or "protocol" for the recorded number) x `crops`."""
        if clips == "protocol" and self.recorded_protocol is None:
            warnings.warn(f"{self.provenance.weights} record no test protocol: clips='protocol' "
                          "uses the defaults (1 clip)", stacklevel=3)
        return protocol_for(self.cfg, self.recorded_protocol, clips, crops, self.frames,
                            self.fps)

    # ---- the model -----------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) in fp32 on the CPU, from normalised float clips (N, 3, T, H, W)
        (images: (N, 3, H, W)), run at the pipeline's device and precision."""
        return self.backend.forward(x)

    # ---- files ---------------------------------------------------------------------------

    def preprocess(self, path: PathLike, clips: int | str = 1, crops: int = 1) -> torch.Tensor:
        """The views of one file exactly as the model gets them: normalised floats
        (views, 3, T, H, W), or (views, 3, H, W) for an image model. Raises MediaError."""
        protocol = self.protocol_with(clips, crops)
        item = self._one_item(path)
        prepared = prepare(Task(0, item.path, item.kind), protocol)
        if prepared.error:
            raise MediaError(f"{path}: {prepared.error}")
        return normalise(torch.from_numpy(prepared.views), protocol, self.cfg.is_video)

    def _one_item(self, path: PathLike) -> InputItem:
        items = find_inputs([str(path)]).items
        if len(items) != 1 or Path(path).is_dir():
            raise MediaError(f"{path}: one video or image file, please (for folders and "
                             "globs, use classify)")
        [item] = items
        error = item.error or kind_error(item.kind, self.cfg.is_video)
        if error:
            raise MediaError(f"{path}: {error}")
        return item

    def __call__(self, path: PathLike | list[PathLike] | tuple[PathLike, ...], top_k: int = 5,
                 clips: int | str = 1, crops: int = 1) -> list[dict[str, Any]] | list[list]:
        """Top-k labels of one file: [{"label": ..., "score": ...}, ...]; of a list of files,
        one such list per file, in the list's order (as Hugging Face's pipelines answer).
        Raises MediaError, naming the first file that has no labels."""
        if isinstance(path, (list, tuple)):
            items = [self._one_item(one) for one in path]
            results = self.classify(items, top_k=top_k, clips=clips, crops=crops,
                                    workers=0 if len(items) == 1 else None, ordered=True)
            answers = []
            for one, result in zip(path, results, strict=True):
                if result.error:
                    raise MediaError(f"{one}: {result.error}")
                answers.append(result.top())
            return answers
        item = self._one_item(path)
        [result] = self.classify([item], top_k=top_k, clips=clips, crops=crops, workers=0)
        if result.error:
            raise MediaError(f"{path}: {result.error}")
        return result.top()

    def transform(self, frames: Any, clips: int | str = 1, crops: int = 1) -> torch.Tensor:
        """Frames a caller decoded (uint8, (T, H, W, 3) RGB: numpy, or a tensor) -> the
        model's input (views, 3, T, crop, crop), exactly as for a file: resized, cropped and
        standardised by the weights' protocol, like torchvision's `weights.transforms()`.
        T must be the protocol's frames x clips (`pipeline.protocol.frames`); an image
        model takes (1, H, W, 3) or (H, W, 3)."""
        import numpy as np

        protocol = self.protocol_with(clips, crops)
        array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
        if array.ndim == 3 and not self.cfg.is_video:
            array = array[None]
        wanted = protocol.frames * protocol.clips
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise UsageError(f"frames: uint8 (T, H, W, 3) RGB, not {array.dtype} "
                             f"{tuple(array.shape)}")
        if array.shape[0] != wanted:
            raise UsageError(f"frames: {wanted} for {protocol.describe()}, not "
                             f"{array.shape[0]}")
        views = make_views(array, protocol)
        return normalise(torch.from_numpy(views), protocol, self.cfg.is_video)

    def classify(self, paths: PathLike | InputItem | Iterable[PathLike | InputItem],
                 top_k: int = 5, clips: int | str = 1, crops: int = 1,
                 workers: int | None = None, timeout: float = 60.0, batch_size: int = 8,
                 decoder_messages: bool = False, features: bool = False,
                 pool: DecodePool | None = None, engine: str = "local",
                 address: str | None = None, layout: str | None = None,
                 ordered: bool = False) -> Iterator[FileResult]:
        """Label files, folders (recursively) and globs: one FileResult per file, as each
        completes. Bad files are results with an `error`, never exceptions.

        `workers` decoding processes (None: one per core, up to 4; 0: decode in this
        process, without the per-file `timeout`); `batch_size` views per model call;
        `features`: also give each result the pooled feature (the head's input, float32,
        mean over the views) as `result.feature`; `pool`: decoders the caller keeps open
        across calls (`self.decode_pool()`), so a long-lived caller starts them once.
        `engine="ray"`: on a Ray cluster (`address`, else RAY_ADDRESS, else a local Ray;
        `layout`: "nodes" or "split", see engines/ray), where every worker loads these
        weights itself; `workers`, `timeout` and `pool` are the local engine's.

        Results come as files complete, so a long run's finished files are never held back
        by a slow one; `ordered=True` yields them in the inputs' order instead (holding the
        finished ones until those before them are done).
        """
        if top_k < 1:
            raise UsageError(f"top_k: at least 1, not {top_k}")
        job = ClassifyJob(self.labels, self.protocol_with(clips, crops), self.cfg.is_video,
                          top_k, features)
        chosen = engine_for(engine, RunOptions(batch_size, workers, timeout, decoder_messages,
                                               pool, address=address, layout=layout,
                                               rebuild=self.source))
        items = self._items(paths)
        results = chosen.classify(job, items, self.backend)
        return in_order(results, items) if ordered else results

    @staticmethod
    def _items(paths: PathLike | InputItem | Iterable[PathLike | InputItem]
               ) -> list[InputItem]:
        if isinstance(paths, (str, os.PathLike, InputItem)):
            paths = [paths]
        return as_items(paths)

    def decode_pool(self, workers: int | None = None, timeout: float = 60.0,
                    clips: int | str = 1, crops: int = 1) -> DecodePool:
        """Decoding workers to pass to several `classify` calls (close it when done)."""
        if workers is None:
            workers = default_workers(self.device.type)
        return DecodePool(max(1, workers), self.protocol_with(clips, crops), timeout)

    def segments(self, video: VideoTimeline, smooth: int = 1, threshold: float = 0.0,
                 min_segment: float = 0.0) -> list[Segment]:
        """A timeline's segments, exactly as `mvit timeline --smooth --threshold
        --min-segment` writes them: each window's softmax averaged over `smooth` windows,
        consecutive windows with the same top label merged, windows whose top score is under
        `threshold` unlabelled, segments shorter than `min_segment` seconds absorbed."""
        if smooth < 1 or not 0.0 <= threshold <= 1.0 or not min_segment >= 0:
            raise UsageError(f"smooth: at least 1 (not {smooth}); threshold: 0 to 1 (not "
                             f"{threshold}); min_segment: 0 or more (not {min_segment})")
        return segments(video.windows, self.labels, video.duration, smooth, threshold,
                        min_segment)

    def windowing(self, window: float | None = None, stride: float | None = None) -> Windowing:
        """The timeline's windows for these weights (see media/windows.py)."""
        return windowing_for(self.protocol_with(1, 1), window, stride)

    def timeline(self, paths: PathLike | InputItem | Iterable[PathLike | InputItem],
                 window: float | None = None, stride: float | None = None,
                 workers: int | None = None, timeout: float = 60.0, batch_size: int = 8,
                 decoder_messages: bool = False, features: bool = False,
                 on_probe: Callable[[str, float], None] | None = None,
                 pool: DecodePool | None = None, engine: str = "local",
                 address: str | None = None) -> Iterator[VideoTimeline]:
        """Labels over time: one VideoTimeline per video (its windows' start, end, softmax
        and, with `features`, pooled feature), as each video is done. A window is one clip
        as the protocol samples it (or `window` seconds for weights that spread their
        frames over a clip); windows start every `stride` seconds (half a window).

        `pool`: decoders kept open across calls (`self.decode_pool()`). `engine="ray"`: each
        video on one node of a Ray cluster (as `classify`'s nodes layout), where `on_probe`
        is told a video's length once it is done rather than once it is probed.
        """
        if not self.cfg.is_video:
            raise UsageError(f"{self.cfg.name} is an image model: a timeline needs a video one")
        protocol = self.protocol_with(1, 1)
        job = TimelineJob(protocol, windowing_for(protocol, window, stride), features)
        chosen = engine_for(engine, RunOptions(batch_size, workers, timeout, decoder_messages,
                                               pool, on_probe, address=address,
                                               rebuild=self.source))
        return chosen.timeline(job, self._items(paths), self.backend)


def in_order(results: Iterable[FileResult], items: list[InputItem]) -> Iterator[FileResult]:
    """`results` (one per item, in any order) in the items' order."""
    positions: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        positions.setdefault(item.path, []).append(index)
    held: dict[int, FileResult] = {}
    next_index = 0
    for result in results:  # an input named twice has two results, taken in turn
        held[positions[result.path].pop(0)] = result
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1
    yield from (held[index] for index in sorted(held))
