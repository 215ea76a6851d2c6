"""How the Ray engine cuts up a run: which nodes count, what an actor asks for, how many files
go in one call, which layout runs, and the loop that keeps each actor two calls deep.

Free of Ray (its calls come in as functions) so that the arithmetic, the order of the calls
and the rows of a call whose actor died are tested without a cluster.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Iterator, Sequence, TypeVar

from ...errors import UsageError
from .batch_rows import error_text

Actor = TypeVar("Actor")
Result = TypeVar("Result")

LAYOUTS = ("nodes", "split")


def cpu_nodes(nodes: Sequence[dict]) -> list[dict]:
    """The nodes (as `ray.nodes()` lists them) an actor can run on: alive, with CPUs (a
    head node started with --num-cpus=0 takes no work)."""
    return [n for n in nodes if n.get("Alive") and n["Resources"].get("CPU")]


def node_cpus(nodes: Sequence[dict]) -> int:
    """The CPUs of the smallest node: an actor asking for them fits on every node."""
    return max(1, int(min(n["Resources"]["CPU"] for n in nodes)))


def files_per_call(batch_size: int, views_per_file: int) -> int:
    """Files per call (or per Ray Data batch) so that a call holds about `batch_size` views,
    as a local batch does; at least one file."""
    return max(1, batch_size // max(1, views_per_file))


def choose_layout(layout: str | None, gpus: int) -> str:
    """The layout asked for, else the one that suits the cluster: GPUs want decoding apart
    from the model ("split"), CPU nodes want them taking turns ("nodes")."""
    layout = layout or ("split" if gpus else "nodes")
    if layout not in LAYOUTS:
        raise UsageError(f"Ray layout: nodes or split, not {layout!r}")
    return layout


def model_actor_resources(gpus: int, cpus: int) -> tuple[float, int]:
    """(CPUs the split layout's model actor asks for, torch threads it runs). With GPUs one
    CPU feeds each; without, half the smallest node, the other half left to the decoding
    tasks (which ask for half a CPU: a request unequal to the actor's keeps Ray from fusing
    decoding into the actor)."""
    if gpus:
        return 1.0, 1
    return max(1.0, float(cpus // 2)), cpus


def in_calls(paths: Sequence[str], size: int) -> list[list[str]]:
    """The paths in lists of `size`, in order (the last may be shorter)."""
    return [list(paths[i:i + size]) for i in range(0, len(paths), size)]


def run_calls(actors: Sequence[Actor], calls: Sequence[list[str]],
              send: Callable[[Actor, list[str]], Hashable],
              first_done: Callable[[list[Hashable]], Hashable],
              results: Callable[[Hashable], list[Result]],
              failed: Callable[[str, str], Result], depth: int = 2) -> Iterator[Result]:
    """Each call's results, calls taken in order and yielded as they finish. `send(actor,
    paths)` starts a call and gives its handle, `first_done(handles)` waits for one, and
    `results(handle)` gets it. Each actor has `depth` calls outstanding (one running, one
    waiting, so none idles between calls); a call that raises (its actor died) gives each of
    its own paths `failed(path, error)`."""
    waiting = list(reversed(calls))  # popped from the end: in order
    running: dict[Hashable, tuple[Any, list[str]]] = {}

    def next_call(actor: Actor) -> None:
        if waiting:
            paths = waiting.pop()
            running[send(actor, paths)] = (actor, paths)

    for actor in actors:
        for _ in range(depth):
            next_call(actor)
    while running:
        handle = first_done(list(running))
        actor, paths = running.pop(handle)
        try:
            found = results(handle)
        except Exception as exc:  # noqa: BLE001 - a dead actor: its list's rows stay
            found = [failed(p, f"the Ray worker failed: {error_text(exc)}") for p in paths]
        yield from found
        next_call(actor)
