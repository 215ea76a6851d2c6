"""`mvit weights ...`: list, download, import, verify and remove pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from ..checkpoints import CheckpointError
from ..models.architectures import UnknownArchitectureError
from ..pretrained.download import DownloadError
from ..pretrained.registry import UnknownWeightsError, find_entry, load_registry
from ..pretrained.store import (WeightsUnavailableError, cached_file, ensure_weights,
                                import_checkpoint, remove_entry, verify_entry)
from .common import console, fail

app = typer.Typer(help="Pretrained weights: list, download, import, verify, remove.",
                  no_args_is_help=True)

# Failures a weights command reports as one line.
EXPECTED = (CheckpointError, DownloadError, UnknownArchitectureError, UnknownWeightsError,
            WeightsUnavailableError, OSError)


@app.command("list")
def list_command() -> None:
    """Every registered checkpoint: architecture, data set, top-1, size and whether cached."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="top-1: the source's own report; * the default weights")
    for column in ("name", "architecture", "data set", "top-1", "size", "cached"):
        table.add_column(column, justify="right" if column in ("top-1", "size") else "left",
                         no_wrap=column != "name")
    try:
        entries = load_registry()
    except UnknownWeightsError as exc:
        fail(str(exc))
    for entry in entries:
        path = cached_file(entry)
        size = (f"{path.stat().st_size / 1e6:.0f} MB" if path is not None
                else f"{entry.size_mb:.0f} MB" if entry.size_mb else "-")
        table.add_row(entry.name + ("*" if entry.default else ""), entry.architecture,
                      entry.labels, f"{entry.top1:.1f}" if entry.top1 else "-", size,
                      "yes" if path is not None else "no")
    console.print(table)


@app.command("download")
def download_command(name: str = typer.Argument(..., help="Registry name (mvit weights list).")
                     ) -> None:
    """Fetch, verify and cache weights now (classify does this on first use)."""
    try:
        path = ensure_weights(find_entry(name))
    except EXPECTED as exc:
        fail(str(exc))
    console.print(f"{name}: {path}")


@app.command("import")
def import_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file in any supported layout."),
    model: str = typer.Option(..., "--model", "-m", help="Its architecture (mvit models)."),
    name: str = typer.Option(..., "--name", "-n", help="Name to use it by (--weights NAME)."),
    labels: Optional[Path] = typer.Option(None, "--labels",
                                          help="Text file, one class name per line."),
) -> None:
    """Make your own checkpoint a named entry: converted to safetensors, used offline."""
    try:
        entry = import_checkpoint(checkpoint, model, name, labels)
    except EXPECTED as exc:
        fail(str(exc))
    console.print(f"imported {checkpoint} as {entry.name!r} ({entry.architecture}): {entry.file}")


@app.command("verify")
def verify_command(names: list[str] = typer.Argument(None, help="Entries (default: all).")
                   ) -> None:
    """Re-check cached weights: digest as recorded, and a strict load into the model."""
    try:
        entries = [find_entry(n) for n in names] if names else load_registry()
    except UnknownWeightsError as exc:
        fail(str(exc))
    bad = 0
    for result in map(verify_entry, entries):
        if result.status == "not cached" and not names:
            continue
        mark = {"ok": "[green]ok[/]", "corrupt": "[red]corrupt[/]"}.get(result.status,
                                                                      result.status)
        console.print(f"{result.entry.name}: {mark} {result.detail}", soft_wrap=True)
        bad += result.status != "ok"
    if bad:
        raise typer.Exit(1)


@app.command("remove")
def remove_command(name: str = typer.Argument(..., help="Registry name.")) -> None:
    """Delete cached weights (and forget an imported entry)."""
    try:
        entry = find_entry(name)
        removed = remove_entry(entry)
    except EXPECTED as exc:
        fail(str(exc))
    console.print(f"{name}: removed {len(removed)} file(s)" if removed or entry.file
                  else f"{name}: nothing cached")
