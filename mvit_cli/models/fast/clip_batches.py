"""A batch of clips run clip by clip in CPU inference, and side by side on 2+ threads.

Why clip by clip: a 16x224 clip's stage-1 activations fit in the CPU's cache; a batch of 8
holds eight times as much, and every norm, GELU and copy then waits on main memory (B-16x4
ran measurably slower per clip at batch 8). Clips are independent, so one at a time gives
the same logits faster (benchmarks/RESULTS.md, "The fast paths' figures", clip batches).
Not under ONNX export, where a Python loop over the batch would fix
the graph's batch size. The loop itself: network.forward; `map_clips` runs it.

Why side by side ("lanes"): within one clip, torch's threads meet at a barrier after every
op, and wait there for the slowest (B-16x4 gained far less than a second core's worth).
Clips run on threads of their own, one intra-op thread each, never wait for each other.
Same logits, bit for bit, at the published models' sizes (full-size B-16x4 in fp32 on an
Intel Xeon, where MKL runs fp32's GEMMs, as well as on AMD); on small inputs MKL splits the
sums of GEMMs of few rows across threads, so a lane's one thread can round differently in
the last bits. B-16x4 at batch 8 on a 2-vCPU Zen 5 ran faster in lanes than clip after clip,
in bf16 and fp32 (benchmarks/RESULTS.md, "Clip lanes"; row `clip_lanes` of
benchmarks/bench_fast_paths.py --batch 8). The cost is memory: each lane holds one clip's
activations. Unmeasured on more than 2 cores, where each lane gets threads // lanes
intra-op threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import torch
from torch import Tensor

_EXECUTORS: dict[int, ThreadPoolExecutor] = {}
_EXECUTORS_LOCK = threading.Lock()
_LANE = threading.local()  # the intra-op threads this lane thread was given


def map_clips(run: Callable[[Tensor], Tensor], clips: Sequence[Tensor],
              lanes: bool = True) -> list[Tensor]:
    """`run` on each CPU clip: in lanes (one per intra-op thread of the caller, at most one
    per clip) in inference, in order on this thread otherwise. The caller's inference
    mode and autocast state go with each clip (both are per thread in torch)."""
    threads = torch.get_num_threads()
    count = min(len(clips), threads)
    if (not lanes or count < 2 or torch.is_grad_enabled() or torch.compiler.is_compiling()
            or any(clip.device.type != "cpu" for clip in clips)):
        return [run(clip) for clip in clips]
    per_lane = max(1, threads // count)
    inference = torch.is_inference_mode_enabled()
    autocast = torch.is_autocast_enabled("cpu")
    autocast_dtype = torch.get_autocast_dtype("cpu")

    def in_lane(clip: Tensor) -> Tensor:
        if getattr(_LANE, "threads", None) != per_lane:
            torch.set_num_threads(per_lane)
            _LANE.threads = per_lane
        with (torch.inference_mode(inference), torch.no_grad(),
              torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast)):
            return run(clip)

    pending = [_executor(count).submit(in_lane, clip) for clip in clips]
    try:
        return [future.result() for future in pending]
    except BaseException:  # an error, or Ctrl-C: clips not yet started never start
        for future in pending:
            future.cancel()
        raise
    finally:
        # A lane's set_num_threads also sets the count torch gives threads it has not met
        # yet; this thread's own count never changed, and is handed on again.
        torch.set_num_threads(threads)


def _executor(lanes: int) -> ThreadPoolExecutor:
    with _EXECUTORS_LOCK:
        if lanes not in _EXECUTORS:
            _EXECUTORS[lanes] = ThreadPoolExecutor(lanes, thread_name_prefix="mvit-lane")
        return _EXECUTORS[lanes]
