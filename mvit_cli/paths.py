"""Where mvit keeps its files: `$MVIT_HOME`, by default `~/.cache/mvit`."""

from __future__ import annotations

import os
from pathlib import Path


def mvit_home() -> Path:
    """The cache root; created on first use."""
    root = Path(os.environ.get("MVIT_HOME") or Path.home() / ".cache" / "mvit").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
