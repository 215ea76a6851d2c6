"""Every way to run B-16x4 on this CPU, alternating in one process, against torchvision fp32.

    python benchmarks/bench_backends.py --torchvision-shim ../shared/reference --batches 1
    python benchmarks/bench_backends.py --torchvision-shim ../shared/reference \
        --model v2-S-16x4 --skip OpenVINO --skip ONNX        # torch rows only

Rows: torchvision's mvit_v1_b in fp32 (the base); mvit in fp32 and in bf16 (`--precision
bf16`, the weights cast once; and autocast over the fp32 model, for comparison); ONNX
Runtime fp32 on torchvision's graph; OpenVINO f32 and bf16 on torchvision's graph and on
mvit's own, the latter through the product's `backend="openvino"` itself (its batch-1 graph,
clip by clip; export and compile cached under a scratch MVIT_HOME). Torchvision's graphs are
exported at each row's batch size with the batch fixed, which OpenVINO runs at least as fast
as a batch-free graph, so the competitor gets its best. Same random
torchvision weights for all (ours through our torchvision-layout loader), same input; a
graph is exported only if a row left in needs it. Each
round runs every variant once, in turn; the median per variant over the rounds is reported
as a speed ratio against torchvision fp32, with the largest relative logit error against it.
OpenVINO's `INFERENCE_PRECISION_HINT` bf16 runs in bf16 only where the CPU has native bf16
(avx512_bf16 or AMX); elsewhere it falls back to f32, which the error column shows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench_model import PAIRS, import_torchvision
from machine import cpu_model

import mvit_cli


def onnx_of(module, example, path: Path) -> Path:
    """`module`'s graph at `example`'s shape, the batch fixed."""
    with torch.no_grad():
        program = torch.onnx.export(module, (example,), dynamo=True,
                                    input_names=["clips"], output_names=["logits"])
    program.save(str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision-shim", type=Path, default=None)
    parser.add_argument("--batches", default="1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip", action="append", default=[], metavar="TEXT",
                        help="Leave out the variants whose name contains TEXT (repeatable): "
                        "e.g. 'mvit bf16' on a CPU that only emulates bf16, where one batch "
                        "of 8 takes minutes and its time says nothing about bf16 hardware.")
    parser.add_argument("--model", default="B-16x4", choices=sorted(PAIRS),
                        help="Which model, against its torchvision twin (default B-16x4).")
    args = parser.parse_args()
    mvit_cli.keep_freed_memory()  # as the `mvit` command's CPU runs do (mvit_cli/allocator.py)
    import onnxruntime
    import openvino as ov

    video = import_torchvision(args.torchvision_shim)
    torch.manual_seed(0)
    reference = getattr(video, PAIRS[args.model])().eval()
    work = Path(tempfile.mkdtemp(prefix="mvit-backends-"))
    os.environ["MVIT_HOME"] = str(work / "home")  # the OpenVINO backend's cache, scratch
    torch.save(reference.state_dict(), work / "tv.pth")
    fp32 = mvit_cli.load(work / "tv.pth", model=args.model, precision="fp32")
    bf16 = mvit_cli.load(work / "tv.pth", model=args.model, precision="bf16")
    core = ov.Core()
    example = torch.randn(1, 3, 16, 224, 224)
    export_s = 0.0

    def exported(batch: int) -> Path:
        """Torchvision's graph at a fixed batch size, exported on first use."""
        nonlocal export_s
        path = work / f"tv-{batch}.onnx"
        if not path.exists():
            started = time.perf_counter()
            onnx_of(reference, example.expand(batch, -1, -1, -1, -1).contiguous(), path)
            export_s += time.perf_counter() - started
        return path

    def onnxruntime_fp32():
        sessions = {}

        def run(x):
            if len(x) not in sessions:
                sessions[len(x)] = onnxruntime.InferenceSession(
                    str(exported(len(x))), providers=["CPUExecutionProvider"])
            return torch.from_numpy(sessions[len(x)].run(None, {"clips": x.numpy()})[0])
        return run

    def openvino_torchvision(precision: str):
        def build():
            compiled = {}

            def run(x):
                if len(x) not in compiled:
                    compiled[len(x)] = core.compile_model(
                        str(exported(len(x))), "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                       "PERFORMANCE_HINT": "LATENCY"})
                return torch.from_numpy(compiled[len(x)](x.numpy())[0].copy())
            return run
        return build

    def openvino_mvit(precision: str):
        def build():
            nonlocal export_s
            started = time.perf_counter()
            pipeline = mvit_cli.load(work / "tv.pth", model=args.model, precision=precision,
                                     backend="openvino")
            export_s += time.perf_counter() - started
            return pipeline.forward
        return build

    def autocast_bf16(x):
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return fp32.model(x).float()

    def torchvision_fp32(x):
        with torch.inference_mode():
            return reference(x)

    builders = {
        "torchvision fp32": lambda: torchvision_fp32,
        "mvit fp32": lambda: fp32.forward,
        "mvit bf16 (`--precision bf16`: weights cast once, head fp32)": lambda: bf16.forward,
        "mvit bf16 (autocast over the fp32 model)": lambda: autocast_bf16,
        "ONNX Runtime fp32, torchvision's graph": onnxruntime_fp32,
        "OpenVINO f32, torchvision's graph": openvino_torchvision("f32"),
        "OpenVINO bf16, torchvision's graph": openvino_torchvision("bf16"),
        "OpenVINO f32, mvit's graph (`--backend openvino`)": openvino_mvit("fp32"),
        "OpenVINO bf16, mvit's graph (`--backend openvino`)": openvino_mvit("bf16"),
    }
    variants = {name: build() for name, build in builders.items()
                if name == "torchvision fp32" or not any(text in name for text in args.skip)}
    result = {"cpu": cpu_model(), "model": args.model, "torch": torch.__version__,
              "openvino": ov.__version__, "onnxruntime": onnxruntime.__version__,
              "export_s": export_s, "batches": {}}
    print(f"# {args.model}; {result['cpu']}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OpenVINO {ov.__version__}, ONNX Runtime {onnxruntime.__version__}")
    for batch in map(int, args.batches.split(",")):
        clip = torch.randn(batch, 3, 16, 224, 224)
        expected = torchvision_fp32(clip)
        times: dict[str, list[float]] = {name: [] for name in variants}
        errors = {}
        for name, forward in variants.items():  # warm up, and the accuracy column
            got = forward(clip).float()
            errors[name] = float((got - expected).abs().max() / expected.abs().max())
        for _ in range(args.rounds):
            for name, forward in variants.items():
                started = time.perf_counter()
                forward(clip)
                times[name].append(time.perf_counter() - started)
        base = statistics.median(times["torchvision fp32"])
        rows = {}
        print(f"\nbatch {batch} (torchvision fp32: {base / batch:.3f} s per clip)")
        for name in variants:
            median = statistics.median(times[name])
            rows[name] = {"s_per_clip": median / batch, "speed": base / median,
                          "max_rel_error": errors[name]}
            print(f"  {name:40s} {base / median:5.2f}x  max rel. error {errors[name]:.1e}")
        result["batches"][batch] = rows
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
