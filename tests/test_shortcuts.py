"""The exact shortcuts of the forward pass: same numbers as the plain computation, less work.

Skipped K/V projections (windows.py), the class-token-only last block and the chunked
per-token steps must change nothing but speed; these tests hold them to the plain path.
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
from mvit_cli.models.windows import pad_between, plan_axis, read_positions

from conftest import TINY

# B-16x4's real schedule (1x8x8 K/V stride, 4 stages) on a small input: stage 1 is 4x16x16.
SMALL_B16X4 = replace(get_config("B-16x4"), name="small-b16x4", frames=8, size=64,
                      num_classes=10)
CONFIGS = [*TINY, SMALL_B16X4, replace(get_config("v2-S-16x4"), name="small-v2s", frames=8,
                                       size=64, num_classes=10)]


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
    assert not read_positions((8, 14, 14), (3, 3, 3), (1, 2, 2)).prunes


def test_padding_goes_only_around_the_kept_positions():
    plan = read_positions((2, 9, 9), (3, 3, 3), (1, 8, 8))
    cube = torch.ones(1, *plan.kept_grid, 4)
    padded = pad_between(cube, plan)
    assert padded.shape == (1, *plan.padded_grid, 4)
    assert padded.sum() == cube.sum()  # borders are zeros, not leftovers of empty()
    assert padded[(slice(None), *plan.interior)].eq(1).all()


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_skipping_unused_work_keeps_the_logits(cfg):
    model, clip = _model(cfg), _clip(cfg)
    with torch.no_grad():
        model.skip_unused = False
        plain = model(clip)
        model.skip_unused = True
        fast = model(clip)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", [SMALL_B16X4, CONFIGS[-1]], ids=lambda c: c.name)
def test_the_shortcuts_really_skip_multiply_adds(cfg):
    model, clip = _model(cfg), _clip(cfg, batch=1)
    counts = {}
    for enabled in (False, True):
        model.skip_unused = enabled
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


@pytest.mark.parametrize("cfg", [TINY[0], TINY[1]], ids=lambda c: c.name)
def test_gradients_flow_through_the_shortcuts_unchanged(cfg, monkeypatch):
    """Fine-tuning takes the same path: the input's and the weights' gradients must agree."""
    monkeypatch.setattr(layers, "CPU_TOKEN_CHUNK", 5)  # eval mode with grad: chunks are used
    model = _model(cfg)
    grads = {}
    for enabled in (False, True):
        model.skip_unused = enabled
        model.zero_grad()
        clip = _clip(cfg).requires_grad_()
        model(clip).square().sum().backward()
        weight = model.blocks[0].attn.qkv.weight.grad
        grads[enabled] = (clip.grad, weight.clone())
    for plain, fast in zip(grads[False], grads[True]):
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
