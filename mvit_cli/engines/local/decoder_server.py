"""The process decoding workers are forked from, and starting it early.

Workers fork from a server that imported torch, decord and PyAV once (a second of CPU
each with spawn); forking the model's process itself is unsafe once torch's threads run. The
server's imports take as long as the model's process takes to import torch, and a pool
that starts it waits for them. A command that will decode can start it first thing, with
`start_early`, so that both import at once on two cores instead of one after the other.

This module imports nothing heavy itself: calling it before torch is imported is the point.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

# What every worker needs, imported once in the server (decord after torch, as it needs).
PRELOAD = ["mvit_cli.engines.local.workers", "torch", "decord", "av"]


def worker_context() -> BaseContext:
    """The forkserver context with the preloads above, or spawn where there is no
    forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_early() -> None:
    """Start the fork server now, without waiting for its imports (it takes requests once
    they are done); a pool made later in this process forks its workers from it."""
    if worker_context().get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    forkserver.ensure_running()
