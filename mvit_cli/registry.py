"""The weight registry: published checkpoints, read from `weights/registry.toml`.

The registry is data, shipped inside the package as `mvit_cli.weights` (the repository's
`weights/` folder), so adding a checkpoint never means touching code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class WeightsEntry:
    """One published checkpoint and what its source says about it."""

    name: str
    architecture: str
    layout: str
    labels: str
    url: str | None = None
    hub: dict[str, str] | None = None
    sha256_prefix: str | None = None
    size_mb: float | None = None
    top1: float | None = None
    top5: float | None = None
    reported_by: str = ""
    default: bool = False
    protocol: dict[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=1)
def load_registry() -> tuple[WeightsEntry, ...]:
    text = resources.files("mvit_cli.weights").joinpath("registry.toml").read_text("utf-8")
    return tuple(WeightsEntry(**entry) for entry in tomllib.loads(text)["weights"])


def weights_for(architecture: str) -> list[WeightsEntry]:
    """Registry entries whose checkpoint fits the named architecture."""
    return [entry for entry in load_registry() if entry.architecture == architecture]
