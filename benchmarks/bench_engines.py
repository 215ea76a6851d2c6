"""The same folder through `--engine local` and `--engine ray` on this machine.

    python benchmarks/bench_engines.py --files 64 --rounds 2   # B-16x4, random weights

Each round runs the local engine, then `--engine ray` in both layouts (nodes: a local engine
per CPU node as a Ray actor; split: Ray Data decoding tasks beside a model actor), each a
fresh process, on the same 720p clips (bench_classify.make_clips). Ray's start-up (`ray.init`
of a local Ray) is timed apart from the job; the job's time includes what a cluster that is
already up still pays per job (the driver loading the weights, actors loading the model).
The local engine's time includes its interpreter start and model loading.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_classify import make_clips, weights_file
from machine import cpu_model

RAY_RUN = """
import sys, time
started = time.perf_counter()
import ray
ray.init(include_dashboard=False, log_to_driver=False)
ready = time.perf_counter()
from mvit_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("TIMES", ready - started, time.perf_counter() - ready)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--model", default="B-16x4")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2,
                        help="local, ray nodes, ray split: this many times, alternating")
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "mvit-bench")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    weights = weights_file(args.workdir, args.model)
    folder = args.workdir / f"clips{args.files}-{args.seconds:g}s"
    make_clips(folder, args.files, args.seconds)
    common = ["classify", str(folder), "--weights", str(weights), "--overwrite", "--quiet"]

    def local() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mvit_cli.cli", *common, "-o",
                        str(args.workdir / "local.csv")], check=True)
        return time.perf_counter() - started

    def on_ray(layout: str) -> tuple[float, float]:
        done = subprocess.run([sys.executable, "-c", RAY_RUN, *common, "-o",
                               str(args.workdir / f"ray-{layout}.csv"), "--engine", "ray",
                               "--ray-layout", layout], capture_output=True, text=True,
                              check=False)
        line = [x for x in done.stdout.splitlines() if x.startswith("TIMES")]
        if not line:
            raise SystemExit(done.stderr[-2000:])
        startup, job = map(float, line[0].split()[1:])
        return startup, job

    runs: dict[str, list[float]] = {"local": [], "nodes": [], "split": []}
    startups: list[float] = []
    for _ in range(args.rounds):
        runs["local"].append(local())
        for layout in ("nodes", "split"):
            startup, job = on_ray(layout)
            startups.append(startup)
            runs[layout].append(job)
    result = {"cpu": cpu_model(), "model": args.model, "files": args.files,
              "rounds": args.rounds, "seconds": runs, "ray_startup_s": startups,
              "local_files_per_s": args.files / statistics.median(runs["local"])}
    print(f"# {result['cpu']}, {args.model}, {args.files} files of {args.seconds:g} s 720p")
    print(f"local engine: {result['local_files_per_s']:.3f} files/s (median of "
          f"{args.rounds}; interpreter start and model loading included)")
    print(f"ray start-up (ray.init of a local Ray): {statistics.median(startups):.1f} s")
    for layout in ("nodes", "split"):
        ratios = [a / b for a, b in zip(runs["local"], runs[layout], strict=True)]
        rate = args.files / statistics.median(runs[layout])
        result[f"ray_{layout}_files_per_s"] = rate
        result[f"ray_{layout}_over_local"] = ratios
        print(f"ray --ray-layout {layout}: {rate:.3f} files/s after start-up, "
              f"{' '.join(f'{r:.2f}x' for r in ratios)} the local engine in each round")
    print(json.dumps(result))
    (args.workdir / "bench_engines.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
