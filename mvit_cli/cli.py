"""The `mvit` command: a thin Typer layer over the Python API.

Every expected failure (unknown name, unreadable checkpoint, no network, ...) is one line on
stderr with exit status 1; usage errors exit 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import sys

import typer

from . import __version__
from .commands import classify, models, profile, synth, train, weights
from .commands.common import console, errors

app = typer.Typer(
    name="mvit",
    help="Classify videos and images with Multiscale Vision Transformers (MViT, MViTv2).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("classify")(classify.classify_command)
app.command("models")(models.models_command)
app.command("inspect")(models.inspect_command)
app.command("profile")(profile.profile_command)
app.command("train")(train.train_command)
app.command("synth")(synth.synth_command)
app.add_typer(weights.app, name="weights")


def _version(value: bool) -> None:
    if value:
        console.print(f"mvit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Classify videos and images with Multiscale Vision Transformers."""


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        errors.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
