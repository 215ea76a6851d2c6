"""`mvit profile`: FLOPs, parameters, activation memory and time, stage by stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import typer
from rich import box
from rich.table import Table

from ..models.architectures import get_config
from .common import Device, DeviceOption, console, fail
from ..extras import install_hint

if TYPE_CHECKING:
    from ..profiling import Profile


def _numbers(text: Optional[str], option: str) -> list[int | None]:
    if text is None:
        return [None]
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("whole numbers separated by commas", param_hint=option) from None
    if not values or min(values) < 1:
        raise typer.BadParameter("at least one positive number", param_hint=option)
    return values


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _stage_table(result: Profile, scale: float, unit: str) -> Table:
    table = Table(title=f"{result.model}: input {result.input['batch']}x"
                        f"{result.input['frames']}x{result.input['size']}², {result.device}, "
                        f"{result.precision}", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption=f"{unit}, the whole architecture's; the run skips work the output "
                          "never reads (the last block computes only the class token when the "
                          f"head reads that alone). Memory: {result.memory_method}. ms: median "
                          "per forward after warm-up.")
    for column in ("segment", "blocks", "tokens", "width", "heads", "K/V", "params",
                   "GFLOPs", "out MB", "largest MB", "peak MB", "ms"):
        table.add_column(column, justify="left" if column in ("segment", "tokens", "K/V")
                         else "right", no_wrap=True)
    for row in result.stages:
        table.add_row(row.name, str(row.blocks or "-"), "x".join(map(str, row.tokens)),
                      str(row.dim), str(row.heads or "-"),
                      "x".join(map(str, row.kv_tokens)) if row.kv_tokens else "-",
                      f"{row.params / 1e6:.2f}M", f"{row.gflops * scale:.2f}",
                      _fmt(row.activation_mb), _fmt(row.largest_mb), _fmt(row.peak_mb),
                      _fmt(row.ms, 0))
    paper = result.paper
    table.add_section()
    table.add_row("total", str(sum(r.blocks for r in result.stages)), "", "", "", "",
                  f"{result.params / 1e6:.2f}M", f"{result.gflops * scale:.2f}", "", "",
                  _fmt(max(r.peak_mb for r in result.stages)), _fmt(result.total_ms, 0))
    if paper.get("gflops"):
        table.add_row("paper", "", "", "", "", "", f"{paper['params_m']}M",
                      f"{paper['gflops'] * scale:.1f}", "", "", "", "")
    return table


def _plot(path: Path, results: list[Profile], swept: str, scale: float, unit: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail(f"--plot needs matplotlib: {install_hint('plot')}")
    figure = profile_figure(results, swept, scale)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def profile_figure(results: list[Profile], swept: str, scale: float):
    """The picture of a profile: a sweep's cost and time against what was swept, or one
    input's cost, memory and time per segment. Each axis says what it shows in its own
    label and colour, so there are no legends to cover the bars; every bar carries its
    value, so a segment too small to see (the head) still reads; and every axis starts at
    zero, so heights compare."""
    import matplotlib.pyplot as plt

    gflops_label = "GFLOPs (multiply-adds)" if scale == 1 else "GFLOPs (2 per multiply-add)"
    first = results[0]
    if len(results) > 1:
        figure, axis = plt.subplots(figsize=(8, 5))
        xs = [r.input[swept] for r in results]
        axis.plot(xs, [r.gflops * scale for r in results], marker="o", color="tab:blue")
        axis.set_xlabel("frames per clip" if swept == "frames" else "input size (pixels)")
        axis.set_ylabel(gflops_label, color="tab:blue")
        axis.set_ylim(bottom=0)
        axis.set_xticks(xs)
        times = [r.total_ms for r in results]
        if all(t is not None for t in times):
            twin = axis.twinx()
            twin.plot(xs, times, marker="s", color="tab:red")
            twin.set_ylabel(f"time per forward (ms, {first.device})", color="tab:red")
            twin.set_ylim(bottom=0)
        axis.set_title(f"{first.model}: cost against {swept} (batch {first.input['batch']})")
        axis.grid(alpha=0.3)
    else:
        rows = first.stages
        names = [r.name for r in rows]
        panels = [("compute", [r.gflops * scale for r in rows], gflops_label, "tab:blue"),
                  ("memory", [r.peak_mb for r in rows], "peak memory (MB)", "tab:green")]
        if all(r.ms is not None for r in rows):
            panels.append(("time", [r.ms for r in rows], f"time (ms, {first.device})",
                           "tab:red"))
        figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
        for axis, (title, values, label, colour) in zip(axes, panels, strict=True):
            bars = axis.bar(names, values, color=colour)
            axis.bar_label(bars, labels=[f"{v:.3g}" for v in values], fontsize=8, padding=2)
            axis.set_ylim(0, max(values, default=0) * 1.15 or 1)  # room for the values
            axis.set_ylabel(label)
            axis.set_xlabel("segment")
            axis.set_title(title)
            axis.tick_params(axis="x", rotation=30)
            for tick in axis.get_xticklabels():
                tick.set_horizontalalignment("right")
        figure.suptitle(f"{first.model}: per segment, input {first.input['batch']}x"
                        f"{first.input['frames']}x{first.input['size']}², {first.precision}")
    figure.tight_layout()
    return figure


def _check_memory(cfg, settings, batch: int) -> None:
    """Refuse, in one line, a run whose activations cannot fit (rather than an OOM kill)."""
    import os

    from ..errors import UsageError
    from ..flops import activation_bytes

    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return  # no way to tell here: let the run try
    for frames, size in settings:
        needed = activation_bytes(cfg, frames, size, batch)
        if needed > memory / 2:
            raise UsageError(f"{cfg.name} at {frames or cfg.frames} frames of {size or cfg.size} "
                             f"px, batch {batch}, needs about {needed / 1e9:.0f} GB for its "
                             f"activations, and this machine has {memory / 1e9:.0f} GB; add "
                             "--repeat 0 to a sweep to count FLOPs only")


def profile_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Architecture (see mvit models).")],
    frames: Annotated[Optional[str], typer.Option(
        "--frames", help="Frames per clip, or a sweep: 8,16,32.", show_default=False)] = None,
    size: Annotated[Optional[str], typer.Option(
        "--size", help="Input size in pixels, or a sweep: 160,224.", show_default=False)] = None,
    batch: Annotated[int, typer.Option(
        "--batch-size", "-b", "--batch", min=1,
        help="Clips per forward (--batch: the same, its older name).")] = 1,
    device: DeviceOption = Device.auto,
    precision: Annotated[Literal["fp32", "bf16", "fp16"], typer.Option(
        "--precision", help="Number format of the timed forwards.")] = "fp32",
    repeat: Annotated[Optional[int], typer.Option(
        "--repeat", min=0, show_default=False,
        help="Timed forwards after one warm-up (0: count only). Default: 3; 1 per point of "
             "a sweep.")] = None,
    flops_unit: Annotated[Literal["mac", "flop"], typer.Option(
        "--flops-unit", help="mac: multiply-adds (the papers'); flop: 2 per mac.")] = "mac",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Also draw the result to FILE.png (needs matplotlib).",
        show_default=False)] = None,
) -> None:
    """Show where FLOPs, parameters, memory and time go, stage by stage."""
    from ..devices import resolve_device, resolve_precision
    from ..profiling import profile

    cfg = get_config(model)
    frame_values, size_values = _numbers(frames, "--frames"), _numbers(size, "--size")
    if frames is not None and not cfg.is_video:
        raise typer.BadParameter(f"{cfg.name} is an image model", param_hint="--frames")
    if len(frame_values) > 1 and len(size_values) > 1:
        raise typer.BadParameter("sweep one of --frames and --size at a time")
    torch_device = resolve_device(device.value)
    dtype = resolve_precision(precision, torch_device)
    sweep = len(frame_values) > 1 or len(size_values) > 1
    repeat = repeat if repeat is not None else (1 if sweep else 3)
    settings = [(f, s) for f in frame_values for s in size_values]
    if not sweep or repeat > 0:  # the run allocates real activations: will they fit?
        _check_memory(cfg, settings, batch)
    results = [profile(cfg, f, s, batch, torch_device, dtype, repeat, measure=not sweep or repeat > 0)
               for f, s in settings]
    scale = 2.0 if flops_unit == "flop" else 1.0
    unit = ("GFLOPs as multiply-adds (the papers' fvcore convention)" if scale == 1 else
            "GFLOPs, 2 per multiply-add")
    swept = "frames" if len(frame_values) > 1 else "size"
    if as_json:
        payload = [r.to_json(flops_unit) for r in results]
        console.print_json(json.dumps(payload if sweep else payload[0]))
    elif sweep:
        table = Table(title=f"{cfg.name}: cost against {swept}", box=box.SIMPLE_HEAD,
                      caption=unit, pad_edge=False)
        for column in ("frames", "size", "tokens", "params", "GFLOPs", "x first", "ms"):
            table.add_column(column, justify="right")
        base = results[0].gflops
        for r in results:
            embed = r.stages[0].tokens
            table.add_row(str(r.input["frames"]), str(r.input["size"]), "x".join(map(str, embed)),
                          f"{r.params / 1e6:.2f}M", f"{r.gflops * scale:.1f}",
                          f"{r.gflops / base:.2f}", _fmt(r.total_ms, 0))
        console.print(table)
    else:
        console.print(_stage_table(results[0], scale, unit))
    if plot is not None:
        _plot(plot, results, swept, scale, unit)
        if not as_json:
            console.print(f"plot: {plot}")
