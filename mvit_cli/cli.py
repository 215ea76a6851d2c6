"""The `mvit` command: a thin Typer layer over the Python API.

Every expected failure is an `MvitError`, caught here and only here: one line on stderr,
exit status 1 (2 for usage errors, as Typer's own). Tracebacks are for bugs only. Importing
this module imports no torch, so `mvit --help` and `mvit --version` answer at once.
"""

from __future__ import annotations

import errno
import sys
from typing import Annotated, Optional

import typer

from .allocator import keep_freed_memory_in_cpu_runs
from .version import __version__
from .commands import classify, export, models, profile, synth, timeline, train, weights
from .commands.common import console, errors, report
from .errors import MvitError

ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                      errno.EIO, errno.ENAMETOOLONG, errno.ENOTDIR, errno.EEXIST, errno.ELOOP,
                      errno.EISDIR}

app = typer.Typer(
    name="mvit",
    help="Classify videos and images with Multiscale Vision Transformers (MViT, MViTv2).",
    no_args_is_help=True,
    # Shell completion, as Typer offers it: mvit --install-completion.
    pretty_exceptions_enable=False,
    # Plain help: no type boxes such as <bool> beside flags, and nothing to render slowly.
    rich_markup_mode=None,
)
app.command("classify")(classify.classify_command)
app.command("timeline")(timeline.timeline_command)
app.command("models")(models.models_command)
app.command("inspect")(models.inspect_command)
app.command("profile")(profile.profile_command)
app.command("train")(train.train_command)
app.command("synth")(synth.synth_command)
app.command("export")(export.export_command)
app.add_typer(weights.app, name="weights")


def _version(value: bool) -> None:
    if value:
        console.print(f"mvit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_version, is_eager=True,
        help="Print the version and exit.")] = None,
) -> None:
    """Classify videos and images with Multiscale Vision Transformers."""
    # The command owns its process, so its CPU runs keep freed memory for the next forward
    # (allocator.py); a library's load() leaves malloc to its host.
    keep_freed_memory_in_cpu_runs()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (`argv`: the arguments, for tests and embedding)."""
    try:
        app(args=argv, prog_name="mvit")
    except MvitError as exc:
        report(exc)
        sys.exit(exc.exit_code)
    except OSError as exc:
        # The machine refusing (a full disk, a read-only folder, no permission) is a
        # condition to report, not a bug: one line, whichever command met it.
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        report(MvitError(f"{exc.strerror}: {exc.filename}" if exc.filename else
                         str(exc.strerror or exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
