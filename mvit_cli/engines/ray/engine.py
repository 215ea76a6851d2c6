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

This module is the Ray plumbing only; what a batch's rows hold (`batch_rows`) and how the work
is cut into calls over the nodes (`scheduling`) live beside it without Ray, so the fast tests
check them (tests/test_ray_rows.py).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from ...allocator import ENVIRONMENT_VARIABLE, asked_in_cpu_runs
from ...errors import UsageError
from ...extras import install_hint
from ...jobs.classify import ClassifyJob, FileResult
from ...jobs.timeline import TimelineJob, VideoTimeline
from . import scheduling
from .batch_rows import decode_row, file_result, input_items, one_per_item, score_batch

if TYPE_CHECKING:
    from ...assembly import LoadArguments


def _worker_backend(arguments: LoadArguments, device: str):
    """The driver's backend, rebuilt in a worker from what the driver loaded it from."""
    from ...assembly import assemble

    _, backend, _ = assemble(arguments.weights, arguments.model, arguments.labels, device,
                             arguments.precision, "torch", False)
    return backend


def require_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: {install_hint('ray')}") from None
    return ray


# Object-store and Hub settings the driver has and the workers need: a cluster's workers
# start from their node's environment, not the driver's.
FORWARDED_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                       "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION",
                       "AWS_REGION", "GOOGLE_APPLICATION_CREDENTIALS", "HF_ENDPOINT",
                       "HF_TOKEN", "HF_HUB_OFFLINE", "MVIT_KEEP_FREED_MEMORY")


def connect(address: str | None) -> None:
    """Join a cluster (--address, else RAY_ADDRESS), or start a local Ray; reuse one the
    process already started (the Python API's way to pass a runtime_env of its own).
    The variables above that are set here are passed on to the workers."""
    ray = require_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    env_vars = {name: os.environ[name] for name in FORWARDED_VARIABLES if name in os.environ}
    if asked_in_cpu_runs() and ENVIRONMENT_VARIABLE not in os.environ:
        env_vars[ENVIRONMENT_VARIABLE] = "1"  # the command's CPU workers keep freed memory too
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR,  # its start-up lines are not the user's concern
             runtime_env={"env_vars": env_vars} if env_vars else None)


class ModelActor:
    """Holds the backend; scores the decoded views of a batch of inputs into the job's rows."""

    def __init__(self, arguments: LoadArguments, job: ClassifyJob, threads: int,
                 gpu: bool) -> None:
        import torch

        # Ray's OMP_NUM_THREADS is the actor's CPUs; on a CPU cluster the model gets the
        # node's (all of them beside decoding measured faster than one: RESULTS.md, Engines).
        torch.set_num_threads(max(1, threads))
        self.job = job
        self.backend = _worker_backend(arguments, "cuda" if gpu else "cpu")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        return score_batch(batch, lambda views: self.backend.score(views, self.job.protocol)[0],
                           self.job)


class NodeActor:
    """A CPU node's whole pipeline: the local engine (its decoders, their deadlines, its
    batching) over each list of paths it is sent, for classify or for timelines.

    Why not decoding tasks beside the model on a CPU node: the model's threads use every
    core, and a decoder running beside them stalls them at each step, so the local engine
    lets decoding and the model take turns; this keeps that. Why core Ray rather than Ray
    Data here: Ray Data's executor and its helper actors took a share of the cores the
    model needs.
    (benchmarks/bench_engines.py measures all three on this machine; RESULTS.md.)"""

    def __init__(self, arguments: LoadArguments, cpus: int) -> None:
        import torch

        torch.set_num_threads(max(1, cpus))  # Ray's OMP_NUM_THREADS says 1
        self.cpus = max(1, cpus)
        self.backend = _worker_backend(arguments, "cpu")
        self.pools: dict[tuple, Any] = {}  # decoders, kept across lists: started once

    def _local(self, job: ClassifyJob | TimelineJob, timeout: float, batch_size: int = 8):
        """The local engine on this node's decoders (started for the first list)."""
        from ..options import RunOptions
        from ..local.engine import LocalEngine
        from ..local.workers import DecodePool

        key = (job.protocol, timeout)
        if key not in self.pools:
            self.pools[key] = DecodePool(self.cpus, job.protocol, timeout)
        return LocalEngine(RunOptions(batch_size=batch_size, timeout=timeout,
                                      pool=self.pools[key]))

    def classify(self, paths: list[str], job: ClassifyJob) -> list[FileResult]:
        items = input_items(paths)
        engine = self._local(job, 60.0)
        return one_per_item(items, lambda: engine.classify(job, items, self.backend),
                            lambda path, error: FileResult(path, error=error))

    def timeline(self, paths: list[str], job: TimelineJob, timeout: float,
                 batch_size: int) -> list[VideoTimeline]:
        items = input_items(paths)
        engine = self._local(job, timeout, batch_size)
        return one_per_item(items, lambda: engine.timeline(job, items, self.backend),
                            lambda path, error: VideoTimeline(path, error=error))


def _cpu_nodes() -> list[dict]:
    import ray

    return scheduling.cpu_nodes(ray.nodes())


