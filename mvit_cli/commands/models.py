"""`mvit models` and `mvit inspect`: what architectures exist and what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from ..checkpoints import CheckpointError, read_checkpoint
from ..checkpoints.layouts import detect_layout
from ..factory import build_model
from ..flops import count
from ..models.architectures import ARCHITECTURES, UnknownArchitectureError, get_config
from ..pretrained.registry import weights_for
from .common import console, fail


def models_command() -> None:
    """List every architecture: input, parameters, GFLOPs per view, stages and weights."""
    table = Table(title="MViT architectures", box=box.SIMPLE_HEAD, pad_edge=False,
                  caption="GFLOPs: multiply-adds per view, the papers' convention; "
                          "* marks the default weights")
    table.add_column("architecture", no_wrap=True)
    table.add_column("input", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("GFLOPs", justify="right", no_wrap=True)
    table.add_column("paper", overflow="fold")
    table.add_column("stages", no_wrap=True)
    table.add_column("weights", min_width=23, no_wrap=True)
    for name, cfg in ARCHITECTURES.items():
        params, macs = count(cfg)
        shape = f"{cfg.frames}x{cfg.size}" if cfg.is_video else f"{cfg.size} img"
        paper = f"{cfg.paper_params_m}M\n{cfg.paper_gflops}G" if cfg.paper_params_m else "-"
        weights = "\n".join(e.name + ("*" if e.default else "") for e in weights_for(name))
        table.add_row(name, shape, f"{params / 1e6:.1f}M", f"{macs / 1e9:.1f}", paper,
                      "+".join(map(str, cfg.depths)), weights or "-")
    console.print(table)


def inspect_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file (.pth, .pyth, .safetensors)."),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Also load it into this architecture."),
) -> None:
    """Say what a checkpoint file is (layout, tensors) and whether it loads into --model."""
    try:
        tensors, metadata = read_checkpoint(checkpoint)
        layout = detect_layout(tensors)
    except (CheckpointError, ValueError) as exc:
        fail(str(exc))
    params = sum(t.numel() for t in tensors.values())
    console.print(f"{checkpoint}: {layout.description}; {len(tensors)} tensors, "
                  f"{params:,} values")
    if metadata.get("mvit.architecture"):
        console.print(f"architecture (from the file): {metadata['mvit.architecture']}")
    if model is not None:
        try:
            loaded = build_model(model, weights=checkpoint)
        except (CheckpointError, UnknownArchitectureError, OSError) as exc:
            fail(str(exc))
        console.print(f"loads into {get_config(model).name}: ok, "
                      f"{loaded.num_classes} classes")
