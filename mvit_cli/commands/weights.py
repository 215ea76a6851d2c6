"""`mvit weights ...`: list, download, import, verify and remove pretrained weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from .common import LabelsOption, ModelOption, console, escape, say

app = typer.Typer(help="Pretrained weights: list, download, import, verify, remove.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("list")
def list_command() -> None:
    """Every registered checkpoint: architecture, data set, top-1, size and whether cached."""
    from ..pretrained.registry import load_registry
    from ..pretrained.store import cached_file

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="top-1: the source's own report; * the default weights")
    for column in ("name", "architecture", "data set", "top-1", "size", "cached"):
        table.add_column(column, justify="right" if column in ("top-1", "size") else "left",
                         no_wrap=column != "name")
    for entry in load_registry():
        path = cached_file(entry)
        size = (f"{path.stat().st_size / 1e6:.0f} MB" if path is not None
                else f"{entry.size_mb:.0f} MB" if entry.size_mb else "-")
        table.add_row(escape(entry.name + ("*" if entry.default else "")), entry.architecture,
                      escape(entry.labels), f"{entry.top1:.1f}" if entry.top1 else "-", size,
                      "yes" if path is not None else "no")
    console.print(table)
    for entry in load_registry():
        if entry.note:
            console.print(f"{entry.name}: {entry.note}", markup=False, highlight=False)


@app.command("download")
def download_command(
    name: Annotated[str, typer.Argument(help="Registry name (see mvit weights list).",
                                        show_default=False)],
    pin: Annotated[bool, typer.Option(
        "--pin", help="For weights whose publisher gives no digest: download them anyway and "
                      "record the sha256 they have now, which later checks then hold them "
                      "to.")] = False,
) -> None:
    """Fetch, verify and cache weights now (classify does this on first use)."""
    from ..checkpoints.metadata import META_DIGEST_FROM, META_SOURCE_SHA256
    from ..checkpoints.reader import read_metadata
    from ..pretrained.registry import find_entry
    from ..pretrained.store import ensure_weights

    entry = find_entry(name)
    path = ensure_weights(entry, pin=pin)
    say(f"{name}: {path}", to_stderr=False)
    metadata = read_metadata(path)
    if metadata.get(META_DIGEST_FROM) == "user":
        say(f"pinned: sha256 {metadata.get(META_SOURCE_SHA256)} (the publisher gives none; "
            "mvit weights verify holds the file to it)", to_stderr=False)


@app.command("import")
def import_command(
    checkpoint: Annotated[Path, typer.Argument(
        help="Checkpoint file in any supported layout.", show_default=False)],
    name: Annotated[str, typer.Option(
        "--name", "-n", show_default=False,
        help="Name to use it by (--weights NAME). A published entry's name checks the file "
             "against its published digest.")],
    model: ModelOption = None,
    labels: LabelsOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Import under a published name even if the file is not the published "
                        "one (as your own entry, without its accuracy).")] = False,
) -> None:
    """Make a checkpoint a named entry, converted to safetensors and usable offline."""
    from ..pretrained.store import import_checkpoint

    entry = import_checkpoint(checkpoint, name, model, labels, force=force)
    how = ("verified: the published file" if entry.file is None
           else "your own entry" + (" (not the published file)" if force else ""))
    say(f"imported {checkpoint} as {entry.name!r} ({entry.architecture}, {how})",
        to_stderr=False)


@app.command("verify")
def verify_command(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Entries to check (default: every cached one).", show_default=False)] = None,
) -> None:
    """Re-check cached weights: digest as recorded, and a strict load into the model."""
    from ..pretrained.registry import find_entry, load_registry
    from ..pretrained.store import verify_entry

    entries = [find_entry(n) for n in names] if names else load_registry()
    bad = 0
    for result in map(verify_entry, entries):
        if result.status == "not cached" and not names:
            continue
        mark = {"ok": "[green]ok[/]", "corrupt": "[red]corrupt[/]",
                "unverifiable": "[red]unverifiable[/]"}.get(result.status,
                                                                      escape(result.status))
        console.print(f"{escape(result.entry.name)}: {mark} {escape(result.detail)}",
                      soft_wrap=True)
        bad += result.status != "ok"
    if bad:
        raise typer.Exit(1)


@app.command("remove")
def remove_command(
    name: Annotated[str, typer.Argument(help="Registry name.", show_default=False)],
) -> None:
    """Delete cached weights (and forget an imported entry)."""
    from ..pretrained.registry import find_entry
    from ..pretrained.store import remove_entry

    entry = find_entry(name)
    removed = remove_entry(entry)
    say(f"{name}: removed {len(removed)} file(s)" if removed or entry.file
        else f"{name}: nothing cached", to_stderr=False)
