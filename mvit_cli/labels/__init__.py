"""Class-name lists shipped as package data, in the order the published checkpoints use.

`kinetics400.txt`, `kinetics600.txt` and `imagenet1k.txt` hold one name per line;
SOURCES.md beside them says where each list comes from.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

LABEL_SETS = ("kinetics400", "kinetics600", "imagenet1k")


@lru_cache(maxsize=8)
def load_labels(name: str) -> tuple[str, ...]:
    """The class names of a shipped label set."""
    if name not in LABEL_SETS:
        raise ValueError(f"unknown label set {name!r}; known: {', '.join(LABEL_SETS)}")
    text = resources.files(__name__).joinpath(f"{name}.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line)


def labels_for_classes(name: str, num_classes: int) -> list[str]:
    """The named set if its size fits the head, else neutral names ("class 0", ...)."""
    if name in LABEL_SETS:
        labels = load_labels(name)
        if len(labels) == num_classes:
            return list(labels)
    return [f"class {i}" for i in range(num_classes)]
