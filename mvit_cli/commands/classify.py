"""`mvit classify`: label video and image files, one or thousands, resumably.

A thin layer over `mvit_cli.load(...).classify(...)`: this module only reads options, picks
where results go (a table, a line per file, an output file, or JSON Lines on stdout) and
shows progress.
"""

from __future__ import annotations

import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from ..errors import MvitError, UsageError
from ..outputs.registry import classify_output_help, features_suffixes
from .common import (FpsOption, FramesOption, VerboseOption, AddressOption, BackendOption, Device, DeviceOption, EngineOption,
                     LabelsOption, ModelOption, Precision, PrecisionOption, WeightsOption,
                     check_engine, close_all, console, errors, escape, say, shown,
                     start_decoders_early, stop_interrupted)


def _parse_clips(value: str) -> int | str:
    if value == "protocol":
        return value
    try:
        clips = int(value)
    except ValueError:
        raise typer.BadParameter("a number of clips, or 'protocol'", param_hint="--clips") from None
    if clips < 1:
        raise typer.BadParameter("at least 1", param_hint="--clips")
    return clips


def _unmatched_error(unmatched: list[tuple[str, str]]) -> UsageError:
    argument, reason = unmatched[0]
    more = (f" (and {len(unmatched) - 1} more argument{'s' if len(unmatched) > 2 else ''} "
            "naming no media file)") if len(unmatched) > 1 else ""
    return UsageError(f"{argument}: {reason}{more}")


