"""How decoded views become probabilities: the torch model, or its OpenVINO compile.

A backend owns everything between a batch of uint8 views and their softmax: the device, the
number format and its casting, how a batch is cut into clips and lanes on the CPU, and the
allocator. Engines call `score` and nothing else, so a backend is one module and one line
of BACKENDS; `load(backend=...)` and `--backend` take their choices from this table.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

from ..errors import UsageError

if TYPE_CHECKING:
    import torch

    from ..media.protocol import Protocol as ViewProtocol

# name -> (module, class), imported on first use: OpenVINO is an optional extra.
BACKENDS: dict[str, tuple[str, str]] = {
    "torch": ("mvit_cli.backends.pytorch", "TorchBackend"),
    "openvino": ("mvit_cli.backends.openvino", "OpenVinoBackend"),
}


class Backend(Protocol):
    name: str
    device: torch.device
    dtype: torch.dtype
    compiled: bool  # a graph of one batch shape: partial batches are padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fp32 logits on the CPU from normalised float clips."""

    def score(self, views: torch.Tensor, protocol: ViewProtocol, features: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 views (B, T, c, c, 3) -> softmax (B, classes), fp32 on the CPU, and with
        `features` the head's input (B, width)."""

    @property
    def precision_note(self) -> str:
        """What a user should know about the precision in use ("" when nothing)."""


def backend_class(name: str) -> type:
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}: available: {', '.join(BACKENDS)}")
    module, attribute = BACKENDS[name]
    return getattr(importlib.import_module(module), attribute)