def _run_on_nodes(paths: list[str], rebuild: LoadArguments, files_per_call: int,
                  job: str = "classify", arguments: tuple = (),
                  failed: Callable[[str, str], Any] = lambda path, error: FileResult(
                      path, error=error)) -> Iterator[Any]:
    """One NodeActor per CPU node, each sent lists of paths for `job` (a NodeActor method,
    given the list and `arguments`), two lists in flight (one running, one waiting, so no
    actor idles between lists). `failed(path, error)`: a path's result when its actor
    died."""
    import ray

    nodes = _cpu_nodes()
    cpus = scheduling.node_cpus(nodes)
    remote = ray.remote(NodeActor).options(num_cpus=cpus, max_restarts=2,
                                           scheduling_strategy="SPREAD")
    actors = [remote.remote(rebuild, cpus) for _ in nodes]
    try:
        yield from scheduling.run_calls(
            actors, scheduling.in_calls(paths, files_per_call),
            send=lambda actor, chunk: getattr(actor, job).remote(chunk, *arguments),
            first_done=lambda refs: ray.wait(refs, num_returns=1)[0][0],
            results=ray.get, failed=failed)
    finally:  # whatever ended the loop (Ctrl-C too): the actors and their lists go now
        for actor in actors:
            ray.kill(actor)


class RayEngine:
    """`engine="ray"`: each worker rebuilds the driver's backend from `options.rebuild`."""

    name = "ray"
    decodes_here = False

    @classmethod
    def check(cls, features: bool) -> None:
        """Refuse, before anything loads, what this engine cannot do."""
        require_ray()
        if features:
            raise UsageError("features are not available with the Ray engine yet")

    def __init__(self, options) -> None:
        require_ray()
        if options.rebuild is None:
            raise UsageError("a pipeline built from a Python model cannot be rebuilt on Ray "
                             "workers: load() it from a weights file")
        self.options = options

    def classify(self, job: ClassifyJob, items: Iterable, backend=None) -> Iterator[FileResult]:
        """InputItems' results: those the driver already knows to be bad first, then the
        cluster's, in the order they finish.

        `options.layout`: "nodes" (one local engine per CPU node; the default without GPUs)
        or "split" (Ray Data: decoding tasks on every CPU, a model actor per GPU; the
        default with GPUs)."""
        if job.features:
            raise UsageError("features are not available with the Ray engine yet")
        items = list(items)
        return self._classify(job, items)

    def _classify(self, job: ClassifyJob, items: list) -> Iterator[FileResult]:
        for item in items:
            if item.error:
                yield FileResult(item.path, error=item.error)
        paths = [item.path for item in items if not item.error]
        connect(self.options.address)
        import ray

        if not paths:
            return
        gpus = int(ray.cluster_resources().get("GPU", 0))
        layout = scheduling.choose_layout(self.options.layout, gpus)
        views_per_call = scheduling.files_per_call(self.options.batch_size, job.protocol.views)
        if layout == "nodes":
            yield from _run_on_nodes(paths, self.options.rebuild,
                                     files_per_call=views_per_call, arguments=(job,))
        else:
            yield from _run_split(paths, self.options.rebuild, job, views_per_call, gpus)

    def timeline(self, job: TimelineJob, items: Iterable, backend=None
                 ) -> Iterator[VideoTimeline]:
        """One VideoTimeline per InputItem, each video's windows computed on one node by the
        local engine (so the same windows, stretches and deadlines), one video per call:
        videos differ in length far more than files do, and a long one should not hold
        others back behind it. Those the driver already knows to be bad come first.
        `options.on_probe` is told a video's length once it is done."""
        if job.features:
            raise UsageError("features are not available with the Ray engine yet")
        return self._timeline(job, list(items))

    def _timeline(self, job: TimelineJob, items: list) -> Iterator[VideoTimeline]:
        for item in items:
            if item.error:
                yield VideoTimeline(item.path, error=item.error)
        paths = [item.path for item in items if not item.error]
        if not paths:
            return
        connect(self.options.address)
        for video in _run_on_nodes(
                paths, self.options.rebuild, files_per_call=1, job="timeline",
                arguments=(job, self.options.timeout, self.options.batch_size),
                failed=lambda path, error: VideoTimeline(path, error=error)):
            if self.options.on_probe is not None and video.ok:
                self.options.on_probe(video.path, video.duration)
            yield video


def _run_split(paths: list[str], arguments: LoadArguments, job: ClassifyJob,
               views_per_call: int, gpus: int) -> Iterator[FileResult]:
    """Ray Data: decoding as CPU tasks, the model as an actor pool (one actor per GPU)."""
    import ray

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    actor_cpus, threads = scheduling.model_actor_resources(
        gpus, scheduling.node_cpus(_cpu_nodes()))
    dataset = ray.data.from_items([{"path": p} for p in paths],
                                  override_num_blocks=min(len(paths), 64))
    dataset = dataset.map(decode_row, fn_kwargs={"protocol": job.protocol,
                                                 "video_model": job.video},
                          num_cpus=0.5)
    dataset = dataset.map_batches(
        ModelActor, fn_constructor_kwargs={"arguments": arguments, "job": job,
                                           "threads": threads, "gpu": bool(gpus)},
        compute=ray.data.ActorPoolStrategy(size=gpus or 1), num_cpus=actor_cpus,
        num_gpus=1 if gpus else 0, batch_size=views_per_call)
    for row in dataset.iter_rows():
        yield file_result(row)
