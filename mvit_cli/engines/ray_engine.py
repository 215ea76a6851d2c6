"""`--engine ray`: the classify and timeline pipelines on a Ray cluster.

CPU tasks decode (the project's own `prepare`: the same sampling, views and error rows as
the local engine); an actor pool holds the model, loaded once per actor (one GPU per actor
where the cluster has GPUs, else torch's threads set to the actor's CPUs); the driver gets
one row per input and writes it with the local engine's output writers, so outputs, resume
and provenance are the same. Pitfalls handled, each measured with ray 2.60:
- Exactly one row per input: failures become error rows inside each stage (Ray's
  `max_errored_blocks` would drop whole blocks silently).
- Distinct resource requests keep decoding and the model in two stages (equal requests fuse
  a CPU map into the actor, which then decodes serially).
- Ray sets OMP_NUM_THREADS to the actor's CPUs (1 by default): torch's threads are set from
  the actor's own CPU request.
- `num_gpus` is asked for only where the cluster has GPUs (otherwise the job waits for ever).
- `compute=ActorPoolStrategy(...)`, not the deprecated `concurrency=`.

Timelines run in the `nodes` layout only: a video's windows are decoded in stretches that
each seek once, which is the local engine's work on one node; splitting one video across
nodes would decode the stretch boundaries twice for little gain on collections of many.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from ..classify.results import FileResult
from ..errors import UsageError
from ..media.protocol import Protocol
from ..media.windows import Windowing

if TYPE_CHECKING:
    from ..timeline.engine import VideoTimeline


@dataclass(frozen=True)
class ModelSpec:
    """What an actor needs to load the same pipeline as the driver."""

    weights: str | None
    model: Any  # an architecture's name or MViTConfig, as load() takes it
    labels: Any  # as load() takes them: a list, a shipped set's name or a file
    precision: str
    top_k: int
    clips: int | str
    crops: int


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'mvit-cli[ray]'") from None
    return ray


# Object-store and Hub settings the driver has and the workers need: a cluster's workers
# start from their node's environment, not the driver's.
FORWARDED_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                       "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION",
                       "AWS_REGION", "GOOGLE_APPLICATION_CREDENTIALS", "HF_ENDPOINT",
                       "HF_TOKEN", "HF_HUB_OFFLINE")


def connect(address: str | None) -> None:
    """Join a cluster (--address, else RAY_ADDRESS), or start a local Ray; reuse one the
    process already started (the Python API's way to pass a runtime_env of its own).
    The variables above that are set here are passed on to the workers."""
    ray = require_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    env_vars = {name: os.environ[name] for name in FORWARDED_VARIABLES if name in os.environ}
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR,  # its start-up lines are not the user's concern
             runtime_env={"env_vars": env_vars} if env_vars else None)


def _decode_row(row: dict[str, Any], protocol: Protocol, video_model: bool) -> dict[str, Any]:
    """A CPU task: one input to its views (as bytes), or to its error row."""
    from ..classify.workers import Task, prepare
    from ..media.discover import kind_error
    from ..media.sources import unchecked_item

    path = row["path"]
    out = {"path": path, "views": b"", "shape": [], "error": "", "duration": -1.0,
           "frames": -1, "warning": ""}
    try:
        item = unchecked_item(path)
        error = item.error or kind_error(item.kind, video_model)
        if error:
            out["error"] = error
            return out
        prepared = prepare(Task(0, path, item.kind), protocol)
        if prepared.error:
            out["error"] = prepared.error
            return out
        out.update(views=prepared.views.tobytes(), shape=list(prepared.views.shape),
                   duration=float(prepared.duration) if video_model else -1.0,
                   frames=int(prepared.source_frames) if video_model else -1,
                   warning=prepared.warning)
    except Exception as exc:  # noqa: BLE001 - every input keeps its row
        out["error"] = _error_text(exc)
    return out


class ModelActor:
    """Holds the pipeline; scores the decoded views of a batch of inputs."""

    def __init__(self, spec: ModelSpec, threads: int, gpu: bool) -> None:
        import torch

        from ..api import load

        # Ray's OMP_NUM_THREADS is the actor's CPUs; on a CPU cluster the model gets the
        # node's (2 threads beside decoding measured faster than 1 on 2 cores).
        torch.set_num_threads(max(1, threads))
        self.spec = spec
        self.clf = load(spec.weights, model=spec.model, labels=spec.labels,
                        device="cuda" if gpu else "cpu", precision=spec.precision)
        self.protocol = self.clf.protocol_with(spec.clips, spec.crops)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        import torch

        out: dict[str, list] = {"path": [], "labels": [], "scores": [], "error": [],
                                "duration": [], "frames": [], "views": [], "warning": []}
        for i, path in enumerate(batch["path"]):
            error, labels, scores, count = str(batch["error"][i]), [], [], 0
            if not error:
                try:
                    views = np.frombuffer(batch["views"][i], dtype=np.uint8).reshape(
                        [int(n) for n in batch["shape"][i]])
                    probs, _ = self.clf._probabilities(torch.from_numpy(views.copy()),
                                                       self.protocol)
                    mean = probs.mean(dim=0)
                    top = mean.topk(min(self.spec.top_k, mean.numel()))
                    labels = [self.clf.labels[j] for j in top.indices.tolist()]
                    scores = [float(s) for s in top.values]
                    count = len(views)
                except Exception as exc:  # noqa: BLE001 - the row stays, with its error
                    error = _error_text(exc)
            for key, value in (("path", str(path)), ("labels", labels), ("scores", scores),
                               ("error", error), ("duration", float(batch["duration"][i])),
                               ("frames", int(batch["frames"][i])), ("views", count),
                               ("warning", str(batch["warning"][i]))):
                out[key].append(value)
        return out


class NodeActor:
    """A CPU node's whole pipeline: the local engine (its decoders, their deadlines, its
    batching) over each list of paths it is sent, for classify or for timelines.

    Why not decoding tasks beside the model on a CPU node: the model's threads use every
    core, and a decoder running beside them stalls them at each step, so the local engine
    lets decoding and the model take turns; this keeps that. Why core Ray rather than Ray
    Data here: Ray Data's executor and its helper actors cost this layout 15% of 2 cores.
    (benchmarks/bench_engines.py measures all three on this machine; RESULTS.md.)"""

    def __init__(self, spec: ModelSpec, cpus: int) -> None:
        import torch

        from ..api import load

        torch.set_num_threads(max(1, cpus))  # Ray's OMP_NUM_THREADS says 1
        self.spec, self.cpus = spec, max(1, cpus)
        self.clf = load(spec.weights, model=spec.model, labels=spec.labels, device="cpu",
                        precision=spec.precision)
        self.pools: dict[tuple, Any] = {}  # decoders, kept across lists: started once

    def _pool(self, clips: int | str, crops: int, timeout: float):
        key = (clips, crops, timeout)
        if key not in self.pools:
            self.pools[key] = self.clf.decode_pool(self.cpus, timeout, clips=clips,
                                                   crops=crops)
        return self.pools[key]

    def classify(self, paths: list[str]) -> list[FileResult]:
        items = _items(paths)
        return _one_per_item(items, lambda: self.clf.classify(
            items, top_k=self.spec.top_k, clips=self.spec.clips, crops=self.spec.crops,
            pool=self._pool(self.spec.clips, self.spec.crops, 60.0)),
            lambda path, error: FileResult(path, error=error))

    def timeline(self, paths: list[str], windowing: Windowing, timeout: float,
                 batch_size: int) -> list[VideoTimeline]:
        from ..timeline.engine import VideoTimeline

        items = _items(paths)
        return _one_per_item(items, lambda: self.clf.timeline(
            items, window=windowing.length, stride=windowing.stride, timeout=timeout,
            batch_size=batch_size, pool=self._pool(1, 1, timeout)),
            lambda path, error: VideoTimeline(path, error=error))


def _one_per_item(items: list, run: Callable[[], Iterable], failed: Callable[[str, str], Any]
                  ) -> list:
    """The results `run()` yields (each with a `path`), one per item in the items' order;
    an item the run failed on, or never reached, gets `failed(path, error)`."""
    done: dict[str, Any] = {}
    try:
        for result in run():
            done[result.path] = result
    except Exception as exc:  # noqa: BLE001 - the list's rows stay, with the error
        for item in items:
            done.setdefault(item.path, failed(item.path, _error_text(exc)))
    return [done.get(item.path) or failed(item.path, "no result") for item in items]


def _items(paths: list[str]) -> list:
    from ..media.discover import InputItem
    from ..media.sources import unchecked_item

    items = []
    for path in paths:
        try:
            items.append(unchecked_item(path))
        except Exception as exc:  # noqa: BLE001 - every input keeps its row
            items.append(InputItem(path, None, _error_text(exc)))
    return items


def _error_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _cpu_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU")]


def _node_cpus(nodes: list[dict] | None = None) -> int:
    """The CPUs of the smallest node (an actor asking for them fits on every node)."""
    return max(1, int(min(n["Resources"]["CPU"] for n in nodes or _cpu_nodes())))


def _run_on_nodes(paths: list[str], spec: ModelSpec, files_per_call: int,
                  job: str = "classify", arguments: tuple = (),
                  failed: Callable[[str, str], Any] = lambda path, error: FileResult(
                      path, error=error)) -> Iterator[Any]:
    """One NodeActor per CPU node, each sent lists of paths for `job` (a NodeActor method,
    given the list and `arguments`), two lists in flight (one running, one waiting, so no
    actor idles between lists). `failed(path, error)`: a path's result when its actor
    died."""
    import ray

    nodes = _cpu_nodes()
    cpus = _node_cpus(nodes)
    remote = ray.remote(NodeActor).options(num_cpus=cpus, max_restarts=2,
                                           scheduling_strategy="SPREAD")
    actors = [remote.remote(spec, cpus) for _ in nodes]
    lists = [paths[i:i + files_per_call] for i in range(0, len(paths), files_per_call)]
    lists.reverse()  # popped from the end: in order
    running: dict[Any, tuple[Any, list[str]]] = {}

    def send(actor) -> None:
        if lists:
            chunk = lists.pop()
            running[getattr(actor, job).remote(chunk, *arguments)] = (actor, chunk)

    try:
        for actor in actors:
            send(actor)
            send(actor)
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, chunk = running.pop(ref)
            try:
                results = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead actor: its list's rows stay
                results = [failed(p, f"the Ray worker failed: {_error_text(exc)}")
                           for p in chunk]
            yield from results
            send(actor)
    finally:  # whatever ended the loop (Ctrl-C too): the actors and their lists go now
        for actor in actors:
            ray.kill(actor)


def timeline_on_ray(items: Iterable, spec: ModelSpec, windowing: Windowing, timeout: float,
                    batch_size: int = 8, address: str | None = None
                    ) -> Iterator[VideoTimeline]:
    """One VideoTimeline per InputItem, each video's windows computed on one node by the
    local timeline engine (so the same windows, stretches and deadlines), one video per call:
    videos differ in length far more than files do, and a long one should not hold others
    back behind it. Those the driver already knows to be bad come first."""
    from ..timeline.engine import VideoTimeline

    items = list(items)
    for item in items:
        if item.error:
            yield VideoTimeline(item.path, error=item.error)
    paths = [item.path for item in items if not item.error]
    if not paths:
        return
    connect(address)
    yield from _run_on_nodes(paths, spec, files_per_call=1, job="timeline",
                             arguments=(windowing, timeout, batch_size),
                             failed=lambda path, error: VideoTimeline(path, error=error))


def classify_items_on_ray(items: Iterable, spec: ModelSpec, protocol: Protocol,
                          video_model: bool, batch_size: int = 8, address: str | None = None,
                          layout: str | None = None) -> Iterator[FileResult]:
    """InputItems' results: those the driver already knows to be bad first, then the
    cluster's."""
    items = list(items)
    for item in items:
        if item.error:
            yield FileResult(item.path, error=item.error)
    yield from classify_on_ray([item.path for item in items if not item.error], spec,
                               protocol, video_model, batch_size, address, layout)


