"""Code run in child processes by the tests (must be importable by the spawn start method)."""

from __future__ import annotations

import os


def download_in_child(home: str, name: str, start, result_queue) -> None:
    """Register the tiny architectures, wait for the go signal, then fetch `name`."""
    os.environ["MVIT_HOME"] = home
    from conftest import register_tiny_architectures
    from mvit_cli.pretrained.registry import find_entry
    from mvit_cli.pretrained.store import ensure_weights

    register_tiny_architectures()
    start.wait(60)
    try:
        result_queue.put(str(ensure_weights(find_entry(name))))
    except Exception as exc:  # reported to the parent test
        result_queue.put(f"error: {exc}")
