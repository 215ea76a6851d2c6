"""What every command shares: the consoles, the options several commands take, and choices.

Nothing here imports torch: `mvit --help` builds every command's signature from these, and
must answer at once. Commands import the heavy parts inside their bodies.
"""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Literal, Annotated, NoReturn, Optional

import typer
from rich.console import Console

from ..backends import BACKENDS
from ..engines import ENGINES
from ..devices import DEVICE_NAME
from ..errors import MvitError

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Report an expected failure as one line on stderr and exit; tracebacks are for bugs."""
    raise MvitError(message) if code == 1 else _Exit(message, code)


class _Exit(MvitError):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def report(exc: MvitError) -> None:
    """The one line an expected failure gets."""
    errors.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def say(text: str, *, to_stderr: bool = True) -> None:
    """A plain line, written as it is: no markup, no wrapping, tabs kept (for `cut -f`)."""
    print(text, file=sys.stderr if to_stderr else sys.stdout, flush=True)


def stop_interrupted(text: str) -> NoReturn:
    """End a run that Ctrl-C cut short with exit code 130, its work kept: a plain line that
    says what was done and how to go on, not an "error:" line, since nothing failed."""
    say(text)
    raise typer.Exit(130)


def shown(path: str) -> str:
    """A path as a person reads it: relative to here when inside it, else as recorded (odd
    bytes of a name escaped, as in outputs)."""
    from ..media.discover import printable
    from ..media.sources import is_uri

    if is_uri(path):
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        relative = path
    return printable(path if relative.startswith("..") else relative)


class Device(str):
    """A device as users name it: auto, cpu, cuda, cuda:N or mps, as `load(device=...)`
    takes it. The name is checked as it is parsed; whether the device exists, when the model
    loads (devices.resolve_device). `.value` as an Enum member has it, for the commands."""

    @property
    def value(self) -> str:
        return str(self)

    @classmethod
    def parse(cls, text: str) -> Device:
        name = str(text).strip().lower()
        if not DEVICE_NAME.fullmatch(name):
            raise typer.BadParameter(f"{text!r}: auto, cpu, cuda, cuda:N or mps")
        return cls(name)


Device.auto = Device("auto")


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


# ---- options several commands take, defined once -------------------------------------------

ModelOption = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Architecture (see mvit models). Default: what the weights say.",
    show_default=False)]
WeightsOption = Annotated[Optional[str], typer.Option(
    "--weights", "-w", help="Registry name (see mvit weights list) or a checkpoint file. "
    "Default: the default weights.", show_default=False)]
LabelsOption = Annotated[Optional[Path], typer.Option(
    "--labels", help="Text file of class names, one per line in the head's order (overrides "
    "the names the weights carry).", show_default=False, dir_okay=False)]
DeviceOption = Annotated[Device, typer.Option(
    "--device", parser=Device.parse, metavar="auto|cpu|cuda|cuda:N|mps",
    help="Where the model runs (auto: CUDA, else MPS, else the CPU; cuda:N picks a GPU).")]
BackendOption = Annotated[Literal[tuple(BACKENDS)], typer.Option(
    "--backend", help="What runs the model: torch, or openvino on the CPU (the openvino "
    "extra; exported and compiled once, then cached).")]
PrecisionOption = Annotated[Precision, typer.Option(
    "--precision", help="Number format of the model (auto: bf16 on GPUs that have it, and on "
    "CPUs with native bf16 for weights whose measured bf16 accuracy passes; else fp32).")]
EngineOption = Annotated[Literal[tuple(ENGINES)], typer.Option(
    "--engine", help="local: this machine's processes; ray: a Ray cluster (the ray extra).")]
FramesOption = Annotated[Optional[int], typer.Option(
    "--frames", min=1, show_default=False,
    help="Frames per clip, instead of the weights' protocol (video models).")]
FpsOption = Annotated[Optional[float], typer.Option(
    "--fps", min=0.001, show_default=False,
    help="Frames per second sampled, instead of the weights' protocol (video models).")]
VerboseOption = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Show the decoders' own messages (FFmpeg's and decord's).")]
AddressOption = Annotated[Optional[str], typer.Option(
    "--address", show_default=False,
    help="The Ray cluster to join (default: RAY_ADDRESS, else a local Ray).")]


def check_engine(engine: str, features: str | None) -> None:
    """Refuse what the chosen engine cannot do, before anything loads."""
    from ..engines import engine_class

    engine_class(engine).check(features is not None)


def start_decoders_early(engine: str, workers: int | None, items: list) -> None:
    """A run that will decode in workers of this process: start their server now, before
    this process imports torch, so that both import at once
    (engines/local/decoder_server.py)."""
    from ..engines import engine_class

    if engine_class(engine).decodes_here and workers != 0 and items:
        from ..engines.local.decoder_server import start_early

        start_early()


def close_all(*closers) -> OSError | None:
    """Close each of `closers` (None skipped), all of them whatever fails; the first OSError
    (a full disk on the last flush), for the caller to report once everything is closed."""
    failure = None
    for closer in closers:
        if closer is not None:
            try:
                closer.close()
            except OSError as exc:
                failure = failure or exc
    return failure
