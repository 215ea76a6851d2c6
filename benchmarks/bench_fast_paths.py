"""What each exact fast path (mvit_cli/models/fast) earns: the model with all of them, against
the model with one of them off, and against the reference path (all off), measured
alternately in one process on the same weights and input.

    python benchmarks/bench_fast_paths.py --models B-16x4,v2-S-16x4 --repeat 5
    python benchmarks/bench_fast_paths.py --precision bf16   # bf16_attention's and packed_linear's too
    python benchmarks/bench_fast_paths.py --tune bf16_query_chunk=2048   # a tuning table value
    python benchmarks/bench_fast_paths.py --against /tmp/old/mvit_old   # another mvit copy

`--against` times this code against another copy of the package (for example the commit
before a refactor, extracted as a package folder of any name), same weights, alternating.
`--tune NAME=VALUE` runs with one value of this CPU's row in the fast paths' tuning table
(mvit_cli/models/fast/tuning.py) replaced: how its values were chosen.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import cpu_model

import mvit_cli
from mvit_cli.allocator import keep_freed_memory
from mvit_cli.cpu_gates import gates
from mvit_cli.models.fast import attention as fast_attention
from mvit_cli.models.fast import (bf16_attention, clip_batches, fp32_attention, network,
                                  packed_linear, tuning)
from mvit_cli.models.fast.kv_windows import keys_values_everywhere
from mvit_cli.models.positions import relative_position_bias
from mvit_cli.models.precision import cast_for_inference


def _full_bias(q, k, v, terms, k_grid, temporal, skip):
    bias = relative_position_bias(terms, k_grid, temporal, skip)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)


@contextlib.contextmanager
def _swapped(module, name, value):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


@contextlib.contextmanager
def _tuned(**values):
    """This CPU's row of the tuning table with `values` in place of its own."""
    kind = tuning.cpu_kind(gates())
    saved = tuning.TUNING[kind]
    tuning.TUNING[kind] = dataclasses.replace(saved, **values)
    try:
        yield
    finally:
        tuning.TUNING[kind] = saved


# name -> a context that turns that one fast path off (the others stay on)
WITHOUT = {
    "kv_windows": lambda: _swapped(fast_attention, "keys_values", keys_values_everywhere),
    "relative_dot": lambda: _swapped(fast_attention, "attention_with_relative_positions",
                                     _full_bias),
    "class_token": lambda: _swapped(network, "reads_class_token_only", lambda m: False),
    "patch_embedding": lambda: _swapped(network, "embed", lambda model, x: model.embed(x)),
    "chunks": lambda: _tuned(fp32_token_chunk=10**9, bf16_token_chunk=10**9),
    "clip_batches": lambda: _swapped(network, "forward", lambda model, x:
                                     model.classify_features(network.forward_features(model, x))),
    # Batches of 2 or more clips on 2 or more threads (--batch 8); a no-op at batch 1.
    "clip_lanes": lambda: _swapped(clip_batches, "map_clips",
                                   lambda run, clips, lanes=True: [run(c) for c in clips]),
    # Taken only in bf16 on a CPU with bf16 in hardware (`--precision bf16`); a no-op elsewhere.
    "bf16_attention": lambda: _swapped(bf16_attention, "takes_gemm_path", lambda q: False),
    # In fp32 taken only where oneDNN's GEMMs beat MKL's (AMD with AVX-512); bf16 as above.
    "packed_linear": lambda: _swapped(packed_linear, "takes_packed_path", lambda x, weight: False),
    "fp32_attention": lambda: _swapped(fp32_attention, "takes_onednn_path", lambda q, k: False),
}


def _time(forward, clip) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        forward(clip)
    return time.perf_counter() - started


