"""Class names: the shipped label sets, label files, and which names a head's outputs get.

`kinetics400.txt`, `kinetics600.txt` and `imagenet1k.txt` hold one name per line, in the
order the published checkpoints use; SOURCES.md beside them says where each list comes from.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import MvitError, UsageError

LABEL_SETS = ("kinetics400", "kinetics600", "imagenet1k")
# A head of one of these sizes is taken to output that set's classes, in its order: every
# published Kinetics and ImageNet checkpoint does.
LABEL_SET_SIZES = {400: "kinetics400", 600: "kinetics600", 1000: "imagenet1k"}


class LabelsError(MvitError):
    """Class names that do not fit the weights' head; one line."""


@lru_cache(maxsize=8)
def load_labels(name: str) -> tuple[str, ...]:
    """The class names of a shipped label set."""
    if name not in LABEL_SETS:
        raise UsageError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    text = resources.files(__name__).joinpath(f"{name}.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line)


def label_set_for(num_classes: int | None) -> str | None:
    """The shipped label set a head of `num_classes` outputs is taken to use, if any."""
    return LABEL_SET_SIZES.get(num_classes) if num_classes else None


def read_label_file(path: str | Path) -> list[str]:
    """One class name per line (blank lines skipped), in the head's order."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such labels file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: a labels file must be UTF-8 text, one name per line") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the labels file ({exc.strerror or exc})") from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise UsageError(f"{path}: the labels file holds no names")
    return labels


def labels_for_classes(name: str | None, num_classes: int) -> list[str]:
    """The named set if its size fits the head, else neutral names ("class 0", ...)."""
    if name in LABEL_SETS:
        labels = load_labels(name)
        if len(labels) == num_classes:
            return list(labels)
    return [f"class {i}" for i in range(num_classes)]


def choose_labels(num_classes: int, *, given: list[str] | None = None,
                  given_by: str = "--labels", in_file: list[str] | None = None,
                  source: str = "the weights", label_set: str | None = None
                  ) -> tuple[list[str], str]:
    """The names of a head's outputs, and where they came from, from the most specific
    statement of them.

    In order: names the user gave, names the weights file carries, the registry entry's label
    set, the standard set of the head's size; else "class N". Names that are stated but do not
    fit the head are an error, never a silent "class N" or an IndexError mid-run.
    """
    for names, where, how in ((given, given_by, f"from {given_by}"),
                              (in_file, source, "carried by the weights file")):
        if names is not None:
            if len(names) != num_classes:
                raise LabelsError(f"{where}: {len(names)} labels for a head of {num_classes} "
                                  "classes")
            return list(names), how
    if label_set in LABEL_SETS and len(load_labels(label_set)) == num_classes:
        return list(load_labels(label_set)), f"{label_set}, as the registry says"
    standard = label_set_for(num_classes)
    if standard is not None:
        return list(load_labels(standard)), f"{standard}, by the head's size"
    return labels_for_classes(None, num_classes), "none known: class 0 to class N"
