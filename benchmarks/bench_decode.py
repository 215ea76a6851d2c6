"""CPU time to decode one 10-second clip into a model's views: what sizes a GPU node's
decoders (RESULTS.md, "A million clips on GPU nodes").

    python benchmarks/bench_decode.py --files 8

For 10-second H.264 clips at 30 fps (libx264's defaults: one keyframe per 250 frames, so a
clip is decoded from its start, the worst case) at 720p and at 340p (the short side most
Kinetics copies are stored at), under B-16x4's two protocols: 1 clip x 1 crop (16 frames)
and its published 10 clips x 3 crops. One process, one thread: seconds per clip per core.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench_classify import make_clips
from machine import cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "mvit-bench")
    args = parser.parse_args()

    import torch

    from mvit_cli.engines.local.workers import Task, prepare
    from mvit_cli.media.protocol import protocol_for

    torch.set_num_threads(1)
    from mvit_cli.models.architectures import ARCHITECTURES

    cfg = ARCHITECTURES["B-16x4"]
    protocols = {"1x1": protocol_for(cfg, None, 1, 1), "10x3": protocol_for(cfg, None, 10, 3)}
    result = {"cpu": cpu_model(), "seconds_per_clip": {}}
    print(f"# {result['cpu']}: CPU seconds to decode one 10-s clip into B-16x4's views")
    for width, height in ((1280, 720), (604, 340)):
        folder = args.workdir / f"decode-{height}p-10s"
        make_clips(folder, args.files, 10.0, width=width, height=height)
        files = sorted(folder.glob("*.mp4"))
        for name, protocol in protocols.items():
            prepare(Task(0, str(files[0]), "video"), protocol)  # warm caches
            started = time.process_time()
            for index, path in enumerate(files):
                prepared = prepare(Task(index, str(path), "video"), protocol)
                assert not prepared.error, prepared.error
            per_clip = (time.process_time() - started) / len(files)
            result["seconds_per_clip"][f"{height}p {name}"] = per_clip
            print(f"{height}p, {name}: {per_clip:.3f} s per clip ({1 / per_clip:.2f} clips/s "
                  "per core)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
