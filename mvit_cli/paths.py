"""Where mvit keeps its files: `$MVIT_HOME`, by default `mvit` in the user's cache folder
(`$XDG_CACHE_HOME`, else `~/.cache`, as the XDG base directory convention has it); and
where torch.hub keeps the checkpoints it downloaded, which a download may be spared by."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _set(variable: str) -> str | None:
    """An environment variable's value, an empty one counting as unset."""
    return os.environ.get(variable) or None


def cache_home() -> Path:
    """The user's cache folder: `$XDG_CACHE_HOME`, else `~/.cache`."""
    return Path(_set("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()


def mvit_home() -> Path:
    """The cache root; created on first use."""
    root = Path(_set("MVIT_HOME") or cache_home() / "mvit").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root


def torch_hub_checkpoints() -> Path:
    """Where torch.hub.load_state_dict_from_url (torchvision's weights among them) keeps
    its files: `torch.hub.get_dir()/checkpoints`. Computed as torch does (`$TORCH_HOME/hub`,
    TORCH_HOME defaulting to `torch` in the cache folder) so that no torch is imported to
    answer; where torch.hub is already imported, asked, since a program may have moved it
    with `torch.hub.set_hub_dir`. Never created: it is torch's folder, not ours."""
    hub = sys.modules.get("torch.hub")
    if hub is not None:
        return Path(hub.get_dir()) / "checkpoints"
    torch_home = Path(_set("TORCH_HOME") or cache_home() / "torch").expanduser()
    return torch_home / "hub" / "checkpoints"