def classify_command(
    paths: Annotated[Optional[list[str]], typer.Argument(
        help="Video or image files, folders (searched recursively), globs, or object-store "
             "URIs (s3://bucket/prefix/, ...).", metavar="PATH...", show_default=False)] = None,
    model: ModelOption = None,
    weights: WeightsOption = None,
    labels: LabelsOption = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Labels per file.")] = 5,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", show_default=False,
        help=classify_output_help())] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1,
                                            help="Views per model call.")] = 8,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    backend: BackendOption = "torch",
    clips: Annotated[str, typer.Option(
        "--clips", help="Clips per video, or 'protocol' for the number the weights were "
                        "tested with.")] = "1",
    crops: Annotated[Literal["1", "3"], typer.Option(
        "--crops", help="Crops per clip: 1 (the centre) or 3 (along the long side).")] = "1",
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=0, show_default=False,
        help="Decoding processes (0: decode in this process). Default: one per core, up "
             "to 4, on the CPU; one fewer with a GPU.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Seconds one file may take to decode.")] = 60.0,
    frames: FramesOption = None,
    fps: FpsOption = None,
    verbose: VerboseOption = False,
    compile_model: Annotated[bool, typer.Option(
        "--compile", help="torch.compile the model (slow start; for big folders).")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start the output afresh instead of resuming it.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only errors and the summary: no progress, no labels (a "
                              "single file without -o: its top label, one line).")] = False,
    features: Annotated[Optional[str], typer.Option(
        "--features", show_default=False,
        help="Also write each file's pooled feature (the head's input, mean over its views) "
             f"to {features_suffixes()}.")] = None,
    manifest: Annotated[Optional[Path], typer.Option(
        "--manifest", show_default=False, dir_okay=False,
        help="Also classify the paths or URIs this file lists: .txt (one per line), .csv or "
             ".parquet (a 'path' column). Nothing is listed or checked on this machine.")] = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    ray_layout: Annotated[Literal["auto", "nodes", "split"], typer.Option(
        "--ray-layout",
        help="nodes: one local engine per CPU node; split: decoding tasks on every CPU and a "
             "model actor per GPU; auto: split where the cluster has GPUs.")] = "auto",
) -> None:
    """Classify videos (and images, with image models): top-k labels per file."""
    # Only what the checks below need: a wrong argument is said before torch is imported.
    from ..media.discover import find_inputs
    from ..outputs.folders import prepare_folder
    from ..outputs.registry import (check_existing, check_output, lock_output_of,
                                    open_features, open_output)
    from ..outputs.stamp import make_stamp

    n_clips = _parse_clips(clips)
    if output is not None:
        check_output("classify", output)  # before any work: a wrong name costs nothing
    if features is not None:
        check_output("features", features)
    if not paths and manifest is None:
        raise UsageError("nothing to classify: give paths, or --manifest FILE")
    check_engine(engine, features)  # say so before loading anything
    inputs = find_inputs(paths or [])
    if inputs.unmatched:
        raise _unmatched_error(inputs.unmatched)
    if manifest is not None:
        from ..media.discover import manifest_items

        inputs.items += manifest_items(manifest)
    # The folders of what is written are made (or refused) now, before the model loads.
    if output is not None and output != "-":
        prepare_folder("-o", output)
    if features is not None:
        prepare_folder("--features", features)
    start_decoders_early(engine, workers, inputs.items)
    from ..api import load
    # Held from now: a second run on the same output refuses before loading anything.
    lock = lock_output_of("classify", output) if output is not None else None
    try:
        if output is not None:
            # A file that is not ours, or one made with another top-k, is refused before the
            # model loads (a download, or an OpenVINO compile, can take minutes).
            check_existing("classify", output, top_k, overwrite)
        spinner = (errors.status("loading the model ...") if errors.is_terminal and not quiet
                   else None)
        with spinner or nullcontext():
            clf = load(weights, model=model, labels=labels, device=device.value,
                       precision=precision.value, compile=compile_model,
                       backend=backend, frames=frames, fps=fps)
        if n_clips == "protocol" and clf.recorded_protocol is None:
            say(f"note: {clf.provenance.weights} record no test protocol; --clips protocol "
                "uses 1 clip")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the note above says it
            protocol = clf.protocol_with(n_clips, int(crops))
        # The output is opened (created, or checked for resuming) only now that the model
        # has loaded: a failed download leaves no empty file behind.
        stamp = make_stamp(clf.provenance, protocol)
        writer = (open_output(output, top_k, stamp, overwrite, lock)
                  if output is not None else None)
        feature_writer = open_features(features, stamp) if features is not None else None
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    todo = [item for item in inputs.items if writer is None or not writer.is_done(item.path)]
    if not quiet:
        runner = "" if clf.backend.name == "torch" else f" ({clf.backend.name})"
        say(f"{clf.cfg.name} with weights {clf.provenance.weights} on {clf.device.type}{runner}, "
            f"{clf.precision}; {protocol.describe()}")
        if clf.precision_note:
            say(f"note: {clf.precision_note}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note above says it
        results = clf.classify(todo, top_k=top_k, clips=n_clips, crops=int(crops),
                               workers=workers, timeout=timeout, batch_size=batch_size,
                               decoder_messages=verbose, features=feature_writer is not None,
                               engine=engine, address=address,
                               layout=None if ray_layout == "auto" else ray_layout)
    show = _Display(single=len(inputs.items) == 1 and not inputs.skipped and writer is None,
                    to_file=writer is not None, quiet=quiet)
    _run(results, len(todo), writer, output, show,
         already=len(inputs.items) - len(todo), skipped=inputs.skipped_summary(),
         feature_writer=feature_writer, weights_note=_weights_note(clf))


def _weights_note(clf) -> str:
    """What the weights know, where their registry entry says (motion-demo's eight motions),
    so that nobody takes their answers on real footage for Kinetics labels."""
    return f"note: {clf.provenance.weights} {clf.note}" if clf.note else ""


class _Display:
    """Where each result is shown: a table for a single file, a line per file otherwise,
    nothing on stdout when rows go to a file (plain progress lines on stderr for logs).
    Notes go to stderr, above the progress bar while one is drawn. Quiet, a single file
    without an output still gets its one line (path, top label, score): its label is the
    whole result, and nothing else would keep it."""

    def __init__(self, single: bool, to_file: bool, quiet: bool) -> None:
        self.single, self.to_file, self.quiet = single, to_file, quiet

    def result(self, result, done: int, total: int, progress) -> None:
        def note(text: str) -> None:
            if progress.live.is_started:
                progress.console.print(escape(text), soft_wrap=True, highlight=False)
            else:
                say(text)

        path = shown(result.path)
        if not result.ok:
            if not (self.to_file and not errors.is_terminal and not self.quiet):
                note(f"{path}: error: {result.error}")
        elif result.warning and not self.quiet:
            note(f"{path}: warning: {result.warning}")
        if self.quiet:
            if self.single and result.ok:
                say(_result_line(result), to_stderr=False)
            return
        if self.to_file:
            if not errors.is_terminal:  # a log file: one plain line per file
                say(f"[{done}/{total}] {path}: " +
                    (f"{result.labels[0]} ({result.scores[0]:.3f})" if result.ok
                     else f"error: {result.error}"))
            return
        if not result.ok:
            return
        if self.single:
            console.print(_result_table(result))
            return
        line = _result_line(result)
        if console.is_terminal and progress.live.is_started:
            progress.console.print(escape(line), soft_wrap=True)  # above the bar, not through it
        else:
            say(line, to_stderr=False)


def _result_line(result) -> str:
    """A file's top label as a line a script splits on tabs: path, label, score."""
    return f"{shown(result.path)}\t{result.labels[0]}\t{result.scores[0]:.3f}"


def _result_table(result):
    from rich.table import Table

    say(shown(result.path), to_stderr=False)  # on a line of its own: never folded
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("rank", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for rank, (label, score) in enumerate(zip(result.labels, result.scores, strict=True), start=1):
        table.add_row(str(rank), label, f"{score:.3f}")
    return table


def _run(results, total: int, writer, output, show: _Display, already: int,
         skipped: str, feature_writer=None, weights_note: str = "") -> None:
    from ..progress import RateColumn, progress_bar

    done = failed = 0
    started = time.monotonic()
    progress = progress_bar("classifying", RateColumn("files"), console=errors,
                            disable=show.quiet or show.single)
    interrupted = False
    failure: OSError | None = None
    try:
        with progress:
            task = progress.add_task("", total=total)
            for result in results:
                if writer is not None:
                    try:
                        writer.write(result)
                    except OSError as exc:  # a full disk, say: stop, keeping what is written
                        failure = exc
                        break
                if feature_writer is not None and result.feature is not None:
                    feature_writer.add(result.path, result.feature)
                done += 1
                failed += not result.ok
                progress.update(task, advance=1)
                show.result(result, done, total, progress)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        results.close()  # stops the decoding workers now, whatever ended the loop
        closing = close_all(writer, feature_writer)  # always: it frees the output's lock
        failure = failure or closing
    if failure is not None:
        raise MvitError(f"cannot write {output} ({failure.strerror or failure}); the "
                        f"{done} rows written before are kept: make room and run the same "
                        "command again to resume")
    elapsed = time.monotonic() - started
    where = f" -> {output}" if output not in (None, "-") else ""
    notes = "".join(f", {note}" for note in (
        f"{already} already in the output" if already else "", skipped) if note)
    if interrupted:
        stop_interrupted(f"interrupted: {done - failed} of {total} files classified, "
                         f"{failed} failed{notes}; run the same command again to resume{where}")
    if not show.quiet or failed:
        say(f"{done - failed} of {total} files classified, {failed} failed{notes}, in "
            f"{elapsed:.1f} s{where}")
    if weights_note and not show.quiet:
        say(weights_note)
    raise typer.Exit(1 if failed else 0)
