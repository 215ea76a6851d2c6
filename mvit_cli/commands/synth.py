"""`mvit synth`: write a labelled dataset of synthetic motion clips, for training and checks."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from .. import synth
from ..synth import LABELS, SynthError, write_dataset
from .common import errors, fail


def synth_command(
    out_dir: Path = typer.Argument(..., help="Folder to write into (one subfolder per class)."),
    per_class: int = typer.Option(10, "--per-class", min=1, help="Clips per class."),
    seed: int = typer.Option(0, "--seed", help="The same seed writes the same clips."),
) -> None:
    """Write synthetic clips of eight motions (moving left/right/up/down, rotating, growing,
    shrinking), with everything else random, and labels.txt."""
    if synth.av is None:  # say so before writing anything
        fail("mvit synth needs PyAV to write videos: pip install av")
    total = per_class * len(LABELS)
    started = time.monotonic()
    progress = Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=errors,
                        disable=not errors.is_terminal, transient=True)
    done = 0
    try:
        with progress:
            task = progress.add_task("", total=total)

            def advance(path: Path, label: str) -> None:
                nonlocal done
                done += 1
                progress.update(task, advance=1)

            write_dataset(out_dir, per_class, seed, progress=advance)
    except SynthError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        errors.print(f"interrupted: {done} of {total} clips written to {out_dir}; the same "
                     "command writes the same clips again", soft_wrap=True, highlight=False,
                     markup=False)
        raise typer.Exit(130)
    elapsed = time.monotonic() - started
    errors.print(f"{total} clips ({len(LABELS)} classes x {per_class}, seed {seed}) written to "
                 f"{out_dir} in {elapsed:.1f} s", soft_wrap=True, highlight=False, markup=False)
