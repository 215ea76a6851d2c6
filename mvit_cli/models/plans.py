"""Which plan a network's forward runs: the reference modules' own code, or the exact fast
paths (models/fast), registered here by the package.

Why a registry: the fast paths are functions of the reference modules' parameters, so
models/fast imports the reference modules, and the reference must not import it back (an
import circle). The root package (mvit_cli/__init__.py), above both, registers how to load
the fast plan; `MultiscaleTransformer` asks for it at the top of its forward when
`fast_paths` is on. The plan is loaded on first use, so that naming an architecture still
costs no torch import. Plain Python, no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from torch import Tensor

    from .pooling import Grid


class FastPlan(Protocol):
    """What the fast plan offers: the model's three entry points, each taking the model."""

    def forward(self, model: Any, x: Tensor) -> Tensor: ...

    def forward_features(self, model: Any, x: Tensor) -> Tensor: ...

    def run_blocks(self, model: Any, x: Tensor, grid: Grid, start: int = 0,
                   stop: int | None = None) -> tuple[Tensor, Grid]: ...


_LOAD_FAST: Callable[[], FastPlan] | None = None
# Loaded once per process and kept in a module global (not functools.cache): Dynamo reads a
# set global as a constant, as cpu_gates does for its answers.
_FAST: FastPlan | None = None


def register_fast_plan(load: Callable[[], FastPlan]) -> None:
    """Set how to load the fast plan (the root package does, on import)."""
    global _LOAD_FAST, _FAST
    _LOAD_FAST, _FAST = load, None


def fast_plan() -> FastPlan:
    """The fast plan, loaded on first use."""
    global _FAST
    if _FAST is None:
        if _LOAD_FAST is None:
            raise RuntimeError("no fast plan registered: import the networks through the "
                               "mvit_cli package, or set model.fast_paths = False")
        _FAST = _LOAD_FAST()
    return _FAST
