"""`mvit classify`: label video and image files, one or thousands, resumably."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from ..checkpoints import CheckpointError
from ..checkpoints.loading import META_ARCHITECTURE, META_CONFIG
from ..checkpoints.reader import read_metadata
from ..classify.output import OutputError, open_output
from ..classify.runner import Classifier, FileResult, resolve_device, resolve_precision
from ..classify.workers import default_workers
from ..factory import build_model
from ..media.discover import discover
from ..media.protocol import protocol_for
from ..models.architectures import UnknownArchitectureError, get_config
from ..models.config import MViTConfig, config_from_json
from ..pretrained.download import DownloadError
from ..pretrained.registry import UnknownWeightsError, default_entry, find_entry
from ..pretrained.store import WeightsUnavailableError, resolve_weights
from .common import console, errors, fail


def _choose_weights(model: str | None, weights: str | None) -> tuple[str | MViTConfig, str]:
    """(architecture, weights) from what the user gave; defaults from the registry.

    Our own safetensors carry their architecture, so `--weights FILE` needs no --model.
    """
    if weights is None:
        entry = default_entry(get_config(model).name if model else None)
        return entry.architecture, entry.name
    if model is not None:
        return get_config(model).name, weights
    path = Path(weights).expanduser()
    if not path.is_file():
        return find_entry(weights).architecture, weights
    metadata = read_metadata(path)
    if META_CONFIG in metadata:
        return config_from_json(metadata[META_CONFIG]), weights
    if META_ARCHITECTURE in metadata:
        return get_config(metadata[META_ARCHITECTURE]).name, weights
    raise typer.BadParameter(f"{weights} does not say its architecture: add --model",
                             param_hint="--model")


def _recorded_protocol(weights: str) -> dict:
    """The test protocol recorded for the weights: in the registry, or in the file."""
    path = Path(weights).expanduser()
    if not path.is_file():
        entry = find_entry(weights)
        if entry.protocol:
            return entry.protocol
        path, _ = resolve_weights(weights)  # already fetched by build_model: a cache hit
    metadata = read_metadata(path)
    return json.loads(metadata.get("mvit.protocol") or "{}")


def _parse_clips(value: str) -> int | str:
    if value == "protocol":
        return value
    try:
        clips = int(value)
    except ValueError:
        raise typer.BadParameter("a number of clips, or 'protocol'", param_hint="--clips")
    if clips < 1:
        raise typer.BadParameter("at least 1", param_hint="--clips")
    return clips


def _result_table(result: FileResult) -> Table:
    table = Table(title=result.path, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("rank", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for rank, (label, score) in enumerate(zip(result.labels, result.scores), start=1):
        table.add_row(str(rank), label, f"{score:.3f}")
    return table


def classify_command(
    paths: list[str] = typer.Argument(..., help="Files, folders (searched recursively) or globs."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Architecture (mvit models)."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w",
                                          help="Registry name (mvit weights list) or a file."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels per file."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write rows to FILE.csv, .jsonl or .json."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", min=1, help="Views per batch."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    clips: str = typer.Option("1", "--clips",
                              help="Clips per video, or 'protocol' for the weights' own."),
    crops: int = typer.Option(1, "--crops", help="1 (centre) or 3 (along the long side)."),
    workers: Optional[int] = typer.Option(
        None, "--workers", min=0, show_default=False,
        help="Decoding processes (0: decode in this process). Default: one per core, up "
             "to 4, on the CPU; one fewer with a GPU."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1,
                                  help="Seconds one file may take to decode."),
    verbose: bool = typer.Option(False, "--verbose", help="Show the decoders' own messages."),
    compile_model: bool = typer.Option(False, "--compile",
                                 help="torch.compile the model (slow start; for big folders)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start the output afresh."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, no tables."),
) -> None:
    """Classify videos (and images, with image models): top-k labels per file."""
    if device not in ("auto", "cpu", "cuda"):
        raise typer.BadParameter("auto, cpu or cuda", param_hint="--device")
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise typer.BadParameter("auto, fp32, bf16 or fp16", param_hint="--precision")
    if crops not in (1, 3):
        raise typer.BadParameter("1 or 3", param_hint="--crops")
    n_clips = _parse_clips(clips)
    try:
        torch_device = resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device")
    try:
        architecture, weights_name = _choose_weights(model, weights)
    except (UnknownArchitectureError, UnknownWeightsError) as exc:
        fail(str(exc), code=2)
    except CheckpointError as exc:
        fail(str(exc))
    writer = None
    if output is not None:
        try:
            writer = open_output(output, top_k, overwrite)
        except (OutputError, OSError) as exc:
            fail(str(exc), code=2 if isinstance(exc, OutputError) else 1)
    items = discover(paths)
    todo = [item for item in items if writer is None or item.path not in writer.done]
    skipped = len(items) - len(todo)
    try:
        net = build_model(architecture, weights=weights_name)
        protocol = protocol_for(net.cfg, _recorded_protocol(weights_name), n_clips, crops)
    except (CheckpointError, WeightsUnavailableError, DownloadError, UnknownWeightsError,
            UnknownArchitectureError, OSError) as exc:
        if writer is not None:
            writer.close()
        fail(str(exc))
    classifier = Classifier(net, protocol, torch_device,
                            resolve_precision(precision, torch_device), batch_size, top_k,
                            compile_model=compile_model)
    classifier.decoder_messages = verbose
    if workers is None:
        workers = default_workers(torch_device.type)
    _run(classifier, todo, skipped, writer, output, workers, timeout, quiet)


def _run(classifier, todo, skipped, writer, output, workers, timeout, quiet) -> None:
    done = failed = 0
    started = time.monotonic()
    show_bar = not quiet and errors.is_terminal
    plain_lines = not quiet and not errors.is_terminal and writer is not None
    progress = Progress(TextColumn("classifying"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=errors, disable=not show_bar,
                        transient=True)
    interrupted = False
    try:
        with progress:
            task = progress.add_task("", total=len(todo), rate="")
            for result in classifier.run(todo, workers, timeout):
                done += 1
                failed += not result.ok
                if writer is not None:
                    writer.write(result)
                elapsed = time.monotonic() - started
                progress.update(task, advance=1, rate=f"{done / elapsed:.2f} files/s")
                if plain_lines:
                    what = (f"{result.labels[0]} ({result.scores[0]:.2f})" if result.ok
                            else f"error: {result.error}")
                    errors.print(f"[{done}/{len(todo)}] {result.path}: {what}",
                                 markup=False, highlight=False, soft_wrap=True)
                if writer is None and not quiet:
                    if result.ok:
                        console.print(_result_table(result))
                    else:
                        errors.print(f"{result.path}: error: {result.error}", markup=False,
                                     highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.monotonic() - started
    where = f" -> {output}" if output is not None else ""
    skipped_note = f", {skipped} already in the output" if skipped else ""
    if interrupted:
        errors.print(f"interrupted: {done - failed} of {len(todo)} files classified, {failed} "
                     f"failed{skipped_note}; run the same command again to resume{where}",
                     soft_wrap=True, highlight=False)
        raise typer.Exit(130)
    if not quiet or failed:
        errors.print(f"{done - failed} of {len(todo)} files classified, {failed} failed"
                     f"{skipped_note}, in {elapsed:.1f} s{where}", soft_wrap=True, highlight=False)
    raise typer.Exit(1 if failed else 0)
