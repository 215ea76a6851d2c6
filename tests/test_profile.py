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
