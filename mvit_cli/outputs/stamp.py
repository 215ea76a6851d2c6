"""What made an output, and the one-line refusal when an output was made otherwise.

Every row, segment file, subtitle manifest entry and feature file records the same
provenance fields (the stamp). A resumed output is compared with the run resuming it field
by field, so that one file never mixes results of two models, weights or protocols.

Kept apart from the writers so that the format registry (read by `mvit --help`) and every
writer can import it without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UsageError

# What made a row: compared field by field when an output is resumed.
STAMP_COLUMNS = ("model", "weights", "weights_sha256", "protocol", "mvit_version")


class OutputError(UsageError):
    """An output we must not resume or cannot write as asked; one line, exit 2."""


def make_stamp(provenance, protocol) -> dict[str, str]:
    """The provenance fields every row of a run carries."""
    return {"model": provenance.architecture, "weights": provenance.weights,
            "weights_sha256": provenance.sha256, "protocol": protocol.describe(),
            "mvit_version": provenance.mvit_version}


def stamp_differences(recorded: Mapping[str, Any], stamp: Mapping[str, str] | None,
                      keys=STAMP_COLUMNS) -> list[str]:
    """Each field of `keys` that `recorded` holds otherwise than this run's `stamp`, as
    "field 'theirs' (this run: 'ours')"; none when `stamp` is None (before the model has
    loaded, the run's own provenance is not known yet)."""
    if stamp is None:
        return []
    return [f"{key} {recorded.get(key)!r} (this run: {stamp[key]!r})"
            for key in keys if str(recorded.get(key)) != stamp[key]]


def other_settings(path: Any, differences: list[str]) -> OutputError:
    """The refusal of an output made with other settings (the differences listed)."""
    return OutputError(f"{path}: was made with other settings: {'; '.join(differences)}. "
                       "Resume with the same ones, use --overwrite to start afresh, or "
                       "choose another --output")
