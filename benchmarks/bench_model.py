"""Model-only speed: mvit against torchvision's MViT on the same weights and input.

    python benchmarks/bench_model.py --torchvision-shim ../shared/reference

torchvision is the reference and not a dependency of mvit: install it beside (on a CPU-only
torch, the shim folder's torchvision_cpu.py imports it). Both models get torchvision's
random weights (ours through our torchvision-layout loader), the same input, and run
alternately in this one process, so machine load hits both alike; each number is a median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import mvit_cli
from machine import cpu_model

PAIRS = {"B-16x4": "mvit_v1_b", "v2-S-16x4": "mvit_v2_s"}


def import_torchvision(shim: Path | None):
    if shim is not None:
        sys.path.insert(0, str(shim))
        from torchvision_cpu import torchvision  # noqa: F401
    from torchvision.models import video

    return video


def timed(model, clip, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    model(clip)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def compare(name: str, tv_builder, batch: int, repeat: int, device, precision: str,
            compile: bool = False) -> dict:
    """torchvision's model against `Pipeline.forward` (what classify runs), same weights."""
    torch.manual_seed(0)
    reference = tv_builder().eval().to(device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tv.pth"
        torch.save(reference.state_dict(), path)
        ours = mvit_cli.load(path, model=name, device=str(device), precision=precision,
                             compile=compile)
    clip = torch.randn(batch, 3, 16, 224, 224, device=device)
    autocast = torch.autocast(device.type, dtype=ours.dtype, enabled=precision != "fp32")

    def torchvision_forward(x):
        with torch.inference_mode(), autocast:
            return reference(x).float()

    times = {"mvit": [], "torchvision": []}
    expected = torchvision_forward(clip).cpu()
    error = ((ours.forward(clip) - expected).abs().max() / expected.abs().max()).item()
    for attempt in range(repeat + 1):  # the first round warms both up
        for label, forward in (("torchvision", torchvision_forward), ("mvit", ours.forward)):
            elapsed = timed(forward, clip, device)
            if attempt:
                times[label].append(elapsed)
    tv, mine = statistics.median(times["torchvision"]), statistics.median(times["mvit"])
    return {"model": name, "reference": PAIRS[name], "batch": batch,
            "torchvision_s_per_clip": tv / batch, "mvit_s_per_clip": mine / batch,
            "speedup": tv / mine, "clips_per_s": batch / mine, "max_rel_error": error,
            "repeats": repeat, "compiled": compile}


def batch_against_single(name: str, batch: int, rounds: int, device) -> dict:
    """Our model only: per-clip time at `batch` against the same clips one at a time,
    alternating the two in each round, so machine drift hits both alike."""
    torch.manual_seed(0)
    model = mvit_cli.build_model(name).to(device)
    clips = torch.randn(batch, 3, 16, 224, 224, device=device)
    times = {"single": [], "batch": []}
    with torch.inference_mode():
        model(clips[:1])
        for _ in range(rounds):
            times["single"].append(sum(timed(model, clips[i:i + 1], device)
                                       for i in range(batch)) / batch)
            times["batch"].append(timed(model, clips, device) / batch)
    single, batched = statistics.median(times["single"]), statistics.median(times["batch"])
    return {"model": name, "batch": batch, "single_s_per_clip": single,
            "batch_s_per_clip": batched, "batch_over_single": batched / single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision-shim", type=Path, default=None)
    parser.add_argument("--models", default="B-16x4,v2-S-16x4")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--json", type=Path, default=None, help="Also write results here.")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model.")
    parser.add_argument("--batch-check", type=int, default=0, metavar="N",
                        help="Instead: per-clip time at batch N against batch 1, alternating.")
    args = parser.parse_args()
    if args.device == "cpu":  # as the `mvit` command's CPU runs do (mvit_cli/allocator.py)
        mvit_cli.keep_freed_memory()
    device = torch.device(args.device)
    print(f"# {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{device}, {args.precision}")
    results = []
    if args.batch_check:
        for name in args.models.split(","):
            row = batch_against_single(name, args.batch_check, args.repeat, device)
            results.append(row)
            print(f"{name:10s} batch {args.batch_check}: {row['batch_s_per_clip']:.3f} s/clip, "
                  f"one at a time {row['single_s_per_clip']:.3f} s/clip, ratio "
                  f"{row['batch_over_single']:.3f}", flush=True)
        args.models = ""
    video = import_torchvision(args.torchvision_shim) if args.models else None
    for name in filter(None, args.models.split(",")):
        for batch in map(int, args.batches.split(",")):
            row = compare(name, getattr(video, PAIRS[name]), batch, args.repeat, device,
                          args.precision, args.compile)
            results.append(row)
            print(f"{name:10s} batch {batch:2d}: torchvision {row['torchvision_s_per_clip']:.3f} "
                  f"s/clip, mvit {row['mvit_s_per_clip']:.3f} s/clip, speed-up "
                  f"{row['speedup']:.2f}x, max rel error {row['max_rel_error']:.1e}"
                  + (" (compiled)" if args.compile else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
