"""`mvit synth`: write a labelled dataset of synthetic motion clips, for training and checks."""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .common import errors, say, stop_interrupted


class Variety(str, Enum):
    classic = "classic"
    wide = "wide"


def synth_command(
    out_dir: Annotated[Path, typer.Argument(
        help="Folder to write into (one subfolder per class).", show_default=False)],
    per_class: Annotated[int, typer.Option("--per-class", min=1, help="Clips per class.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="The same seed writes the same clips.")] = 0,
    variety: Annotated[Variety, typer.Option(
        "--variety", help="classic: one flat-coloured object on a plain or patterned "
        "background; wide: also textured objects, photo-like backgrounds, still distractors, "
        "blur, exposure, more shapes, speeds, durations and compression.")] = Variety.classic,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1,
                                      help="Processes writing clips at once.")] = 1,
) -> None:
    """Write synthetic clips of eight motions (moving left/right/up/down, rotating, growing,
    shrinking), with everything else random, and labels.txt."""
    from ..progress import progress_bar
    from ..synth import LABELS, write_dataset

    total = per_class * len(LABELS)
    started = time.monotonic()
    progress = progress_bar("generating", console=errors)
    done = 0
    try:
        with progress:
            task = progress.add_task("", total=total)

            def advance(path: Path, label: str) -> None:
                nonlocal done
                done += 1
                progress.update(task, advance=1)

            write_dataset(out_dir, per_class, seed, progress=advance,
                          variety=variety.value, jobs=jobs)
    except KeyboardInterrupt:
        stop_interrupted(f"interrupted: {done} of {total} clips written to {out_dir}; the "
                         "same command writes the same clips again")
    elapsed = time.monotonic() - started
    say(f"{total} {variety.value} clips ({len(LABELS)} classes x {per_class}, seed {seed}) "
        "written to "
        f"{out_dir} in {elapsed:.1f} s")