def gains(name: str, batch: int, repeat: int, precision: str = "fp32",
          tune: dict | None = None) -> list[dict]:
    torch.manual_seed(0)
    cfg = mvit_cli.get_config(name)
    model = mvit_cli.build_model(cfg)
    clip = torch.randn(batch, 3, cfg.frames, cfg.size, cfg.size)
    if precision == "bf16":  # as `--precision bf16` runs it: the body cast once
        model, clip = cast_for_inference(model), clip.bfloat16()

    def run(variant):
        if variant == "reference":
            model.fast_paths = False
            try:
                return _time(model, clip)
            finally:
                model.fast_paths = True
        if variant == "all":
            return _time(model, clip)
        if variant == "tuned":
            with _tuned(**tune):
                return _time(model, clip)
        with WITHOUT[variant]():
            return _time(model, clip)

    variants = ["all", "reference", *WITHOUT] + (["tuned"] if tune else [])
    times: dict[str, list[float]] = {v: [] for v in variants}
    for attempt in range(repeat + 1):  # the first round warms every variant up
        for variant in variants:
            elapsed = run(variant)
            if attempt:
                times[variant].append(elapsed)
    all_on = statistics.median(times["all"])
    return [{"model": name, "batch": batch, "precision": precision, "variant": v,
             "s_per_clip": statistics.median(times[v]) / batch,
             "all_on_is_faster_by": statistics.median(times[v]) / all_on} for v in variants]


def _load_package(folder: Path):
    spec = importlib.util.spec_from_file_location(folder.name, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[folder.name] = package
    spec.loader.exec_module(package)
    return package


def against(folder: Path, name: str, batch: int, repeat: int, precision: str = "fp32") -> dict:
    other = _load_package(folder)
    builder = importlib.import_module(f"{folder.name}.models.model").model_from_config
    torch.manual_seed(0)
    cfg = mvit_cli.get_config(name)
    ours = mvit_cli.build_model(cfg)
    theirs = builder(importlib.import_module(f"{folder.name}.models.architectures")
                     .get_config(name)).eval()
    theirs.load_state_dict(ours.state_dict())
    clip = torch.randn(batch, 3, cfg.frames, cfg.size, cfg.size)
    if precision == "bf16":  # as `--precision bf16` runs it: the body cast once
        ours, clip = cast_for_inference(ours), clip.bfloat16()
        theirs = importlib.import_module(f"{folder.name}.models.precision").cast_for_inference(theirs)
    with torch.inference_mode():
        error = ((ours(clip) - theirs(clip)).abs().max() / theirs(clip).abs().max()).item()
    times = {"this": [], "other": []}
    for attempt in range(repeat + 1):
        for label, model in (("other", theirs), ("this", ours)):
            elapsed = _time(model, clip)
            if attempt:
                times[label].append(elapsed)
    this, that = statistics.median(times["this"]), statistics.median(times["other"])
    del other
    return {"model": name, "batch": batch, "precision": precision, "this_s": this, "other_s": that,
            "this_is_faster_by": that / this, "max_rel_error": error}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="B-16x4,v2-S-16x4")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--against", type=Path, default=None,
                        help="Folder of another copy of the package to time against.")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--tune", action="append", default=[], metavar="NAME=VALUE",
                        help="Also time this CPU's tuning row with NAME set to VALUE (row "
                             "'tuned'), e.g. bf16_query_chunk=2048; repeatable.")
    args = parser.parse_args()
    tune = {key: None if value == "None" else int(value)
            for key, _, value in (item.partition("=") for item in args.tune)}
    keep_freed_memory()  # as the `mvit` command's CPU runs do (mvit_cli/allocator.py)
    print(f"# {cpu_model()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    for name in args.models.split(","):
        if args.against is not None:
            row = against(args.against, name, args.batch, args.repeat, args.precision)
            print(f"{name} {args.precision} batch {args.batch}: this {row['this_s']:.3f} s, other "
                  f"{row['other_s']:.3f} s: this is {row['this_is_faster_by']:.3f}x as fast; "
                  f"max rel. error {row['max_rel_error']:.1e}", flush=True)
            continue
        for row in gains(name, args.batch, args.repeat, args.precision, tune):
            print(f"{name} {args.precision} batch {args.batch} {row['variant']:>14}: {row['s_per_clip']:.3f} "
                  f"s/clip ({row['all_on_is_faster_by']:.3f}x all fast paths' time)",
                  flush=True)


if __name__ == "__main__":
    main()
