"""Publisher files that torch.hub downloaded already (torchvision's weights are fetched
through it into `$TORCH_HOME/hub/checkpoints`, under their URL's file name): a user who ran
torchvision has the very file a registry entry would download, and is spared the download.

Only a file whose sha256 matches the entry's full digest is taken. A short prefix (all
torchvision states, in its file names) or no digest at all does not identify a file that
arrived by other means than our verified download: such entries are downloaded as before.
torch's file is read, never moved, changed or deleted.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

from ..paths import torch_hub_checkpoints
from .download import Fetched, sha256_of

FULL_SHA256 = re.compile(r"[0-9a-f]{64}")


def find_in_torch_hub(url: str, expected_digest: str | None) -> Fetched | None:
    """torch.hub's copy of `url`'s file, if it has one with exactly `expected_digest`."""
    if not expected_digest or not FULL_SHA256.fullmatch(expected_digest.lower()):
        return None  # a prefix or nothing: see the module's docstring
    name = Path(urlparse(url).path).name
    if not name:
        return None
    candidate = torch_hub_checkpoints() / name
    if not candidate.is_file():
        return None
    try:
        digest = sha256_of(candidate)
    except OSError:  # unreadable: as if it were not there
        return None
    return Fetched(candidate, digest) if digest == expected_digest.lower() else None
