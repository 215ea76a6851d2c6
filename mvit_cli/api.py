"""`mvit_cli.load`: the one pipeline from weights to labels, for every front end.

weights -> architecture, labels and test protocol (`resolve`) -> decoding and sampling
(`media`, in worker processes) -> views batched across files through the model (`classify`)
-> one result per file. `mvit classify` is a thin layer over `Pipeline.classify`; Python
users get the same numbers from the same code::

    clf = mvit_cli.load("b16x4-k400")
    clf("clip.mp4", top_k=3)          # [{"label": "abseiling", "score": 0.91}, ...]
    x = clf.preprocess("clip.mp4")    # (views, 3, T, H, W): exactly what the model gets
    logits = clf.forward(x)           # fp32 logits, at the pipeline's precision and device
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch

from .jobs.classify import FileResult
from .engines.local.runner import BatchRunner
from .engines.local.workers import DecodePool, Task, default_workers, prepare
from .devices import precision_name, resolve_device, resolve_precision
from .errors import UsageError
from .labels import LabelsError, choose_labels
from .media.decode import MediaError
from .media.discover import InputItem, find_inputs, kind_error
from .media.protocol import Protocol, check_recorded, protocol_for
from .media.transform import normalise
from .media.windows import Windowing, windowing_for
from .models.config import MViTConfig
from .models.fast.clip_batches import map_clips
from .resolve import LabelsArgument, Provenance, given_labels, resolve

if TYPE_CHECKING:
    from .models.model import MultiscaleTransformer
    from .engines.local.timeline_runner import VideoTimeline

BACKENDS = ("torch", "openvino")
PathLike = str | os.PathLike


def load(weights: PathLike | None = None, *, model: str | MViTConfig | None = None,
         labels: LabelsArgument = None, device: str = "auto", precision: str = "auto",
         backend: str = "torch", compile: bool = False) -> Pipeline:
    """Resolve weights once and return a ready classifier.

    `weights`: a registry name (`mvit weights list`; downloaded, verified and cached on first
    use), a checkpoint file in any supported layout, or None for the default weights (of
    `model`, if given). `model` names the architecture where the file does not decide it.
    `labels`: class names (a list, a shipped set's name, or a file of one per line) overriding
    those of the weights. `device`: auto, cpu, cuda, cuda:N or mps. `precision`: auto, fp32,
    bf16 or fp16. `compile`: torch.compile the model (a slow first batch; for big folders).
    `backend`: torch, or openvino (CPU only: the ONNX export compiled by OpenVINO at fp32 or
    bf16, cached on disk; see openvino_backend.py).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}: available: {', '.join(BACKENDS)}")
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    if backend == "openvino" and (torch_device.type != "cpu" or compile):
        raise UsageError("the OpenVINO backend runs on the CPU, without --compile")
    if backend == "openvino":
        from .backends.openvino import require_openvino

        require_openvino()  # before resolving (and perhaps downloading) anything
    resolved = resolve(weights, model=model, labels=labels)
    if str(precision).strip().lower() == "auto":  # the weights' measured bf16 may decide
        dtype = resolve_precision(precision, torch_device,
                                  resolved.entry.bf16 if resolved.entry is not None else None)
    pipeline = Pipeline(resolved.model, resolved.labels, resolved.recorded_protocol,
                        lambda: resolved.provenance, torch_device, dtype, compile=compile,
                        cast=backend == "torch")
    # What another process (a Ray worker) needs to load the same pipeline; files by their
    # absolute paths, since a worker's working folder is its own.
    # What the weights know, from their registry entry ("" when it says nothing).
    pipeline.note = resolved.entry.note if resolved.entry is not None else ""
    pipeline.source = LoadArguments(_absolute_if_file(weights), model,
                                    _absolute_if_file(labels), precision_name(dtype))
    if backend == "openvino":
        from .backends.openvino import OpenVinoForward

        pipeline._forward = OpenVinoForward(pipeline, dtype)
        pipeline.backend = backend
    return pipeline


@dataclass(frozen=True)
class LoadArguments:
    weights: str | None
    model: str | MViTConfig | None
    labels: LabelsArgument
    precision: str


def _absolute_if_file(value):
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        return os.path.abspath(value)
    return os.fspath(value) if isinstance(value, os.PathLike) else value


