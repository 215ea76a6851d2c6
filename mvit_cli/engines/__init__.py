"""Where a run's tasks happen: this process and its decoding workers (`local`), or a Ray
cluster (`ray`).

An engine takes a job (jobs/: which items become which tasks, how scores become rows), the
input items and a backend (backends/: how views become probabilities), and yields the job's
rows as they are done. `load(...).classify(engine=...)` and `--engine` take their choices from
ENGINES; an engine is one package and one line here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UsageError

if TYPE_CHECKING:
    from .local.workers import DecodePool

# name -> (module, class), imported on first use: Ray is an optional extra.
ENGINES: dict[str, tuple[str, str]] = {
    "local": ("mvit_cli.engines.local", "LocalEngine"),
    "ray": ("mvit_cli.engines.ray", "RayEngine"),
}


@dataclass
class RunOptions:
    """How a run goes, whichever engine runs it; each engine reads the options it has."""

    batch_size: int = 8  # views per backend call
    workers: int | None = None  # local: decoding processes (None: per core; 0: inline)
    timeout: float = 60.0  # local and ray timelines: seconds a file's decoding may take
    decoder_messages: bool = False  # local: FFmpeg's and decord's own complaints to stderr
    pool: DecodePool | None = None  # local: decoders kept open across runs
    on_probe: Callable[[str, float], None] | None = None  # a video's length, once known
    address: str | None = None  # ray: the cluster (else RAY_ADDRESS, else a local Ray)
    layout: str | None = None  # ray: "nodes" or "split" (see engines/ray)
    rebuild: Any = None  # ray: the LoadArguments a worker loads the same backend from


def engine_for(name: str, options: RunOptions):
    if name not in ENGINES:
        raise UsageError(f"engine: {' or '.join(ENGINES)}, not {name!r}")
    module, attribute = ENGINES[name]
    return getattr(importlib.import_module(module), attribute)(options)
