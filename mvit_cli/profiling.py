"""Where an MViT's cost goes, segment by segment: patch embedding, each stage, the head.

Three passes over the same segments, each measuring one thing honestly:
- FLOPs on the meta device (shapes only, so any size is free to count), per operator, as
  multiply-adds: the MViT papers' (fvcore's) convention. On meta, attention decomposes into
  batched matmuls, so it is counted (the CPU's fused attention kernel has no FLOP formula).
- Memory on the real device: on CUDA the allocator's peak; on the CPU the peak of live
  tensor bytes, tracked through every operator's outputs (kernel scratch space is unseen).
- Time on the real device: median of `repeat` forwards after one warm-up.
"""

from __future__ import annotations

import statistics
import time
import weakref
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .flops import Segment, input_shape, paper_gflops, segment_flops, segments
from .models.config import MViTConfig, conv_output_grid
from .models.model import MultiscaleTransformer, model_from_config

MB = 1024 * 1024


@dataclass
class SegmentRow:
    name: str
    blocks: int
    tokens: list[int]  # grid after the segment [T, H, W]
    dim: int
    heads: int
    kv_tokens: list[int] | None
    params: int
    gflops: float  # multiply-adds, papers' convention (conv + linear + attention)
    flops_by_op: dict[str, float] = field(default_factory=dict)
    activation_mb: float = 0.0  # the segment's output
    largest_mb: float = 0.0  # its largest intermediate tensor
    peak_mb: float = 0.0  # input + live tensors at the worst moment inside it
    ms: float | None = None


@dataclass
class Profile:
    model: str
    params: int
    gflops: float
    input: dict[str, Any]
    device: str
    precision: str
    memory_method: str
    stages: list[SegmentRow]
    total_ms: float | None = None
    paper: dict[str, float | None] = field(default_factory=dict)

    def to_json(self, flops_unit: str = "mac") -> dict[str, Any]:
        scale = 2.0 if flops_unit == "flop" else 1.0
        stages = []
        for row in self.stages:
            item = asdict(row)
            item["gflops"] = row.gflops * scale
            item["flops_by_op"] = {k: v * scale for k, v in row.flops_by_op.items()}
            stages.append(item)
        return {"model": self.model, "params": self.params, "gflops": self.gflops * scale,
                "flops_unit": "multiply-adds (fvcore convention)" if scale == 1 else
                "FLOPs (2 per multiply-add)", "input": self.input, "device": self.device,
                "precision": self.precision, "memory_method": self.memory_method,
                "total_ms": self.total_ms, "paper": self.paper, "stages": stages}


# ---- segments ------------------------------------------------------------------------------

def _params(segment: Segment, model: MultiscaleTransformer) -> int:
    count = sum(p.numel() for m in segment.modules for p in m.parameters())
    if segment.name == "patch embed" and model.cls_token is not None:
        count += model.cls_token.numel()
    return count


def _tensors(value: Any) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor)]


# ---- memory tracking ------------------------------------------------------------------------

