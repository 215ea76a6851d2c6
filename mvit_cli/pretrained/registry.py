"""The weight registry: published checkpoints plus the user's own imports.

Published entries are data, `weights/registry.toml` in the repository, installed as the
package `mvit_cli.weights`, so adding a checkpoint never means touching code. Entries the
user adds (`mvit weights import`, or by hand to point at a mirror) live in
`$MVIT_HOME/registry.json` and take precedence over published ones of the same name.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..paths import mvit_home


class UnknownWeightsError(ValueError):
    """A weights name that is neither in the registry nor an existing file."""


@dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint and what its source says about it."""

    name: str
    architecture: str
    layout: str
    labels: str
    url: str | None = None
    hub: dict[str, str] | None = None
    # Imported entries: our own safetensors file in $MVIT_HOME/weights.
    file: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    size_mb: float | None = None
    top1: float | None = None
    top5: float | None = None
    reported_by: str = ""
    default: bool = False
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """Where the weights come from, as a person would write it."""
        if self.hub:
            return f"hf://{self.hub['repo']}/{self.hub['file']}@{self.hub.get('revision', 'main')}"
        return self.url or self.file or "-"

    @property
    def shipped(self) -> bool:
        """Weights that come inside the package (a `file` relative to mvit_cli.weights)."""
        return self.file is not None and not Path(self.file).is_absolute()

    @property
    def expected_digest(self) -> str | None:
        """The sha256 we know (full or a prefix), lower case."""
        digest = self.sha256 or self.sha256_prefix
        return digest.lower() if digest else None


@lru_cache(maxsize=1)
def published_entries() -> tuple[WeightsEntry, ...]:
    text = resources.files("mvit_cli.weights").joinpath("registry.toml").read_text("utf-8")
    return tuple(WeightsEntry(**entry) for entry in tomllib.loads(text)["weights"])


def user_registry_path() -> Path:
    return mvit_home() / "registry.json"


def user_entries() -> list[WeightsEntry]:
    path = user_registry_path()
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text("utf-8"))
        return [WeightsEntry(**entry) for entry in raw.get("weights", [])]
    except (ValueError, TypeError) as exc:
        raise UnknownWeightsError(f"{path}: not a readable registry ({exc})") from None


def save_user_entries(entries: list[WeightsEntry]) -> None:
    """Rewrite the user registry atomically (write a temporary file, then rename)."""
    path = user_registry_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"weights": [asdict(e) for e in entries]}, indent=2), "utf-8")
    tmp.replace(path)


def load_registry() -> list[WeightsEntry]:
    """Every known entry, the user's first (they override published ones of the same name)."""
    mine = user_entries()
    names = {entry.name for entry in mine}
    return mine + [entry for entry in published_entries() if entry.name not in names]


def find_entry(name: str) -> WeightsEntry:
    wanted = name.strip().lower()
    for entry in load_registry():
        if entry.name.lower() == wanted:
            return entry
    known = ", ".join(entry.name for entry in load_registry())
    raise UnknownWeightsError(f"unknown weights {name!r}: not a file, nor one of: {known}")


def default_entry(architecture: str | None = None) -> WeightsEntry:
    """The registry's default weights, or the first entry for `architecture`."""
    entries = load_registry()
    if architecture is None:
        return next(entry for entry in entries if entry.default)
    for entry in sorted(entries, key=lambda e: not e.default):
        if entry.architecture == architecture:
            return entry
    raise UnknownWeightsError(f"no weights are registered for {architecture}")


def weights_for(architecture: str) -> list[WeightsEntry]:
    """Registry entries whose checkpoint fits the named architecture."""
    return [entry for entry in load_registry() if entry.architecture == architecture]
