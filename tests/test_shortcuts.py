"""The exact shortcuts of the forward pass: same numbers as the plain computation, less work.

Skipped K/V projections (windows.py), the class-token-only last block, the chunked
per-token steps of CPU inference, relative positions folded into the attention's dot
product and residual adds done by the GEMMs must change nothing but speed; these tests
hold them to the plain computation.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mvit_cli import get_config
from mvit_cli.factory import model_from_config
from mvit_cli.models import layers
from mvit_cli.models.layers import (_axis_table, attention_with_full_bias,
                                    attention_with_relative_positions, linear_onto,
                                    relative_position_terms)
from mvit_cli.models.windows import plan_axis, read_positions, zero_padding

from conftest import TINY

# B-16x4's real schedule (1x8x8 K/V stride, 4 stages) on a small input: stage 1 is 4x16x16.
SMALL_B16X4 = replace(get_config("B-16x4"), name="small-b16x4", frames=8, size=64,
                      num_classes=10)
CONFIGS = [*TINY, SMALL_B16X4, replace(get_config("v2-S-16x4"), name="small-v2s", frames=8,
                                       size=64, num_classes=10),
           # A 2x2 stage-1 grid: windows 8 apart keep every position, yet need the layout.
           replace(get_config("B-16x4"), name="tiny-grid-b16x4", frames=4, size=8,
                   num_classes=10)]


def _model(cfg):
    torch.manual_seed(0)
    return model_from_config(cfg).eval()


def _clip(cfg, batch=2):
    torch.manual_seed(1)
    shape = (batch, 3, cfg.frames, cfg.size, cfg.size) if cfg.is_video else (batch, 3, cfg.size, cfg.size)
    return torch.randn(shape)


@pytest.mark.parametrize("length", range(1, 19))
@pytest.mark.parametrize("kernel,stride", [(3, 8), (3, 4), (3, 3), (3, 2), (3, 1), (2, 5), (1, 3)])
def test_kept_positions_pooled_with_stride_k_equal_the_strided_pooling(length, kernel, stride):
    values = torch.randn(1, 1, length, dtype=torch.float64)
    weight = torch.randn(1, 1, kernel, dtype=torch.float64)
    expected = F.conv1d(values, weight, stride=stride, padding=kernel // 2)
    plan = plan_axis(length, kernel, stride)
    kept = values[..., list(plan.kept)]
    padded = F.pad(kept, (plan.pad_front, plan.pad_back))
    got = F.conv1d(padded, weight, stride=plan.stride, padding=plan.conv_padding)
    torch.testing.assert_close(got, expected)
    if stride > kernel:
        assert len(plan.kept) < length or length <= kernel


def test_b16x4_keeps_an_eighth_of_stage_one_for_keys_and_values():
    plan = read_positions((8, 56, 56), (3, 3, 3), (1, 8, 8))
    assert plan.kept_grid == (8, 20, 20) and plan.padded_grid == (8, 21, 21)
    assert not read_positions((8, 14, 14), (3, 3, 3), (1, 2, 2)).gathers


def test_padded_layout_puts_kept_positions_inside_and_clears_the_rest():
    plan = read_positions((2, 9, 9), (3, 3, 3), (1, 8, 8))
    # H and W: windows (-1, 0, 1) and (7, 8, 9) keep 0, 1, 7, 8 between one pad each side.
    assert plan.padded_grid == (2, 6, 6) and plan.stride == (1, 3, 3)
    index = plan.token_indices(torch.device("cpu"))
    cube = (torch.arange(2 * 9 * 9.0) + 1)[index].view(1, 1, *plan.padded_grid)
    zero_padding(cube, plan)
    for border in (cube[0, 0, :, 0], cube[0, 0, :, 5], cube[0, 0, :, :, 0], cube[0, 0, :, :, 5]):
        assert border.eq(0).all()
    # frame 0, rows 0, 1, 7, 8 and columns 0, 1, 7, 8 of the grid (value = flat index + 1)
    assert cube[0, 0, 0, 1:5, 1:5].tolist() == [[1, 2, 8, 9], [10, 11, 17, 18],
                                                  [64, 65, 71, 72], [73, 74, 80, 81]]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_skipping_unused_work_keeps_the_logits(cfg):
    model, clip = _model(cfg), _clip(cfg)
    with torch.no_grad():
        model.shortcuts = False
        plain = model(clip)
        model.shortcuts = True
        fast = model(clip)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [SMALL_B16X4, CONFIGS[-1]], ids=lambda c: c.name)
def test_the_shortcuts_really_skip_multiply_adds(cfg):
    model, clip = _model(cfg), _clip(cfg, batch=1)
    counts = {}
    for enabled in (False, True):
        model.shortcuts = enabled
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(clip)
        counts[enabled] = counter.get_total_flops()
    assert counts[True] < 0.97 * counts[False]


def test_chunked_per_token_steps_match_one_pass(monkeypatch):
    cfg = SMALL_B16X4
    model, clip = _model(cfg), _clip(cfg)
    with torch.no_grad():
        monkeypatch.setattr(layers, "CPU_TOKEN_CHUNK", 10**9)
        whole = model(clip)
        monkeypatch.setattr(layers, "CPU_TOKEN_CHUNK", 37)  # uneven chunks, last one short
        chunked = model(clip)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("into", ["new", "contiguous", "strided", "permuted residual"])
def test_linear_onto_a_residual_is_the_residual_plus_the_linear(bias, into):
    torch.manual_seed(3)
    layer = torch.nn.Linear(6, 5, bias=bias)
    residual, x = torch.randn(2, 7, 5), torch.randn(2, 7, 6)
    buffers = {"new": None, "contiguous": torch.empty(2, 7, 5),
               "strided": torch.empty(2, 9, 5)[:, 1:8],
               "permuted residual": None}
    if into == "permuted residual":
        residual = torch.randn(7, 2, 5).transpose(0, 1)
    with torch.no_grad():
        got = linear_onto(residual, x, layer, out=buffers[into])
        torch.testing.assert_close(got, residual + layer(x))
    if buffers[into] is not None:
        assert got.data_ptr() == buffers[into].data_ptr()


@pytest.mark.parametrize("cfg", [TINY[0], TINY[1]], ids=lambda c: c.name)
def test_gradients_flow_through_the_shortcuts_unchanged(cfg):
    """Fine-tuning takes the same path: the input's and the weights' gradients must agree."""
    model = _model(cfg)
    grads = {}
    for enabled in (False, True):
        model.shortcuts = enabled
        model.zero_grad()
        clip = _clip(cfg).requires_grad_()
        model(clip).square().sum().backward()
        weight = model.blocks[0].attn.qkv.weight.grad
        grads[enabled] = (clip.grad, weight.clone())
    for plain, fast in zip(grads[False], grads[True], strict=True):
        torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("q_grid,k_grid,temporal,skip", [
    ((4, 8, 8), (4, 2, 2), True, 1), ((2, 6, 6), (2, 6, 6), True, 0),
    ((1, 7, 5), (1, 4, 3), False, 0), ((4, 4, 4), (2, 2, 2), True, 1)])
def test_relative_positions_in_the_dot_product_equal_the_full_bias(q_grid, k_grid, temporal, skip):
    torch.manual_seed(2)
    heads, dim = 2, 12
    lq = skip + q_grid[0] * q_grid[1] * q_grid[2]
    lk = skip + k_grid[0] * k_grid[1] * k_grid[2]
    q, k, v = (torch.randn(2, heads, n, dim, dtype=torch.float64) for n in (lq, lk, lk))
    size = 2 * max(q_grid[1], k_grid[1], q_grid[2], k_grid[2]) - 1
    rel_h, rel_w = torch.randn(size, dim, dtype=torch.float64), torch.randn(size, dim, dtype=torch.float64)
    rel_t = torch.randn(2 * q_grid[0] - 1, dim, dtype=torch.float64) if temporal else None
    terms = relative_position_terms(q[:, :, skip:], q_grid, k_grid, rel_t, rel_h, rel_w)
    expected = attention_with_full_bias(q, k, v, terms, k_grid, temporal, skip)
    got = attention_with_relative_positions(q, k, v, terms, k_grid, temporal, skip)
    torch.testing.assert_close(got, expected)
    # The plain bias itself, entry by entry, from the tables' definition.
    bias = _full_bias_by_definition(q[:, :, skip:], q_grid, k_grid, rel_t, rel_h, rel_w)
    plain = F.scaled_dot_product_attention(q, k, v, attn_mask=F.pad(bias, (skip, 0, skip, 0)))
    torch.testing.assert_close(expected, plain)


def _full_bias_by_definition(q, q_grid, k_grid, rel_t, rel_h, rel_w):
    tables = [_axis_table(rel_h, q_grid[1], k_grid[1]), _axis_table(rel_w, q_grid[2], k_grid[2])]
    table_t = _axis_table(rel_t, q_grid[0], k_grid[0]) if rel_t is not None else None
    bias = q.new_zeros(*q.shape[:2], q.shape[2], k_grid[0] * k_grid[1] * k_grid[2])
    queries = [(t, h, w) for t in range(q_grid[0]) for h in range(q_grid[1]) for w in range(q_grid[2])]
    keys = [(t, h, w) for t in range(k_grid[0]) for h in range(k_grid[1]) for w in range(k_grid[2])]
    for i, (tq, hq, wq) in enumerate(queries):
        for j, (tk, hk, wk) in enumerate(keys):
            r = tables[0][hq, hk] + tables[1][wq, wk]
            if table_t is not None:
                r = r + table_t[tq, tk]
            bias[:, :, i, j] = q[:, :, i] @ r
    return bias
