"""`mvit profile`: the paper's numbers, per stage, as a table, JSON, sweeps and plots."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest

from mvit_cli import get_config
from mvit_cli.profiling import profile


def mvit(*args):
    return subprocess.run([sys.executable, "-m", "mvit_cli.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def b16x4():
    return profile(get_config("B-16x4"), repeat=1)


@pytest.mark.slow
def test_b16x4_totals_match_the_paper(b16x4):
    assert abs(b16x4.gflops / 70.5 - 1) < 0.015
    assert abs(b16x4.params / 36.6e6 - 1) < 0.015
    assert b16x4.params == sum(row.params for row in b16x4.stages)
    assert b16x4.total_ms > 0 and all(row.ms is not None for row in b16x4.stages)


@pytest.mark.slow
def test_b16x4_stages_follow_the_paper(b16x4):
    stages = [row for row in b16x4.stages if row.name.startswith("stage")]
    assert [row.tokens for row in stages] == [[8, 56, 56], [8, 28, 28], [8, 14, 14], [8, 7, 7]]
    assert [row.dim for row in stages] == [96, 192, 384, 768]
    assert [row.heads for row in stages] == [1, 2, 4, 8]
    assert [row.blocks for row in stages] == [1, 2, 11, 2]
    assert all(row.kv_tokens == [8, 7, 7] for row in stages)  # K/V pooled to one grid
    names = [row.name for row in b16x4.stages]
    assert names[0] == "patch embed" and names[-1] == "head"


@pytest.mark.slow
def test_flops_are_counted_per_operator(b16x4):
    stage3 = b16x4.stages[3]
    assert {"linear", "attention", "conv"} <= set(stage3.flops_by_op)
    assert stage3.flops_by_op["attention"] > 0  # SDPA counted (the CPU kernel reports none)
    assert stage3.flops_by_op.get("norm", 0) > 0  # listed, but not in the papers' total
    assert stage3.gflops == pytest.approx(sum(stage3.flops_by_op[k] for k in
                                              ("linear", "attention", "conv")))


@pytest.mark.slow
def test_memory_is_measured_per_stage(b16x4):
    stage1 = b16x4.stages[1]
    # 8x56x56+1 tokens of width 192 (v1 widens at the end of stage 1), 4 bytes each.
    assert stage1.activation_mb == pytest.approx((8 * 56 * 56 + 1) * 192 * 4 / 2**20, rel=1e-3)
    assert stage1.peak_mb >= stage1.largest_mb >= stage1.activation_mb > 0


@pytest.mark.parametrize("name,params,gflops", [("v2-S-16x4", 34.5, 64.0),
                                                ("B-32x3", 36.6, 170.0)])
def test_other_models_against_their_papers(name, params, gflops):
    result = profile(get_config(name), measure=False)
    assert abs(result.params / 1e6 / params - 1) < 0.015
    assert abs(result.gflops / gflops - 1) < 0.015


@pytest.mark.slow
def test_json_schema_and_flop_unit():
    result = mvit("profile", "--model", "v2-S-16x4", "--json", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "v2-S-16x4" and isinstance(data["params"], int)
    assert isinstance(data["gflops"], float) and data["input"]["frames"] == 16
    for stage in data["stages"]:
        assert {"name", "tokens", "dim", "heads", "params", "gflops", "activation_mb",
                "peak_mb", "ms"} <= set(stage)
        assert len(stage["tokens"]) == 3 and all(isinstance(t, int) for t in stage["tokens"])
        assert isinstance(stage["ms"], float)
    doubled = json.loads(mvit("profile", "-m", "v2-S-16x4", "--json", "--repeat", "0",
                              "--flops-unit", "flop").stdout)
    assert doubled["gflops"] == pytest.approx(2 * data["gflops"])


@pytest.mark.slow
def test_frame_sweep_grows_at_least_linearly_and_plots(tmp_path):
    plot = tmp_path / "sweep.png"
    result = mvit("profile", "-m", "B-16x4", "--frames", "8,16,32,64", "--json", "--plot", plot,
                  "--repeat", "0")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["input"]["frames"] for row in rows] == [8, 16, 32, 64]
    for smaller, larger in itertools.pairwise(rows):
        assert larger["gflops"] >= 2 * smaller["gflops"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_table_output_and_bad_options():
    result = mvit("profile", "-m", "B-16x4", "--size", "160,224", "--repeat", "0")
    assert result.returncode == 0 and "x first" in result.stdout
    assert mvit("profile", "-m", "v2-T", "--frames", "8").returncode == 2
    assert mvit("profile", "-m", "nope").returncode == 2


@pytest.mark.slow
def test_sweeps_time_by_default_and_plot_every_column(tmp_path):
    result = mvit("profile", "-m", "v2-XS-8", "--frames", "4,8", "--json")
    assert result.returncode == 0, result.stderr
    assert all(row["total_ms"] > 0 for row in json.loads(result.stdout))
    plot = tmp_path / "stages.png"
    single = mvit("profile", "-m", "v2-XS-8", "--repeat", "1", "--plot", plot)
    assert single.returncode == 0 and plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_the_shipped_counts_are_what_the_counter_says_now():
    from mvit_cli.flops import _count_uncached, count_key, shipped_counts
    from mvit_cli.models.architectures import ARCHITECTURES, BUILTIN

    shipped = shipped_counts()
    for name in BUILTIN:
        cfg = ARCHITECTURES[name]
        assert shipped.get(count_key(cfg)) == list(_count_uncached(cfg, None, None)), (
            f"{name}: mvit_cli/models/counts.json is stale; run python scripts/make_counts.py")


# ---- the tiny model, fast: every column of the command's output -------------------------------

def profiled(*args) -> dict | list | str:
    """`mvit profile -m tiny-v1 ARGS` in this process: its JSON, or its table as text."""
    from conftest import register_tiny_architectures, run_cli

    register_tiny_architectures()
    result = run_cli("profile", "-m", "tiny-v1", *args)
    assert result.exit_code == 0, result.output
    return result.stdout if "--json" not in args else json.loads(result.stdout)


def test_a_profile_adds_up_segment_by_segment():
    """tiny-v1: 4 frames of 32 px patchified to a 2x8x8 grid at width 16; v1 widens at the
    end of each stage; K/V pooled to 2x2x2 throughout; the head reads the class token."""
    data = profiled("--repeat", "1", "--json")
    stages = data["stages"]
    assert [s["name"] for s in stages] == ["patch embed", "stage 1", "stage 2", "stage 3", "head"]
    assert [s["tokens"] for s in stages] == [[2, 8, 8], [2, 8, 8], [2, 4, 4], [2, 2, 2],
                                             [1, 1, 1]]
    assert [s["dim"] for s in stages] == [16, 16, 32, 64, 64]
    assert [s["heads"] for s in stages] == [0, 1, 2, 4, 0]
    assert [s["kv_tokens"] for s in stages] == [None, [2, 2, 2], [2, 2, 2], [2, 2, 2], None]
    assert data["params"] == sum(s["params"] for s in stages)
    assert data["gflops"] == pytest.approx(sum(s["gflops"] for s in stages))
    for stage in stages:  # the papers' total: convolutions, Linear layers and attention
        assert stage["gflops"] == pytest.approx(sum(v for k, v in stage["flops_by_op"].items()
                                                    if k in ("conv", "linear", "attention")))
    # The head: a LayerNorm of the class token (fvcore's 5 per element) and a 64 x 10 Linear.
    assert stages[-1]["flops_by_op"] == pytest.approx({"norm": 5 * 64e-9, "linear": 640e-9})
    assert stages[2]["flops_by_op"]["attention"] > 0
    megabytes = [(2 * 8 * 8 + 1) * 16 * 4 / 2**20, (2 * 8 * 8 + 1) * 32 * 4 / 2**20]
    assert [s["activation_mb"] for s in stages[:2]] == pytest.approx(megabytes)
    inputs = [3 * 4 * 32 * 32 * 4 / 2**20] + [s["activation_mb"] for s in stages[:-1]]
    for stage, held in zip(stages, inputs, strict=True):  # its input is live throughout
        assert stage["peak_mb"] >= held + stage["activation_mb"], stage
        assert stage["peak_mb"] >= stage["largest_mb"] >= stage["activation_mb"] > 0, stage
        assert stage["ms"] > 0, stage
    assert data["total_ms"] > 0


def test_sweeps_batches_and_the_flop_unit_scale_the_counts():
    """Twice the clips, twice the multiply-adds; --flops-unit flop doubles every count, per
    segment and per operator as well as the total."""
    one = profiled("--repeat", "0", "--json")
    swept = profiled("--frames", "4,8", "--batch", "2", "--flops-unit", "flop", "--repeat", "0",
                     "--json")
    assert [r["input"] for r in swept] == [{"batch": 2, "frames": 4, "size": 32},
                                           {"batch": 2, "frames": 8, "size": 32}]
    assert [s["tokens"][0] for s in swept[1]["stages"][:4]] == [4, 4, 4, 4]
    assert swept[0]["gflops"] == pytest.approx(4 * one["gflops"])  # twice the clips, 2 per mac
    for ours, theirs in zip(swept[0]["stages"], one["stages"], strict=True):
        assert ours["gflops"] == pytest.approx(4 * theirs["gflops"])
        assert ours["flops_by_op"] == pytest.approx({k: 4 * v for k, v in
                                                     theirs["flops_by_op"].items()})
    assert swept[1]["gflops"] >= 2 * swept[0]["gflops"]


def test_a_sweep_table_gives_each_point_and_its_cost_against_the_first():
    """At 224 px the tiny model's counts show in the table's one decimal (shapes only: a
    sweep with --repeat 0 runs nothing)."""
    from conftest import TINY_V1
    from mvit_cli.flops import count

    table = profiled("--frames", "32,64", "--size", "224", "--repeat", "0", "--flops-unit", "flop")
    rows = [line.split() for line in table.splitlines() if line.split()[1:2] == ["224"]]
    macs = [count(TINY_V1, frames=frames, size=224)[1] for frames in (32, 64)]
    assert [row[0] for row in rows] == ["32", "64"]
    assert [row[4] for row in rows] == [f"{2 * m / 1e9:.1f}" for m in macs]  # 2 per mac
    assert [row[5] for row in rows] == ["1.00", f"{macs[1] / macs[0]:.2f}"]


def test_counts_follow_the_input_they_were_made_for():
    """`mvit models` remembers counts on disk: one input's must never answer for another's."""
    from conftest import TINY_V1
    from mvit_cli.flops import activation_bytes, count

    params, macs = count(TINY_V1)
    larger_params, larger = count(TINY_V1, size=64)
    longer_params, longer = count(TINY_V1, frames=8)
    assert params == larger_params == longer_params and larger > 3.5 * macs and longer > 1.9 * macs
    assert count(TINY_V1) == (params, macs)
    assert activation_bytes(TINY_V1, batch=3) == 3 * activation_bytes(TINY_V1)


@pytest.mark.parametrize("args", [("-m", "tiny-v1", "--frames", "0"),
                                  ("-m", "tiny-v1", "--size", "32,x"),
                                  ("-m", "tiny-v1", "--frames", "4,8", "--size", "32,64"),
                                  ("-m", "tiny-v2-image", "--frames", "8"),
                                  ("-m", "nope")])
def test_options_that_cannot_be_profiled_are_usage_errors(args):
    """Refused in one line, exit 2, before any model is built."""
    from conftest import register_tiny_architectures, run_cli

    register_tiny_architectures()
    result = run_cli("profile", *args)
    assert result.exit_code == 2 and not result.stdout, result.output


def test_the_pictures_read_without_legends_from_zero_with_every_value():
    """No legend to cover a bar (each axis names what it shows), every bar labelled with
    its value (the head's tiny one too), and every axis from zero."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from conftest import register_tiny_architectures
    from mvit_cli import get_config
    from mvit_cli.commands.profile import profile_figure
    from mvit_cli.profiling import profile

    register_tiny_architectures()
    cfg = get_config("tiny-v1")
    one = profile(cfg, None, None, 1, torch.device("cpu"), torch.float32, 1)  # timed: 3 panels
    figure = profile_figure([one], "frames", 1.0)
    for axis in figure.axes:
        assert axis.get_legend() is None
        bars = axis.patches
        labels = [t.get_text() for t in axis.texts]
        assert len(labels) == len(bars) == len(one.stages) and all(labels)
        assert axis.get_ylim()[0] == 0 and axis.get_ylim()[1] > max(b.get_height() for b in bars)
    plt.close(figure)
    sweep = [profile(cfg, frames, None, 1, torch.device("cpu"), torch.float32, 1)
             for frames in (4, 8)]
    figure = profile_figure(sweep, "frames", 1.0)
    assert len(figure.axes) == 2  # cost, and time on its own axis
    assert all(axis.get_legend() is None and axis.get_ylim()[0] == 0 for axis in figure.axes)
    plt.close(figure)
