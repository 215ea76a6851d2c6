"""`mvit train`: train or fine-tune a classifier on a folder of labelled videos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..checkpoints import CheckpointError
from ..models.architectures import UnknownArchitectureError, get_config
from ..pretrained.registry import UnknownWeightsError
from ..pretrained.store import WeightsUnavailableError
from ..training.data import DatasetError, load, time_opposites
from ..training.trainer import TrainSettings, save_trained, train
from .common import console, errors, fail


def train_command(
    data_dir: Path = typer.Argument(..., help="One folder of videos per class."),
    model: str = typer.Option(..., "--model", "-m", help="Architecture (mvit models)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to save OUT.safetensors."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w",
                                          help="Start from these weights (fine-tune)."),
    epochs: int = typer.Option(30, "--epochs", min=1),
    batch_size: int = typer.Option(16, "--batch-size", "-b", min=1),
    lr: float = typer.Option(1e-3, "--lr", min=0.0),
    frames: Optional[int] = typer.Option(None, "--frames", min=1,
                                         help="Frames per clip (default: the model's)."),
    size: Optional[int] = typer.Option(None, "--size", min=16,
                                       help="Input size (default: the model's)."),
    val_split: float = typer.Option(0.15, "--val-split", min=0.0, max=0.9),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(2, "--workers", min=1, help="Processes decoding the data."),
    half: bool = typer.Option(False, "--half", help="Store weights as float16 (half size)."),
    time_reversal: bool = typer.Option(
        False, "--time-reversal",
        help="Also train on clips played backwards, labelled with their opposite class "
             "(pairs such as left/right, up/down, growing/shrinking, opening/closing)."),
    colour_shuffle: bool = typer.Option(
        False, "--colour-shuffle", help="Permute RGB channels at random (labels blind to colour)."),
) -> None:
    """Train (or fine-tune with --weights) and save weights that classify can use."""
    if output.suffix != ".safetensors":
        raise typer.BadParameter("the output must end in .safetensors", param_hint="--output")
    try:
        cfg = get_config(model)
    except UnknownArchitectureError as exc:
        fail(str(exc), code=2)
    cfg = replace(cfg, frames=frames or cfg.frames, size=size or cfg.size)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, val_split=val_split,
                             seed=seed, time_reversal=time_reversal,
                             colour_shuffle=colour_shuffle)
    try:
        with console.status(f"decoding {data_dir} ..."):
            data = load(data_dir, cfg.frames, cfg.size, workers)
    except DatasetError as exc:
        fail(str(exc))
    console.print(f"{len(data.labels)} clips in {len(data.names)} classes: "
                  + ", ".join(data.names))
    if data.skipped:
        errors.print(f"skipped {len(data.skipped)} videos that could not be decoded, such as "
                     f"{data.skipped[0]}", soft_wrap=True, highlight=False)
    if time_reversal:
        pairs = time_opposites(data.names)
        shown = [f"{data.names[a]} <-> {data.names[b]}" for a, b in pairs.items() if a < b]
        console.print("time reversal: " + ("; ".join(shown) if shown else
                                           "no pair of opposite labels, nothing reversed"))
    progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f}  val {task.fields[val]}"),
                        TimeRemainingColumn(), console=errors, disable=not errors.is_terminal)

    def epoch_line(report) -> None:
        val = f"{report.val_accuracy:.1%}" if report.val_accuracy is not None else "-"
        progress.update(task, val=val)
        if not errors.is_terminal:
            errors.print(f"epoch {report.epoch}/{epochs}: loss {report.loss:.3f}, "
                         f"validation accuracy {val}", highlight=False)

    try:
        with progress:
            task = progress.add_task("", total=None, loss=float("nan"), val="-")
            result = train(data, cfg, settings, start=weights,
                           on_step=lambda step, total, loss: progress.update(
                               task, completed=step, total=total, loss=loss),
                           on_epoch=epoch_line)
    except (CheckpointError, UnknownWeightsError, WeightsUnavailableError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:  # before training started (building the model)
        fail("interrupted: nothing was saved", code=130)
    if result.interrupted and not result.history:
        fail("interrupted before the first epoch ended: nothing was saved", code=130)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_trained(result, data, output, settings, half=half)
    if result.interrupted:
        fail(f"interrupted: saved {output} as it was after epoch {len(result.history)} of "
             f"{epochs}", code=130)
    val = f"{result.val_accuracy:.1%}" if result.val_accuracy is not None else "not measured"
    console.print(f"saved {output} ({result.model.cfg.name}, {len(data.names)} classes, "
                  f"validation accuracy {val})")
