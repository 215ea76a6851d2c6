"""What every command shares: the consoles and the one-line failure."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Report an expected failure as one line on stderr and exit; tracebacks are for bugs."""
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True)
    raise typer.Exit(code)
