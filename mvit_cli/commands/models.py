"""`mvit models` and `mvit inspect`: what architectures exist and what a checkpoint holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from .common import LabelsOption, ModelOption, console


def models_command() -> None:
    """List every architecture: input, parameters, GFLOPs per view, stages and weights."""
    from ..flops import count
    from ..models.architectures import ARCHITECTURES
    from ..pretrained.registry import weights_for

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
    checkpoint: Annotated[Path, typer.Argument(
        help="Checkpoint file (.pth, .pyth, .safetensors) in any supported layout.",
        show_default=False)],
    model: ModelOption = None,
    labels: LabelsOption = None,
) -> None:
    """Say what a checkpoint file is: its layout, architecture, classes and protocol, and
    whether it loads (into --model, if given)."""
    from ..checkpoints import CheckpointError, detect_layout, read_checkpoint
    from ..resolve import resolve
    from .common import say

    tensors, _ = read_checkpoint(checkpoint)
    try:
        layout = detect_layout(tensors)
    except ValueError as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from None
    values = sum(t.numel() for t in tensors.values())
    say(f"{checkpoint}: {layout.description}; {len(tensors)} tensors, {values:,} values",
        to_stderr=False)
    resolved = resolve(checkpoint, model=model, labels=labels)
    net = resolved.model
    say(f"architecture: {net.cfg.name} ({resolved.architecture_from}); loads: ok", to_stderr=False)
    say(f"classes: {net.num_classes}; labels: {resolved.labels_from} "
        f"({', '.join(resolved.labels[:3])}{', ...' if net.num_classes > 3 else ''})",
        to_stderr=False)
    protocol = resolved.recorded_protocol
    say("test protocol: " + (", ".join(f"{k} {v}" for k, v in protocol.items()) if protocol
                             else "none recorded (classify uses the defaults)"),
        to_stderr=False)
    say(f"sha256: {resolved.provenance.sha256}", to_stderr=False)
