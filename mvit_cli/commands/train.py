"""`mvit train`: train or fine-tune a classifier on a folder of labelled videos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .common import console, errors, fail, say, stop_interrupted

if TYPE_CHECKING:
    from ..training.trainer import TrainResult


def train_command(
    data_dir: Annotated[Path, typer.Argument(
        help="One folder of videos per class (labels.txt inside may fix their order).",
        show_default=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Architecture (see mvit models).",
                                       show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to save OUT.safetensors.",
                                         show_default=False)],
    weights: Annotated[Optional[str], typer.Option(
        "--weights", "-w", show_default=False,
        help="Start from these weights (fine-tune; a new head if the classes differ).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1,
                                            help="Clips per training step.")] = 16,
    lr: Annotated[float, typer.Option("--lr", min=0.0,
                                      help="Peak learning rate (AdamW, cosine decay).")] = 1e-3,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", min=1, show_default=False,
        help="Frames per clip (default: the model's).")] = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", min=16, show_default=False,
        help="Input size in pixels (default: the model's).")] = None,
    val_split: Annotated[float, typer.Option(
        "--val-split", min=0.0, max=0.9,
        help="Share of each class held out to measure accuracy.")] = 0.15,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, order and "
                                                     "augmentations.")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=1,
                                         help="Processes decoding the data.")] = 2,
    half: Annotated[bool, typer.Option("--half",
                                       help="Store weights as float16 (half size).")] = False,
    time_reversal: Annotated[bool, typer.Option(
        "--time-reversal",
        help="Also train on clips played backwards, labelled with their opposite class "
             "(pairs such as left/right, up/down, growing/shrinking, opening/closing).")] = False,
    colour_shuffle: Annotated[bool, typer.Option(
        "--colour-shuffle",
        help="Permute RGB channels at random (for labels blind to colour).")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run that was writing OUTPUT, from its last whole "
                         "epoch (the same command otherwise).")] = False,
) -> None:
    """Train (or fine-tune with --weights) and save weights that classify can use."""
    from ..models.architectures import get_config
    from ..progress import progress_bar
    from ..training.data import load, time_opposites
    from ..training.trainer import TrainSettings, save_trained, state_path_for, train
    from rich.progress import TextColumn

    if output.suffix != ".safetensors":
        raise typer.BadParameter("the output must end in .safetensors", param_hint="--output")
    cfg = get_config(model)
    cfg = replace(cfg, frames=frames or cfg.frames, size=size or cfg.size)
    if weights is not None:  # fetched (or refused) before minutes of decoding, not after
        from ..pretrained.store import resolve_weights

        resolve_weights(weights)
    state_path = state_path_for(output)
    if resume and not state_path.exists():
        fail(f"nothing to resume: no training state beside {output} ({state_path.name})",
             code=2)
    settings = TrainSettings(epochs=epochs, batch_size=batch_size, lr=lr, val_split=val_split,
                             seed=seed, time_reversal=time_reversal,
                             colour_shuffle=colour_shuffle)
    with console.status(f"decoding {data_dir} ..."):
        data = load(data_dir, cfg.frames, cfg.size, workers)
    console.print(f"{len(data.labels)} clips in {len(data.names)} classes: "
                  + ", ".join(data.names), markup=False)
    if data.skipped:
        say(f"skipped {len(data.skipped)} videos that could not be decoded, such as "
            f"{data.skipped[0]}")
    if time_reversal:
        pairs = time_opposites(data.names)
        shown = [f"{data.names[a]} <-> {data.names[b]}" for a, b in pairs.items() if a < b]
        console.print("time reversal: " + ("; ".join(shown) if shown else
                                           "no pair of opposite labels, nothing reversed"),
                      markup=False)
    progress = progress_bar("training", TextColumn(
        "{task.description}  loss {task.fields[loss]}  val {task.fields[val]}"),
        console=errors)

    def step_line(step: int, total: int, loss: float, epoch: int) -> None:
        progress.update(task, completed=step, total=total, loss=f"{loss:.3f}",
                        description=f"epoch {epoch}/{epochs}")

    def epoch_line(report) -> None:
        val = f"{report.val_accuracy:.1%}" if report.val_accuracy is not None else "-"
        progress.update(task, val=val)
        if not errors.is_terminal:
            errors.print(f"epoch {report.epoch}/{epochs}: loss {report.loss:.3f}, "
                         f"validation accuracy {val}", highlight=False)

    try:
        with progress:
            # The loss shows once a step has given one.
            task = progress.add_task(f"epoch 1/{epochs}", total=None, loss="-", val="-")
            result = train(data, cfg, settings, start=weights, on_step=step_line,
                           on_epoch=epoch_line, state_path=state_path, resume=resume)
    except KeyboardInterrupt:  # before training started (building the model)
        fail("interrupted: nothing was saved", code=130)
    if result.resumed_from:
        say(f"resumed after epoch {result.resumed_from} of {epochs}")
    if result.interrupted and not result.history:
        fail("interrupted before the first epoch ended: nothing was saved", code=130)
    output.parent.mkdir(parents=True, exist_ok=True)
    save_trained(result, data, output, settings, half=half)
    kept = _kept(result, len(result.history))
    if result.interrupted:
        stop_interrupted(f"interrupted after epoch {len(result.history)} of {epochs}: saved "
                         f"{output} ({kept}); --resume continues the run")
    state_path.unlink(missing_ok=True)  # the run is whole: nothing left to resume
    console.print(f"saved {output} ({result.model.cfg.name}, {len(data.names)} classes; "
                  f"{kept})", markup=False)


def _kept(result: TrainResult, done: int) -> str:
    """Which epoch's weights were saved, and why."""
    if result.val_accuracy is None:
        return (f"epoch {result.best_epoch}, the last; validation accuracy not measured: "
                f"{result.no_validation}")
    return (f"epoch {result.best_epoch} of {done}, the best validation accuracy, "
            f"{result.val_accuracy:.1%}")
