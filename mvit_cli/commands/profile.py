"""`mvit profile`: FLOPs, parameters, activation memory and time, stage by stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from ..classify.runner import resolve_device, resolve_precision
from ..models.architectures import UnknownArchitectureError, get_config
from ..profiling import Profile, profile
from .common import console, fail


def _numbers(text: Optional[str], option: str) -> list[int | None]:
    if text is None:
        return [None]
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter("whole numbers separated by commas", param_hint=option)
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
        fail("--plot needs matplotlib: pip install 'mvit-cli[plot]'")
    figure, axis = plt.subplots(figsize=(6, 4))
    if len(results) > 1:
        xs = [r.input[swept] for r in results]
        axis.plot(xs, [r.gflops * scale for r in results], marker="o", label="GFLOPs")
        axis.set_xlabel(swept)
        axis.set_ylabel(unit)
        times = [r.total_ms for r in results]
        if all(t is not None for t in times):
            twin = axis.twinx()
            twin.plot(xs, times, marker="s", color="tab:red", label="ms")
            twin.set_ylabel("ms per forward")
        axis.set_title(f"{results[0].model}: cost against {swept}")
    else:
        rows = results[0].stages
        axis.bar([r.name for r in rows], [r.gflops * scale for r in rows])
        axis.set_ylabel(unit)
        axis.set_title(f"{results[0].model}: cost per segment")
        axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def profile_command(
    model: str = typer.Option(..., "--model", "-m", help="Architecture (mvit models)."),
    frames: Optional[str] = typer.Option(None, "--frames", help="Frames, or a sweep: 8,16,32."),
    size: Optional[str] = typer.Option(None, "--size", help="Input size, or a sweep: 160,224."),
    batch: int = typer.Option(1, "--batch", min=1, help="Clips per forward."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16."),
    repeat: Optional[int] = typer.Option(None, "--repeat", min=0,
                                         help="Timed forwards (default 3; sweeps 0)."),
    flops_unit: str = typer.Option("mac", "--flops-unit",
                                   help="mac: multiply-adds (the papers'); flop: 2 per mac."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the result to FILE.png."),
) -> None:
    """Show where FLOPs, parameters, memory and time go, stage by stage."""
    try:
        cfg = get_config(model)
    except UnknownArchitectureError as exc:
        fail(str(exc), code=2)
    if flops_unit not in ("mac", "flop"):
        raise typer.BadParameter("mac or flop", param_hint="--flops-unit")
    if precision not in ("fp32", "bf16", "fp16"):
        raise typer.BadParameter("fp32, bf16 or fp16", param_hint="--precision")
    frame_values, size_values = _numbers(frames, "--frames"), _numbers(size, "--size")
    if frames is not None and not cfg.is_video:
        raise typer.BadParameter(f"{cfg.name} is an image model", param_hint="--frames")
    if len(frame_values) > 1 and len(size_values) > 1:
        raise typer.BadParameter("sweep one of --frames and --size at a time")
    try:
        torch_device = resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device")
    dtype = resolve_precision(precision, torch_device)
    sweep = len(frame_values) > 1 or len(size_values) > 1
    repeat = repeat if repeat is not None else (0 if sweep else 3)
    settings = [(f, s) for f in frame_values for s in size_values]
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
