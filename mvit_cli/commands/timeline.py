"""`mvit timeline`: labels over time for long videos, as rows, segments, subtitles or a picture.

A thin layer over `mvit_cli.load(...).timeline(...)` (the classify pipeline: same decoding
workers, deadlines and batches); this module reads options and sends each finished video to
the outputs asked for.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import MvitError, UsageError
from ..outputs.registry import features_suffixes, timeline_output_help
from .common import (FpsOption, FramesOption, VerboseOption, AddressOption, BackendOption, Device, DeviceOption, EngineOption,
                     LabelsOption, ModelOption, Precision, PrecisionOption, WeightsOption,
                     check_engine, close_all, errors, say, shown, start_decoders_early,
                     stop_interrupted)


def _per_video(template: str | None, option: str, videos: int) -> None:
    if template is not None and videos > 1 and "{stem}" not in template:
        raise UsageError(f"{option} {template}: one file per video; for several videos put "
                         "{stem} in the name, e.g. plots/{stem}.png")


def _for_video(template: str, path: str) -> Path:
    from ..media.discover import printable

    return Path(template.replace("{stem}", Path(printable(path)).stem))


def _prepare_folders(option: str, path: str | None, videos: list[str]) -> None:
    """Make the folder of each file `option` will write (one per video for a {stem}
    template), before the model loads."""
    from ..outputs.folders import prepare_folder

    if path is None or path == "-":
        return
    for target in ({_for_video(path, video) for video in videos} if "{stem}" in path
                   else {Path(path)}):
        prepare_folder(option, target)


def timeline_command(
    paths: Annotated[list[str], typer.Argument(
        help="Videos, folders (searched recursively) or globs.", metavar="VIDEO...",
        show_default=False)],
    model: ModelOption = None,
    weights: WeightsOption = None,
    labels: LabelsOption = None,
    window: Annotated[Optional[float], typer.Option(
        "--window", min=0.01, show_default=False,
        help="Window length in seconds, for weights that spread their frames over a clip "
             "(others sample frames x rate: their clip is the window). Default 2.")] = None,
    stride: Annotated[Optional[float], typer.Option(
        "--stride", min=0.01, show_default=False,
        help="Seconds between window starts. Default: half a window.")] = None,
    output: Annotated[Optional[str], typer.Option(
        "--output", "-o", show_default=False,
        help=timeline_output_help())] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1,
                                       help="Labels per window in rows.")] = 3,
    smooth: Annotated[int, typer.Option(
        "--smooth", min=1, help="Windows each score is averaged over before segments are "
                                "merged (1: none).")] = 1,
    threshold: Annotated[float, typer.Option(
        "--threshold", min=0.0, max=1.0,
        help="A window whose top score is below this has no label.")] = 0.0,
    min_segment: Annotated[float, typer.Option(
        "--min-segment", min=0.0, help="Seconds a segment lasts at least: a shorter one takes "
        "the label of the segment beside it (0: keep every segment).")] = 0.0,
    plot: Annotated[Optional[str], typer.Option(
        "--plot", show_default=False,
        help="Draw the timeline to FILE.png ({stem} for several videos).")] = None,
    annotate: Annotated[Optional[str], typer.Option(
        "--annotate", show_default=False,
        help="Write a copy of the video with its labels drawn on it, FILE.mp4 ({stem} for "
             "several videos).")] = None,
    features: Annotated[Optional[str], typer.Option(
        "--features", show_default=False,
        help=f"Write every window's pooled feature to {features_suffixes()}.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1,
                                            help="Windows per model call.")] = 8,
    device: DeviceOption = Device.auto,
    precision: PrecisionOption = Precision.auto,
    backend: BackendOption = "torch",
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=0, show_default=False,
        help="Decoding processes (0: decode in this process). Default: as classify.")] = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Seconds one stretch of windows may take to decode.")] = 120.0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start the output afresh instead of resuming it.")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="Only errors and the summary.")] = False,
    frames: FramesOption = None,
    fps: FpsOption = None,
    verbose: VerboseOption = False,
    engine: EngineOption = "local",
    address: AddressOption = None,
) -> None:
    """Label long videos over time: sliding windows, merged segments, subtitles, a picture."""
    from ..media.discover import find_inputs

    check_engine(engine, features)
    inputs = find_inputs(paths)
    if inputs.unmatched:
        argument, reason = inputs.unmatched[0]
        raise UsageError(f"{argument}: {reason}")
    start_decoders_early(engine, workers, inputs.items)
    from ..api import load
    from ..outputs.registry import (check_existing, check_output, lock_output_of,
                                    open_features, open_timeline_output)
    from ..outputs.folders import prepare_folder
    from ..outputs.timeline_settings import Settings
    from ..outputs.stamp import make_stamp

    videos = [item for item in inputs.items if item.kind != "image"]
    if output is not None:
        check_output("timeline", output, len(videos))
        _prepare_folders("-o", output, [item.path for item in videos])
    # Held from now: a second run on the same output refuses before loading anything.
    lock = lock_output_of("timeline", output) if output is not None else None
    try:
        if output is not None:
            check_existing("timeline", output, top_k, overwrite)  # before the model loads
        _per_video(plot, "--plot", len(videos))
        _per_video(annotate, "--annotate", len(videos))
        if features is not None:
            check_output("features", features)
        # Pictures and features are written after the work: their folders are made now.
        _prepare_folders("--plot", plot, [item.path for item in videos])
        _prepare_folders("--annotate", annotate, [item.path for item in videos])
        if features is not None:
            prepare_folder("--features", features)
        spinner = (errors.status("loading the model ...") if errors.is_terminal and not quiet
                   else None)
        with spinner or nullcontext():
            clf = load(weights, model=model, labels=labels, device=device.value,
                       precision=precision.value, backend=backend, frames=frames, fps=fps)
        windowing = clf.windowing(window, stride)
        protocol = clf.protocol_with(1, 1)
        stamp = make_stamp(clf.provenance, protocol)
        stamp["protocol"] += f"; windows of {windowing.length:g} s every {windowing.stride:g} s"
        settings = Settings(clf.labels, top_k, smooth, threshold, min_segment)
        writer = (open_timeline_output(output, settings, stamp, overwrite, lock)
                  if output else None)
        feature_writer = open_features(features, stamp) if features else None
        # Subtitles are checked per video: one we did not write is refused here.
        todo = [item for item in inputs.items
                if writer is None or not writer.is_done(item.path)]
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if not quiet:
        say(f"{clf.cfg.name} with weights {clf.provenance.weights}: windows of "
            f"{windowing.length:g} s every {windowing.stride:g} s; {protocol.describe()}")
        if clf.note:
            say(f"note: {clf.provenance.weights} {clf.note}")
        if clf.precision_note:
            say(f"note: {clf.precision_note}")

    def start(on_probe):
        return clf.timeline(todo, window=windowing.length, stride=windowing.stride,
                            workers=workers, timeout=timeout, batch_size=batch_size,
                            decoder_messages=verbose,
                            features=feature_writer is not None, on_probe=on_probe,
                            engine=engine, address=address)

    _run(clf, start, len(todo), writer, feature_writer, settings, plot, annotate, quiet,
         output, skipped=len(inputs.items) - len(todo))


def _run(clf, start, todo: int, writer, feature_writer, settings, plot, annotate, quiet,
         output, skipped: int) -> None:
    """`start(on_probe)`: the timelines, one per video as each is done."""
    from rich.progress import TextColumn

    from ..progress import progress_bar
    from ..outputs.annotate import annotate as write_annotated
    from ..outputs.plot import plot_timeline

    progress = progress_bar("timeline", TextColumn("{task.fields[seconds]}"), console=errors,
                            counted=False, disable=quiet)
    done_seconds = known_seconds = 0.0
    done = failed = 0
    started = time.monotonic()
    interrupted = False
    failure: OSError | None = None

    with progress:
        task = progress.add_task("", total=None, seconds="")

        def counts() -> str:
            return (f"{done} of {todo} videos, {done_seconds:.0f} of {known_seconds:.0f} s "
                    "of video")

        def probed(path: str, seconds: float) -> None:
            nonlocal known_seconds
            known_seconds += seconds
            progress.update(task, total=known_seconds, seconds=counts())

        results = start(probed)
        try:
            for video in results:
                done += 1
                failed += not video.ok
                if writer is not None:
                    try:
                        writer.write(video)
                    except OSError as exc:
                        failure = exc
                        break
                if video.ok:
                    _extras(clf, video, settings, plot, annotate, feature_writer, plot_timeline,
                            write_annotated, writer is None and not quiet)
                else:
                    progress.console.print(f"{shown(video.path)}: error: {video.error}",
                                           markup=False, highlight=False, soft_wrap=True)
                done_seconds += video.duration
                progress.update(task, completed=done_seconds, seconds=counts())
        except KeyboardInterrupt:
            interrupted = True
        finally:
            results.close()
            closing = close_all(writer, feature_writer)  # always: it frees the output's lock
            failure = failure or closing
    if failure is not None:
        raise MvitError(f"cannot write {output} ({failure.strerror or failure}); what was "
                        "written before is kept: make room and run the same command again")
    elapsed = time.monotonic() - started
    where = f" -> {output}" if output else ""
    note = f", {skipped} already in the output" if skipped else ""
    if interrupted:
        stop_interrupted(f"interrupted: {done - failed} of {todo} videos done{note}; run the "
                         f"same command again to resume{where}")
    if not quiet or failed:
        say(f"{done - failed} of {todo} videos, {done_seconds:.0f} s of video, "
            f"{failed} failed{note}, in {elapsed:.1f} s{where}")
    raise typer.Exit(1 if failed else 0)


def _extras(clf, video, settings, plot, annotate, feature_writer, plot_timeline,
            write_annotated, print_segments: bool) -> None:
    found = settings.segments(video)
    if print_segments:
        say(shown(video.path), to_stderr=False)
        for segment in found:
            say(f"{segment.start:8.2f}\t{segment.end:8.2f}\t{segment.label}\t"
                f"{segment.score:.3f}", to_stderr=False)
    if plot is not None:
        plot_timeline(video, found, clf.labels, _for_video(plot, video.path),
                      clf.provenance.weights, settings.smooth)
    if annotate is not None:
        write_annotated(video, clf.labels, _for_video(annotate, video.path), found=found)
    if feature_writer is not None:
        for window in video.windows:
            feature_writer.add(video.path, window.feature, window.start, window.end)
