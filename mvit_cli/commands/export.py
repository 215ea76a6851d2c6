"""`mvit export`: the model as an ONNX graph, checked against torch before it is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import LabelsOption, ModelOption, WeightsOption, say

# Logits further than this from torch fp32's on the check input refuse the export.
TOLERANCE = 1e-4


def export_command(
    output: Annotated[Path, typer.Option(
        "--output", "-o", dir_okay=False, show_default=False,
        help="The ONNX file to write (.onnx).")],
    model: ModelOption = None,
    weights: WeightsOption = None,
    labels: LabelsOption = None,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", min=1, show_default=False,
        help="Frames per clip of the graph's input (default: the architecture's).")] = None,
    size: Annotated[Optional[int], typer.Option(
        "--size", min=16, show_default=False,
        help="Height and width of the graph's input (default: the architecture's).")] = None,
    dynamic_batch: Annotated[bool, typer.Option(
        "--dynamic-batch", help="Leave the batch size free (otherwise it is 1).")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Export the model (logits from normalised clips) as ONNX for onnxruntime or OpenVINO,
    and check it with onnxruntime where that is installed."""
    from ..api import load
    from ..errors import UsageError
    from ..export import check_with_onnxruntime, export_onnx

    if output.suffix.lower() != ".onnx":
        raise UsageError(f"{output}: the output must end in .onnx")
    if output.exists() and not overwrite:
        raise UsageError(f"{output}: exists; give --overwrite to replace it")
    if output.parent and not output.parent.is_dir():
        raise UsageError(f"{output.parent}: no such folder")
    clf = load(weights, model=model, labels=str(labels) if labels else None, device="cpu",
               precision="fp32")
    shape = (f"{frames or clf.cfg.frames}x" if clf.cfg.is_video else "") + \
        f"{size or clf.cfg.size}x{size or clf.cfg.size}"
    say(f"exporting {clf.cfg.name} ({clf.provenance.weights}) at {shape}"
           f"{', any batch size' if dynamic_batch else ', batch 1'}")
    export_onnx(clf, output, frames=frames, size=size, dynamic_batch=dynamic_batch)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        say(f"wrote {output} (not checked: onnxruntime is not installed)")
        return
    error = check_with_onnxruntime(clf, output, batch=2 if dynamic_batch else 1,
                                   frames=frames, size=size)
    if error > TOLERANCE:
        output.unlink(missing_ok=True)
        raise UsageError(f"onnxruntime's logits differ from torch's by {error:.2g} (more than "
                         f"{TOLERANCE:g}): the export was removed")
    say(f"wrote {output}: onnxruntime's logits within {error:.1g} of torch fp32")