class Pipeline:
    """A model with its labels and test protocol, from files (or clips) to labels."""

    def __init__(self, model: MultiscaleTransformer, labels: list[str],
                 recorded_protocol: dict[str, Any] | None,
                 provenance: Callable[[], Provenance], device: torch.device,
                 dtype: torch.dtype = torch.float32, compile: bool = False,
                 cast: bool = True) -> None:
        if device.type == "cpu":  # freed activations kept for the next forward (allocator.py)
            from .allocator import keep_freed_memory

            keep_freed_memory()
        self.model = model.to(device).eval()
        self.cfg: MViTConfig = self.model.cfg
        if len(labels) != self.model.num_classes:
            raise LabelsError(f"{len(labels)} labels for a head of {self.model.num_classes} "
                              "classes")
        self.labels: list[str] = list(labels)
        # How the weights were tested, as recorded (None: nothing records it).
        self.recorded_protocol = recorded_protocol
        self.device, self.dtype = device, dtype
        # bf16: the weights cast once (models/precision.py), inputs cast to match; fp16 keeps
        # autocast (its softmax in fp32: fp16 attention logits can overflow). Not for the
        # OpenVINO backend, which exports the fp32 model and compiles it at bf16 itself.
        self.cast = cast and dtype == torch.bfloat16
        if self.cast:
            from .models.precision import cast_for_inference

            cast_for_inference(self.model, dtype)
        self.input_dtype = dtype if self.cast else torch.float32
        self.compiled = compile
        self._provenance = provenance
        self.source: LoadArguments | None = None  # set by load(); None for from_model
        self.backend = "torch"
        self.note = ""
        self._forward = self.model
        if compile:
            from .models.model import compile_for_inference

            self._forward = compile_for_inference(self.model)

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
        return cls(model, chosen, check_recorded(protocol, name), lambda: provenance, torch_device,
                   dtype)

    # ---- what the weights are ----------------------------------------------------------

    @property
    def protocol(self) -> Protocol:
        """The weights' own test protocol (its clips and crops): what `clips="protocol"` runs."""
        return self.protocol_with("protocol")

    @property
    def provenance(self) -> Provenance:
        """Architecture, weights name and the weights file's sha256 (hashed on first use)."""
        return self._provenance()

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    @property
    def precision_note(self) -> str:
        """What a user should know about the precision in use ("" when nothing): bf16 on a
        CPU without it in hardware is emulated, and slower than fp32."""
        from .cpu_gates import gates

        if self.dtype != torch.bfloat16 or self.device.type != "cpu" or gates().native_bf16:
            return ""
        if self.backend == "openvino":
            return "this CPU has no native bf16 (AVX512-BF16 or AMX): OpenVINO runs f32"
        return ("this CPU has no native bf16 (AVX512-BF16 or AMX): torch emulates it, "
                "several times slower than fp32")

    def protocol_with(self, clips: int | str = 1, crops: int = 1) -> Protocol:
        """The protocol at `clips` (a number, or "protocol" for the recorded number) x `crops`."""
        if clips == "protocol" and self.recorded_protocol is None:
            warnings.warn(f"{self.provenance.weights} record no test protocol: clips='protocol' "
                          "uses the defaults (1 clip)", stacklevel=3)
        return protocol_for(self.cfg, self.recorded_protocol, clips, crops)

    # ---- the model -----------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes) in fp32 on the CPU, from normalised float clips (N, 3, T, H, W)
        (images: (N, 3, H, W)), run at the pipeline's device and precision."""
        with torch.inference_mode(), self._autocast():
            return self._forward(x.to(self.device, self.input_dtype)).float().cpu()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype,
                              enabled=self.dtype != torch.float32 and not self.cast)

    def _probabilities(self, views: torch.Tensor, protocol: Protocol,
                       features: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 views (B, T, c, c, 3) -> softmax (B, classes), fp32 on the CPU, and with
        `features` the head's input (B, width) too."""
        if self.device.type == "cuda":
            views = views.pin_memory().to(self.device, non_blocking=True)
        else:
            views = views.to(self.device)
        # On the CPU the model runs a batch clip by clip anyway, side by side on 2+ threads
        # (models/fast/clip_batches), so clips are also made float one at a time, each in
        # its lane: one clip's input alive per lane (9.6 MB for B-16x4), not the batch's.
        # A compiled model keeps its one batch shape.
        cpu = self.device.type == "cpu" and not self.compiled
        parts = views.split(1) if cpu else [views]
        run = self.model.forward_features if features else self._forward

        def one_part(part: torch.Tensor) -> torch.Tensor:
            return run(normalise(part, protocol, self.cfg.is_video).to(self.input_dtype))

        with torch.inference_mode(), self._autocast():
            # OpenVINO runs its own threads, on one inference request: never in lanes.
            lanes = self.model.fast_paths and self.backend == "torch"
            outputs = torch.cat(map_clips(one_part, parts, lanes=lanes))
            if features:  # the head's input, then the head (compiled graphs end in logits)
                logits, pooled = self.model.classify_features(outputs), outputs.float().cpu()
            else:
                logits, pooled = outputs, None
            return logits.float().softmax(dim=-1).cpu(), pooled

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

    def __call__(self, path: PathLike, top_k: int = 5, clips: int | str = 1,
                 crops: int = 1) -> list[dict[str, Any]]:
        """Top-k labels of one file: [{"label": ..., "score": ...}, ...]. Raises MediaError."""
        item = self._one_item(path)
        [result] = self.classify([item], top_k=top_k, clips=clips, crops=crops, workers=0)
        if result.error:
            raise MediaError(f"{path}: {result.error}")
        return result.top()

    def classify(self, paths: PathLike | InputItem | Iterable[PathLike | InputItem],
                 top_k: int = 5, clips: int | str = 1, crops: int = 1,
                 workers: int | None = None, timeout: float = 60.0, batch_size: int = 8,
                 decoder_messages: bool = False, features: bool = False,
                 pool: DecodePool | None = None, engine: str = "local",
                 address: str | None = None, layout: str | None = None
                 ) -> Iterator[FileResult]:
        """Label files, folders (recursively) and globs: one FileResult per file, as each
        completes. Bad files are results with an `error`, never exceptions.

        `workers` decoding processes (None: one per core, up to 4; 0: decode in this
        process, without the per-file `timeout`); `batch_size` views per model call;
        `features`: also give each result the pooled feature (the head's input, float32,
        mean over the views) as `result.feature`; `pool`: decoders the caller keeps open
        across calls (`self.decode_pool()`), so a long-lived caller starts them once.
        `engine="ray"`: on a Ray cluster (`address`, else RAY_ADDRESS, else a local Ray;
        `layout` as in `engines.ray_engine.classify_on_ray`), where every worker loads these
        weights itself; `workers`, `timeout` and `pool` are the local engine's.
        """
        if top_k < 1:
            raise UsageError(f"top_k: at least 1, not {top_k}")
        protocol = self.protocol_with(clips, crops)
        if isinstance(paths, (str, os.PathLike, InputItem)):
            paths = [paths]
        items: list[InputItem] = []
        arguments: list[str] = []
        for path in paths:
            if isinstance(path, InputItem):
                items.append(path)
            else:
                arguments.append(os.fspath(path))
        if arguments:
            items += find_inputs(arguments).items
        if engine == "ray":
            return self._classify_on_ray(items, protocol, top_k, clips, crops, batch_size,
                                         features, address, layout)
        if engine != "local":
            raise UsageError(f"engine: local or ray, not {engine!r}")
        runner = BatchRunner(lambda views: self._probabilities(views, protocol, features),
                             self.labels,
                             protocol, self.cfg.is_video, self.device.type, batch_size, top_k,
                             pad_batches=self.compiled, decoder_messages=decoder_messages)
        if workers is None:
            workers = default_workers(self.device.type)
        return runner.run(items, workers, timeout, pool=pool)

    def _classify_on_ray(self, items, protocol, top_k, clips, crops, batch_size, features,
                         address, layout) -> Iterator[FileResult]:
        from .engines.ray.engine import classify_items_on_ray

        spec = self._ray_spec(features, top_k, clips, crops)
        return classify_items_on_ray(items, spec, protocol, self.cfg.is_video, batch_size,
                                     address, layout)

    def decode_pool(self, workers: int | None = None, timeout: float = 60.0,
                    clips: int | str = 1, crops: int = 1) -> DecodePool:
        """Decoding workers to pass to several `classify` calls (close it when done)."""
        if workers is None:
            workers = default_workers(self.device.type)
        return DecodePool(max(1, workers), self.protocol_with(clips, crops), timeout)

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
        from .engines.local.timeline_runner import TimelineRunner, as_items

        if not self.cfg.is_video:
            raise UsageError(f"{self.cfg.name} is an image model: a timeline needs a video one")
        protocol = self.protocol_with(1, 1)
        windowing = windowing_for(protocol, window, stride)
        if isinstance(paths, (str, os.PathLike, InputItem)):
            paths = [paths]
        if engine == "ray":
            return self._timeline_on_ray(as_items(paths), windowing, timeout, batch_size,
                                         features, on_probe, address)
        if engine != "local":
            raise UsageError(f"engine: local or ray, not {engine!r}")
        runner = TimelineRunner(lambda views: self._probabilities(views, protocol, features),
                                protocol, windowing, self.device.type, batch_size,
                                decoder_messages)
        if workers is None:
            workers = default_workers(self.device.type)
        return runner.run(as_items(paths), workers, timeout, on_probe=on_probe, pool=pool)

    def _ray_spec(self, features: bool, top_k: int = 1, clips: int | str = 1,
                  crops: int = 1):
        """What a Ray worker needs to load this same pipeline, or a one-line refusal."""
        from .engines.ray.engine import ModelSpec, require_ray

        require_ray()
        if features:
            raise UsageError("features are not available with the Ray engine yet")
        if self.source is None:
            raise UsageError("a pipeline built from a Python model cannot be rebuilt on Ray "
                             "workers: load() it from a weights file")
        return ModelSpec(self.source.weights, self.source.model, self.source.labels,
                         self.source.precision, top_k, clips, crops)

    def _timeline_on_ray(self, items, windowing, timeout, batch_size, features, on_probe,
                         address) -> Iterator[VideoTimeline]:
        from .engines.ray.engine import timeline_on_ray

        spec = self._ray_spec(features)  # refused now, not at the first result

        def videos() -> Iterator[VideoTimeline]:
            for video in timeline_on_ray(items, spec, windowing, timeout, batch_size,
                                         address):
                if on_probe is not None and video.ok:
                    on_probe(video.path, video.duration)
                yield video

        return videos()

