"""Starting a worker process without the user's main module.

With the forkserver and spawn start methods, multiprocessing sends each new process
"preparation data" that names the parent's `__main__` (its file, or its module name under
`-m`), and the child runs that module again, as `__mp_main__`, before it unpickles its target.
That is how a target defined in a script is found; it is also why multiprocessing asks
scripts for an `if __name__ == "__main__":` guard. Our decoding workers run mvit_cli code
only, so the user's script need not know they exist: without the guard, every worker would
run the script's top level again (loading weights, starting its own pool, failing, exiting
with code 1), and from standard input (`python -`, whose `__file__` is "<stdin>") the
import fails outright.

So while one of our processes starts, in the thread starting it, the preparation data leaves
the main module out: the child keeps the start method's own `__main__` and imports only
what its target's pickle names. Everything else in the data (sys.path, working directory,
authkey) still goes, and processes started by other threads, or by the user, are prepared
as before. The forkserver itself imports the user's main module only when `__main__` is
among its preloads, which `decoder_server.PRELOAD` leaves out.

The data comes from `multiprocessing.spawn.get_preparation_data`, which each start method's
Popen (forkserver, spawn on POSIX and on Windows) looks up on the module at every start;
wrapping it there, once, is the one place all of them pass through.
"""

from __future__ import annotations

import threading
from multiprocessing import spawn
from multiprocessing.process import BaseProcess
from typing import Callable

# The keys by which a child is told to import the parent's main module.
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")

_starting_ours = threading.local()  # .active: this thread is starting one of our workers
_install_lock = threading.Lock()


def _without_main(original: Callable[[str], dict]) -> Callable[[str], dict]:
    def get_preparation_data(name: str) -> dict:
        data = original(name)
        if getattr(_starting_ours, "active", False):
            for key in _MAIN_KEYS:
                data.pop(key, None)
        return data

    get_preparation_data.__wrapped__ = original  # type: ignore[attr-defined]
    get_preparation_data.__doc__ = original.__doc__
    return get_preparation_data


def _install() -> None:
    """Wrap the preparation data once per process (the wrapper changes nothing for starts
    outside `start_worker`)."""
    with _install_lock:
        if not hasattr(spawn.get_preparation_data, "_leaves_out_main_for_workers"):
            wrapper = _without_main(spawn.get_preparation_data)
            wrapper._leaves_out_main_for_workers = True  # type: ignore[attr-defined]
            spawn.get_preparation_data = wrapper


def start_worker(process: BaseProcess) -> None:
    """`process.start()`, with the child never importing the user's main module (the
    process's target and arguments must therefore come from importable modules)."""
    _install()
    _starting_ours.active = True
    try:
        process.start()
    finally:
        _starting_ours.active = False
