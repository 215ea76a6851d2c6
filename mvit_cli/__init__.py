"""mvit: classify videos and images with Multiscale Vision Transformers.

The Python API is what every front end (the `mvit` command, timelines, cluster engines) is
built on::

    import mvit_cli
    clf = mvit_cli.load("motion-demo")          # weights -> architecture, labels, protocol
    clf("clip.mp4")                             # [{"label": ..., "score": ...}, ...]
    for result in clf.classify(["videos/"]):    # batches across files, decoding in workers
        print(result.path, result.labels[0])

    model = mvit_cli.build_model("B-16x4", weights="mvit_v1_b-dbeb1030.pth")  # lower level

Names resolve lazily: `import mvit_cli` costs no torch import, so `mvit --help` is instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from .models.plans import FastPlan, register_fast_plan
from .version import __version__

# Public name -> module that defines it, imported on first use.
_EXPORTS = {
    "load": ".api", "Pipeline": ".api", "FileResult": ".jobs.classify",
    "build_model": ".factory", "model_from_config": ".models.model",
    "MvitError": ".errors", "UsageError": ".errors",
    "CheckpointError": ".checkpoints.reader", "MediaError": ".media.decode",
    "ARCHITECTURES": ".models.architectures", "UnknownArchitectureError": ".models.architectures",
    "get_config": ".models.architectures", "register_architecture": ".models.architectures",
    "MViTConfig": ".models.config", "keep_freed_memory": ".allocator",
}

__all__ = [
    "ARCHITECTURES", "CheckpointError", "FileResult", "MViTConfig", "MediaError", "MvitError",
    "Pipeline", "UnknownArchitectureError", "UsageError", "__version__", "build_model",
    "get_config", "keep_freed_memory", "load", "model_from_config", "register_architecture",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)


def _load_fast_plan() -> FastPlan:
    """The networks' exact fast paths (models/fast), loaded at the first forward that takes
    them. Joined here because the reference model never imports its fast paths while they
    import it: only a module above both can hand one to the other, and every import of a
    network passes through this package first."""
    from .models.fast import network

    return network


register_fast_plan(_load_fast_plan)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on demand
    from .allocator import keep_freed_memory
    from .api import Pipeline, load
    from .checkpoints.reader import CheckpointError
    from .jobs.classify import FileResult
    from .errors import MvitError, UsageError
    from .factory import build_model
    from .models.model import model_from_config
    from .media.decode import MediaError
    from .models.architectures import (ARCHITECTURES, UnknownArchitectureError, get_config,
                                       register_architecture)
    from .models.config import MViTConfig

