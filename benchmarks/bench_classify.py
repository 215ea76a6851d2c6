"""End-to-end `mvit classify` over a folder of 720p clips, against the model alone.

    python benchmarks/bench_classify.py --files 48 --rounds 3 # throughput, 3 alternating rounds
    python benchmarks/bench_classify.py --memory 10,200       # peak memory, flat in files?
    python benchmarks/bench_classify.py --precision bf16      # where the CPU has native bf16

Makes its own clips (PyAV, h264, 1280x720, 30 fps), then times `mvit classify DIR -o
out.csv` (decoding in worker processes) and the model alone on ready-made clips at the
same batch size, in this one process tree and machine. Reports files/s, the ratio, and the
peak resident memory of the classify process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import mvit_cli
from machine import cpu_model


def make_clips(folder: Path, count: int, seconds: float = 3.0, fps: int = 30,
               width: int = 1280, height: int = 720) -> None:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    for index in range(count):
        path = folder / f"clip{index:04d}.mp4"
        if path.exists():
            continue
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for frame_index in range(int(seconds * fps)):
                shifted = np.roll(base, frame_index + index, axis=1)
                image = np.kron(shifted, np.ones((8, 8, 1), dtype=np.uint8))
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def weights_file(folder: Path, model: str) -> Path:
    import mvit_cli
    from mvit_cli.checkpoints import save_native

    path = folder / f"{model}.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        save_native(mvit_cli.build_model(model), path)
    return path


# Runs a command and reports the largest resident set among the processes it waited for,
# so each measurement is its own (ru_maxrss of RUSAGE_CHILDREN only ever grows).
_PEAK = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def run_classify(folder: Path, weights: Path, out: Path, batch: int, workers: int | None,
                 precision: str = "fp32"):
    command = [sys.executable, "-m", "mvit_cli.cli", "classify", str(folder), "--weights",
               str(weights), "-o", str(out), "--overwrite", "--batch-size", str(batch), "--quiet",
               "--precision", precision]
    if workers is not None:
        command += ["--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, *command], check=True,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    return elapsed, int(done.stdout.split()[-1]) / 1024


def model_only(model_name: str, files: int, batch: int, precision: str = "fp32") -> float:
    import mvit_cli

    clf = mvit_cli.Pipeline.from_model(mvit_cli.build_model(model_name), precision=precision)
    clip = torch.randn(batch, 3, 16, 224, 224)
    clf.forward(clip)
    started = time.perf_counter()
    done = 0
    while done < files:
        clf.forward(clip)
        done += batch
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--model", default="B-16x4")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None,
                        help="Decoding processes (default: classify's own default).")
    parser.add_argument("--memory", default=None, help="File counts to compare peak memory.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Length of each clip.")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                        help="Both sides' precision (bf16 pays only on CPUs with native bf16).")
    parser.add_argument("--rounds", type=int, default=3,
                        help="Alternating classify / model-alone rounds.")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "mvit-bench")
    args = parser.parse_args()
    mvit_cli.keep_freed_memory()  # as the `mvit` command's CPU runs do (mvit_cli/allocator.py)
    args.workdir.mkdir(parents=True, exist_ok=True)
    weights = weights_file(args.workdir, args.model)
    results: dict = {"model": args.model, "batch": args.batch, "workers": args.workers,
                     "precision": args.precision, "cpu": cpu_model()}
    if args.memory:
        counts = [int(c) for c in args.memory.split(",")]
        peaks = {}
        for count in counts:
            folder = args.workdir / f"clips{count}-{args.seconds:g}s"
            make_clips(folder, count, args.seconds)
            _, peak = run_classify(folder, weights, args.workdir / f"out{count}.csv",
                                   args.batch, args.workers)
            peaks[count] = peak
            print(f"{count} files: peak RSS of classify {peak:.0f} MB", flush=True)
        results["peak_rss_mb"] = peaks
    else:
        folder = args.workdir / f"clips{args.files}-{args.seconds:g}s"
        make_clips(folder, args.files, args.seconds)
        # Alternating rounds: this machine's speed drifts within minutes, so each round's
        # ratio pairs a classify run with the model alone measured right after it.
        rounds = []
        for _ in range(args.rounds):
            elapsed, _ = run_classify(folder, weights, args.workdir / "out.csv", args.batch,
                                      args.workers, args.precision)
            end_to_end = args.files / elapsed
            alone = model_only(args.model, args.files, args.batch, args.precision)
            rounds.append({"classify_files_per_s": end_to_end,
                           "model_only_clips_per_s": alone, "ratio": end_to_end / alone})
            print(f"classify {end_to_end:.3f} files/s, model alone {alone:.3f} clips/s, "
                  f"ratio {end_to_end / alone:.2f}", flush=True)
        ratios = sorted(r["ratio"] for r in rounds)
        results.update({"files": args.files, "rounds": rounds,
                        "median_ratio": ratios[len(ratios) // 2]})
        print(f"median ratio over {len(rounds)} rounds: {results['median_ratio']:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
