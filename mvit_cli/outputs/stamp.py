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


# How the timeline's segments are made, by option, with the value a run has without it. A
# segment output records each only where it differs from that value: outputs made with the
# defaults keep the bytes they had before these were recorded, and an output made before then
# reads as made with the defaults (it is resumed by a run with the defaults).
SEGMENT_DEFAULTS = {"smooth": 1, "threshold": 0.0, "min_segment": 0.0}


def segment_settings(settings: Any) -> dict[str, Any]:
    """The segment settings of `settings` (the timeline's `Settings`), by option name."""
    return {key: getattr(settings, key) for key in SEGMENT_DEFAULTS}


def segment_record(settings: Any) -> dict[str, Any]:
    """What a segment output records of `settings`: the values other than the defaults."""
    return {key: value for key, value in segment_settings(settings).items()
            if value != SEGMENT_DEFAULTS[key]}


def segment_differences(recorded: Mapping[str, Any], ours: Mapping[str, Any] | None
                        ) -> list[str]:
    """Each segment setting `recorded` holds otherwise than this run's (`ours`, as
    `segment_settings` gives them), as "--option theirs (this run: ours)"; none when `ours`
    does not hold them (nothing to compare yet)."""
    if ours is None:
        return []
    differences = []
    for key, default in SEGMENT_DEFAULTS.items():
        if key not in ours:
            continue
        theirs = recorded.get(key, default)
        if theirs != ours[key]:
            shown = f"{theirs:g}" if isinstance(theirs, (int, float)) else repr(theirs)
            differences.append(f"--{key.replace('_', '-')} {shown} (this run: {ours[key]:g})")
    return differences


def other_settings(path: Any, differences: list[str]) -> OutputError:
    """The refusal of an output made with other settings (the differences listed)."""
    return OutputError(f"{path}: was made with other settings: {'; '.join(differences)}. "
                       "Resume with the same ones, use --overwrite to start afresh, or "
                       "choose another --output")