def classify_on_ray(paths: Iterable[str], spec: ModelSpec, protocol: Protocol,
                    video_model: bool, batch_size: int = 8, address: str | None = None,
                    layout: str | None = None) -> Iterator[FileResult]:
    """One FileResult per path, in the order they finish.

    `layout`: "nodes" (one local engine per CPU node; the default without GPUs) or "split"
    (Ray Data: decoding tasks on every CPU, a model actor per GPU; the default with GPUs).
    """
    connect(address)
    import ray

    paths = list(paths)
    if not paths:
        return
    gpus = int(ray.cluster_resources().get("GPU", 0))
    layout = layout or ("split" if gpus else "nodes")
    views_per_call = max(1, batch_size // max(1, protocol.views))
    if layout == "nodes":
        yield from _run_on_nodes(paths, spec, files_per_call=views_per_call)
    elif layout == "split":
        yield from _run_split(paths, spec, protocol, video_model, views_per_call, gpus)
    else:
        raise UsageError(f"Ray layout: nodes or split, not {layout!r}")


def _run_split(paths: list[str], spec: ModelSpec, protocol: Protocol, video_model: bool,
               views_per_call: int, gpus: int) -> Iterator[FileResult]:
    """Ray Data: decoding as CPU tasks, the model as an actor pool (one actor per GPU)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    cpus = _node_cpus()
    # Decoding asks for half a CPU, the model for whole ones: distinct requests keep two
    # stages (equal ones would fuse decoding into the actor, which then decodes serially).
    actor_cpus = 1.0 if gpus else max(1.0, float(cpus // 2))
    dataset = ray.data.from_items([{"path": p} for p in paths],
                                  override_num_blocks=min(len(paths), 64))
    dataset = dataset.map(_decode_row, fn_kwargs={"protocol": protocol,
                                                  "video_model": video_model},
                          num_cpus=0.5)
    dataset = dataset.map_batches(
        ModelActor, fn_constructor_kwargs={"spec": spec, "threads": 1 if gpus else cpus, "gpu": bool(gpus)},
        compute=ray.data.ActorPoolStrategy(size=gpus or 1), num_cpus=actor_cpus,
        num_gpus=1 if gpus else 0, batch_size=views_per_call)
    for row in dataset.iter_rows():
        error = str(row["error"])
        duration = float(row["duration"])
        frames = int(row["frames"])
        yield FileResult(
            str(row["path"]), labels=list(row["labels"]) if not error else [],
            scores=[float(s) for s in row["scores"]] if not error else [], error=error,
            duration=duration if duration >= 0 else None,
            frames=frames if frames >= 0 else None, views=int(row["views"]),
            warning=str(row["warning"]))
