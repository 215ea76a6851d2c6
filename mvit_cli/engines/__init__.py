"""Where a run's tasks happen: this process and its decoding workers (`local`), or a Ray
cluster (`ray`).

An engine takes a job (jobs/: which items become which tasks, how scores become rows), the
input items and a backend (backends/: how views become probabilities), and yields the job's
rows as they are done. `load(...).classify(engine=...)` and `--engine` take their choices from
ENGINES; an engine is one package and one line here.
"""

from __future__ import annotations

import importlib

from ..errors import UsageError
from .options import RunOptions

# name -> (module, class), imported on first use: Ray is an optional extra.
ENGINES: dict[str, tuple[str, str]] = {
    "local": ("mvit_cli.engines.local.engine", "LocalEngine"),
    "ray": ("mvit_cli.engines.ray", "RayEngine"),
}


__all__ = ["ENGINES", "RunOptions", "engine_class", "engine_for"]


def engine_class(name: str) -> type:
    if name not in ENGINES:
        raise UsageError(f"engine: {' or '.join(ENGINES)}, not {name!r}")
    module, attribute = ENGINES[name]
    return getattr(importlib.import_module(module), attribute)


def engine_for(name: str, options: RunOptions):
    return engine_class(name)(options)
