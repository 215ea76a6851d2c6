"""How a run goes, whatever engine runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .local.workers import DecodePool


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
