"""The weight registry: published checkpoints plus the user's own imports.

Published entries are data, `weights/registry.toml` in the repository, installed as the
package `mvit_cli.weights`, so adding a checkpoint never means touching code. Entries the
user adds (`mvit weights import`, or by hand to point at a mirror) live in
`$MVIT_HOME/registry.json` and take precedence over published ones of the same name.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

from ..errors import MvitError, UsageError
from ..fileio import atomic_write_text
from ..paths import mvit_home


class UnknownWeightsError(UsageError, ValueError):
    """A weights name that is neither in the registry nor an existing file."""


class RegistryError(MvitError):
    """A registry file that cannot be read, or that lacks what is asked of it; one line."""


@dataclass(frozen=True)
class WeightsEntry:
    """One checkpoint and what its source says about it."""

    name: str
    architecture: str
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
    # What the weights know, where a person could take them for more (shown wherever
    # they are listed or used).
    note: str = ""
    # bf16 against fp32 on the weights' own clips (benchmarks/bench_bf16_accuracy.py):
    # clips, top1_agreement, max_score_change, measured_on. `--precision auto` picks bf16 on
    # a CPU with native bf16 only where this passes (devices.bf16_passes).
    bf16: dict[str, Any] = field(default_factory=dict)
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


def _accepted(annotation: Any) -> tuple[type, ...]:
    """The plain types a field's annotation admits (None for Optional; int for float)."""
    options = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kinds: list[type] = []
    for option in options:
        option = get_origin(option) or option
        kinds += [type(None)] if option is type(None) else [option]
        if option is float:
            kinds.append(int)
    return tuple(kinds)


_KINDS = {name: _accepted(kind) for name, kind in get_type_hints(WeightsEntry).items()}


def _entry(raw: Any, where: str) -> WeightsEntry:
    """One entry from a registry file, its fields checked against their types, so that a
    hand-edited registry fails here in one line rather than later in a traceback. Keys of
    other mvit versions are ignored (an older user registry names a `layout`, which loading
    now reads from the file itself)."""
    if not isinstance(raw, dict):
        raise RegistryError(f"{where}: an entry is not a table of fields")
    values = {k: v for k, v in raw.items() if k in _KINDS}
    for key, value in values.items():
        if not isinstance(value, _KINDS[key]) or (isinstance(value, bool) and bool not in
                                                  _KINDS[key]):
            raise RegistryError(f"{where}: entry {raw.get('name')!r} has a {key} of the wrong "
                                f"kind ({value!r})")
    for key in ("sha256", "sha256_prefix"):
        digest = values.get(key)
        if digest and not (len(digest) >= 8 and all(c in "0123456789abcdefABCDEF" for c in digest)):
            raise RegistryError(f"{where}: entry {raw.get('name')!r} has a {key} that is not a "
                                f"sha256 in hex ({digest!r})")
    try:
        return WeightsEntry(**values)
    except TypeError as exc:
        raise RegistryError(f"{where}: an entry lacks a field ({exc})") from None


@lru_cache(maxsize=1)
def published_entries() -> tuple[WeightsEntry, ...]:
    text = resources.files("mvit_cli.weights").joinpath("registry.toml").read_text("utf-8")
    return tuple(_entry(entry, "registry.toml") for entry in tomllib.loads(text)["weights"])


def published_entry(name: str) -> WeightsEntry | None:
    """The entry mvit publishes under `name` (whatever the user registry says), if any."""
    wanted = name.strip().lower()
    return next((e for e in published_entries() if e.name.lower() == wanted), None)


def user_registry_path() -> Path:
    return mvit_home() / "registry.json"


def user_entries() -> list[WeightsEntry]:
    path = user_registry_path()
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: not a readable registry ({exc}); fix or delete it") from None
    entries = raw.get("weights", []) if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise RegistryError(f"{path}: not a registry (no list of weights); fix or delete it")
    return [_entry(entry, str(path)) for entry in entries]


def save_user_entries(entries: list[WeightsEntry]) -> None:
    """Rewrite the user registry atomically (write a temporary file, then rename)."""
    atomic_write_text(user_registry_path(),
                      json.dumps({"weights": [asdict(e) for e in entries]}, indent=2))


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
        default = next((entry for entry in entries if entry.default), None)
        if default is None:
            raise RegistryError("no weights are marked as the default in the registry; name "
                                "some with --weights (mvit weights list)")
        return default
    for entry in sorted(entries, key=lambda e: not e.default):
        if entry.architecture == architecture:
            return entry
    raise UnknownWeightsError(f"no weights are registered for {architecture}; give a file "
                              "with --weights")


def weights_for(architecture: str) -> list[WeightsEntry]:
    """Registry entries whose checkpoint fits the named architecture."""
    return [entry for entry in load_registry() if entry.architecture == architecture]
