"""What `load` assembles from what a user names: the weights' facts and a backend to run them.

Below the API and the engines on purpose: a Ray worker rebuilds the same backend from the
same `LoadArguments` the driver recorded, without importing the API that called it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from .backends import backend_class
from .devices import precision_name, resolve_device, resolve_precision
from .labels import LabelsError
from .models.config import MViTConfig
from .resolve import LabelsArgument, Provenance, resolve

if TYPE_CHECKING:
    import torch

    from .backends import Backend
    from .models.model import MultiscaleTransformer


@dataclass(frozen=True)
class LoadArguments:
    """What another process needs to load the same pipeline: files by their absolute paths
    (a worker's working folder is its own), the precision as resolved here."""

    weights: str | None
    model: str | MViTConfig | None
    labels: LabelsArgument
    precision: str


@dataclass
class LoadedWeights:
    """The weights' side of a pipeline: the network, its class names, how it was tested and
    what made it (hashed on first use)."""

    model: MultiscaleTransformer
    labels: list[str]
    recorded_protocol: dict[str, Any] | None  # None: nothing records how it was tested
    provenance_of: Callable[[], Provenance]
    note: str = ""  # what the weights' registry entry says of them

    def __post_init__(self) -> None:
        if len(self.labels) != self.model.num_classes:
            raise LabelsError(f"{len(self.labels)} labels for a head of "
                              f"{self.model.num_classes} classes")
        self.labels = list(self.labels)
        self.cfg: MViTConfig = self.model.cfg

    @property
    def provenance(self) -> Provenance:
        return self.provenance_of()


def make_backend(name: str, weights: LoadedWeights, device: torch.device,
                 dtype: torch.dtype, compile: bool = False) -> Backend:
    return backend_class(name)(weights.model, device, dtype, compile, exportable=weights)


def assemble(weights: str | os.PathLike | None, model: str | MViTConfig | None,
             labels: LabelsArgument, device: str, precision: str, backend: str,
             compile: bool) -> tuple[LoadedWeights, Backend, LoadArguments]:
    """Resolve the weights once (fetching them if need be) and build their backend."""
    backend_type = backend_class(backend)
    torch_device = resolve_device(device)
    dtype = resolve_precision(precision, torch_device)
    backend_type.check(torch_device, compile)
    resolved = resolve(weights, model=model, labels=labels)
    if str(precision).strip().lower() == "auto":  # the weights' measured bf16 may decide
        dtype = resolve_precision(precision, torch_device,
                                  resolved.entry.bf16 if resolved.entry is not None else None)
    loaded = LoadedWeights(resolved.model, resolved.labels, resolved.recorded_protocol,
                           lambda: resolved.provenance,
                           resolved.entry.note if resolved.entry is not None else "")
    arguments = LoadArguments(_absolute_if_file(weights), model, _absolute_if_file(labels),
                              precision_name(dtype))
    return loaded, make_backend(backend, loaded, torch_device, dtype, compile), arguments


def _absolute_if_file(value):
    if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
        return os.path.abspath(value)
    return os.fspath(value) if isinstance(value, os.PathLike) else value
