"""The one progress bar every long step shows (downloads, classifying, training, synth).

Bars go to stderr and only to a terminal, so pipes and log files get plain lines instead;
they vanish when done (`transient`), leaving the summary line. The time left follows the
recent rate (the last `RATE_WINDOW` seconds), not the average since the start, which a slow
first batch (loading, warm-up) would skew for the whole run.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

RATE_WINDOW = 20.0  # seconds of recent progress the rate and time left are taken from


def progress_bar(description: str, *columns: ProgressColumn, console: Console | None = None,
                 counted: bool = True, disable: bool = False) -> Progress:
    """A bar: `description`, the bar, done/total (`counted`), `columns`, elapsed, left."""
    console = console or Console(stderr=True)
    literal = description.replace("{", "{{").replace("}", "}}")  # a file name, not a template
    parts: list[ProgressColumn] = [TextColumn(literal, markup=False), BarColumn()]
    if counted:
        parts.append(MofNCompleteColumn())
    parts += [*columns, TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*parts, console=console, transient=True,
                    disable=disable or not console.is_terminal,
                    speed_estimate_period=RATE_WINDOW, redirect_stdout=False,
                    redirect_stderr=False)


class RateColumn(ProgressColumn):
    """The recent rate, e.g. "2.4 files/s" (rich's own estimate over RATE_WINDOW)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task):  # noqa: ANN001 - rich's Task
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}/s" if speed else "")
