"""From what a user names (weights, an architecture, labels) to everything a run needs.

Which architecture, class names and test protocol belong to some weights is decided here,
once, for every front end: `load` and `build_model` in Python, `mvit classify`, `mvit
inspect`, and whatever comes next. The rules, most specific first:

- Architecture: `model` if given; else the registry entry's; else what the file records (our
  safetensors); else what its tensors' shapes decide. Given both, they must agree.
- Labels: `labels` if given; else the names the file carries; else the entry's label set;
  else the standard set of the head's size (400, 600, 1000); else "class N".
- Protocol: the entry's, else the file's; None when nothing records one.
- Provenance: the architecture, the weights' name (or the file's path) and the file's sha256.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .version import __version__
from .checkpoints.files import load_file
from .checkpoints.metadata import META_SOURCE_SHA256
from .labels import LABEL_SETS, choose_labels, load_labels, read_label_file
from .media.protocol import check_recorded
from .models.config import MViTConfig
from .pretrained.download import sha256_of
from .pretrained.registry import WeightsEntry
from .pretrained.store import locate

if TYPE_CHECKING:
    from .models.model import MultiscaleTransformer

LabelsArgument = str | os.PathLike | Sequence[str] | None


@dataclass(frozen=True)
class Provenance:
    """What made a result: recorded in every output, compared when one is resumed."""

    architecture: str
    weights: str  # a registry name, or the weights file's path
    sha256: str  # of the weights file as loaded
    mvit_version: str = __version__


@dataclass
class Resolved:
    model: MultiscaleTransformer  # eval mode, on the CPU
    labels: list[str]
    labels_from: str  # where the names came from, as a person would say it
    architecture_from: str  # likewise for the architecture
    recorded_protocol: dict[str, Any] | None  # None: nothing records how it was tested
    entry: WeightsEntry | None
    path: Path
    # The sha256 outputs record, where it is known without hashing the file again: hashed
    # while downloading, or, for our conversion of a Hub file, the Hub file's, recorded
    # inside it.
    known_sha256: str | None = field(default=None, repr=False)

    @cached_property
    def provenance(self) -> Provenance:
        """Hashed on first use, once: `build_model` callers, who never ask, never pay for it."""
        return Provenance(architecture=self.model.cfg.name,
                          weights=(self.entry.name if self.entry is not None
                                   else os.path.abspath(self.path)),
                          sha256=self.known_sha256 or sha256_of(self.path))


def given_labels(labels: LabelsArgument) -> tuple[list[str] | None, str]:
    """(names, where they came from) for a `labels` argument: a list of names, a shipped
    label set's name, or a text file of one name per line."""
    if labels is None:
        return None, ""
    if isinstance(labels, (str, os.PathLike)):
        if str(labels) in LABEL_SETS:
            return list(load_labels(str(labels))), str(labels)
        return read_label_file(labels), str(labels)
    names = [str(name) for name in labels]
    return names, "labels"


def resolve(weights: str | os.PathLike | None = None, *, model: str | MViTConfig | None = None,
            labels: LabelsArgument = None, num_classes: int | None = None) -> Resolved:
    """Everything a run needs from the weights, read once (downloading them if need be).

    One descent, each step once: the labels asked for (checked before anything is
    fetched), the local file (`pretrained.store`: registry, download, cache), the model it
    makes (`checkpoints.files`: read, convert to native names, decide the architecture,
    fit), then the names of its outputs and its test protocol.
    """
    names, given_by = given_labels(labels)
    located = locate(weights, model)
    entry = located.entry
    architecture = entry.architecture if entry is not None and model is None else model
    loaded = load_file(located.path, architecture, num_classes)
    loaded.model.labels, labels_from = choose_labels(
        loaded.model.num_classes, given=names,
        given_by=given_by or "--labels", in_file=loaded.labels,
        source=str(located.path), label_set=entry.labels if entry is not None else None)
    if entry is not None and entry.protocol:
        protocol = check_recorded(entry.protocol, f"weights {entry.name!r}")
    else:
        protocol = check_recorded(loaded.protocol, str(located.path))
    architecture_from = ("as the registry says" if entry is not None and model is None
                         else loaded.architecture_from)
    sha256 = located.sha256
    if sha256 is None and located.sha256_inside:
        sha256 = loaded.checkpoint.metadata.get(META_SOURCE_SHA256)
    return Resolved(loaded.model, loaded.model.labels, labels_from, architecture_from,
                    protocol or None, entry, located.path, sha256)
