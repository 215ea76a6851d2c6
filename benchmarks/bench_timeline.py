"""`mvit timeline` speed: seconds of work per minute of 720p video, and frames decoded
against the frames the windows need.

    python benchmarks/bench_timeline.py --minutes 1 --weights motion-demo
    python benchmarks/bench_timeline.py --minutes 1 --model B-16x4      # random weights

The video (1280x720, h264, 30 fps, moving noise) is made once in --workdir. "Frames needed"
counts the distinct source frames the windows sample; decoding a stretch from its keyframe
decodes some more, and overlapping windows share theirs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_model


def make_video(path: Path, seconds: float, fps: int = 30) -> Path:
    if path.exists():
        return path
    import av

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for index in range(int(seconds * fps)):
            image = np.kron(np.roll(base, index, axis=1), np.ones((8, 8, 1), dtype=np.uint8))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--workdir", type=Path,
                        default=Path(tempfile.gettempdir()) / "mvit-bench")
    args = parser.parse_args()
    import mvit_cli
    mvit_cli.keep_freed_memory()  # as the `mvit` command's CPU runs do (mvit_cli/allocator.py)
    from mvit_cli.media.windows import sample_times

    args.workdir.mkdir(parents=True, exist_ok=True)
    video = make_video(args.workdir / f"timeline-{args.minutes:g}min-720p.mp4",
                       args.minutes * 60)
    if args.weights is None and args.model is not None:
        clf = mvit_cli.Pipeline.from_model(mvit_cli.build_model(args.model))
        name = f"{args.model} (random weights)"
    else:
        clf = mvit_cli.load(args.weights or "motion-demo")
        name = args.weights or "motion-demo"
    started = time.perf_counter()
    [result] = list(clf.timeline(video, workers=args.workers))
    elapsed = time.perf_counter() - started
    assert result.ok, result.error
    protocol, windowing = clf.protocol_with(1, 1), clf.windowing()
    needed = {int(np.floor(t * 30 + 1e-3)) for w in result.windows
              for t in sample_times(w.start, windowing, protocol, result.duration)}
    row = {"cpu": cpu_model(), "weights": name, "video_s": result.duration,
           "windows": len(result.windows), "seconds": elapsed,
           "seconds_per_minute_of_video": elapsed / (result.duration / 60),
           "frames_in_video": int(result.duration * 30), "frames_needed": len(needed),
           "frames_decoded": result.frames_decoded}
    print(f"# {row['cpu']}")
    print(f"{name}: {row['windows']} windows over {row['video_s']:.0f} s of 720p in "
          f"{elapsed:.1f} s: {row['seconds_per_minute_of_video']:.1f} s per minute of video; "
          f"frames decoded {row['frames_decoded']} for {row['frames_needed']} needed "
          f"({row['frames_in_video']} in the video)")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