class _LiveBytes(TorchDispatchMode):
    """Counts bytes of tensors produced by operators while they are alive (by storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self.largest = 0
        self._storages: dict[int, list[int]] = {}  # storage ptr -> [bytes, tensors alive]
        self._tracked: set[int] = set()

    def reset(self) -> None:
        self.peak = self.live
        self.largest = 0

    def _release(self, ident: int, key: int) -> None:
        self._tracked.discard(ident)
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._storages[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in _tensors(out):
            # oneDNN's packed copies of weights (packed_linear) have no storage to read,
            # and are weights made once, not activations.
            if tensor.is_mkldnn or id(tensor) in self._tracked:
                continue
            storage = tensor.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            entry = self._storages.get(key)
            if entry is None:
                self._storages[key] = [size, 1]
                self.live += size
                self.largest = max(self.largest, size)
            else:
                entry[1] += 1
            self._tracked.add(id(tensor))
            weakref.finalize(tensor, self._release, id(tensor), key)
        self.peak = max(self.peak, self.live)
        return out


def _nbytes(value: Any) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(value))


# ---- the three passes -----------------------------------------------------------------------

def _measure(model, segments, clip, device, dtype, repeat: int):
    """(per-segment memory rows, per-segment median ms, total median ms) on the device."""
    cuda = device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    memory = []
    with torch.inference_mode(), autocast:
        state: Any = clip
        tracker = None if cuda else _LiveBytes()
        if tracker is not None:
            tracker.__enter__()
        try:
            for segment in segments:
                input_bytes = _nbytes(state)
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    before = torch.cuda.memory_allocated()
                else:
                    tracker.reset()
                    before = tracker.live
                state = segment.run(state)
                if cuda:
                    torch.cuda.synchronize()
                    peak = torch.cuda.max_memory_allocated() - before + input_bytes
                    largest = 0
                else:
                    peak = tracker.peak - before + input_bytes
                    largest = tracker.largest
                out = state[0] if isinstance(state, tuple) else state
                memory.append((_nbytes(out) / MB, largest / MB, peak / MB))
        finally:
            if tracker is not None:
                tracker.__exit__(None, None, None)

        times: list[list[float]] = [[] for _ in segments]
        totals = []
        for attempt in range(repeat + 1 if repeat else 0):
            state = clip
            run_total = 0.0
            for index, segment in enumerate(segments):
                if cuda:
                    torch.cuda.synchronize()
                started = time.perf_counter()
                state = segment.run(state)
                if cuda:
                    torch.cuda.synchronize()
                elapsed = (time.perf_counter() - started) * 1000
                run_total += elapsed
                if attempt:  # the first pass is the warm-up
                    times[index].append(elapsed)
            if attempt:
                totals.append(run_total)
    medians = [statistics.median(t) if t else None for t in times]
    return memory, medians, statistics.median(totals) if totals else None


def profile(cfg: MViTConfig, frames: int | None = None, size: int | None = None, batch: int = 1,
            device: torch.device | None = None, dtype: torch.dtype = torch.float32,
            repeat: int = 3, measure: bool = True) -> Profile:
    """Profile architecture `cfg` on one input (on the CPU unless `device` says otherwise);
    `measure=False` skips the device passes."""
    device = device or torch.device("cpu")
    shape = input_shape(cfg, frames, size, batch)
    flops, grids = segment_flops(cfg, shape)
    model = model_from_config(cfg).eval().to(device)
    parts = segments(model)
    if measure:
        clip = torch.randn(shape, device=device)
        memory, medians, total_ms = _measure(model, parts, clip, device, dtype, repeat)
    else:
        memory, medians, total_ms = [(0.0, 0.0, 0.0)] * len(parts), [None] * len(parts), None

    rows = []
    start = 0
    for index, segment in enumerate(parts):
        grid = grids[index]
        dim, heads, kv = cfg.embed_dim, 0, None
        if segment.blocks:
            first, last = model.blocks[start], model.blocks[start + segment.blocks - 1]
            dim, heads = first.attn.qkv.out_features // 3, first.attn.num_heads
            if last.attn.pool_k is not None and hasattr(last.attn.pool_k, "stride"):
                pool = last.attn.pool_k
                kv = conv_output_grid(grid, tuple(pool.kernel_size), tuple(pool.stride),
                                      tuple(pool.padding))
            start += segment.blocks
        elif segment.name == "head":
            dim = model.head.in_features
        counts = flops[index]
        total = paper_gflops(counts)
        activation, largest, peak = memory[index]
        rows.append(SegmentRow(
            name=segment.name, blocks=segment.blocks, tokens=list(grid), dim=dim, heads=heads,
            kv_tokens=list(kv) if kv else None, params=_params(segment, model), gflops=total,
            flops_by_op=counts, activation_mb=activation, largest_mb=largest, peak_mb=peak,
            ms=medians[index]))
    params = sum(p.numel() for p in model.parameters())
    at_paper_size = (frames in (None, cfg.frames)) and (size in (None, cfg.size))
    return Profile(
        model=cfg.name, params=params, gflops=sum(r.gflops for r in rows),
        input={"batch": batch, "frames": shape[2] if cfg.is_video else 1, "size": shape[-1]},
        device=str(device), precision=str(dtype).replace("torch.", ""),
        memory_method=("CUDA allocator peak per segment" if device.type == "cuda" else
                       "CPU: peak of live tensor bytes produced by operators, tracked per "
                       "segment (kernel scratch space not seen)"),
        stages=rows, total_ms=total_ms,
        paper={"params_m": cfg.paper_params_m, "gflops": cfg.paper_gflops} if at_paper_size
        else {})
