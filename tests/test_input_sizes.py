"""Other frame counts and resolutions: v1 resamples absolute positions, v2 relative ones."""

from __future__ import annotations

import pytest
import torch

from mvit_cli import build_model

from conftest import TINY_V1, TINY_V2, reference


@pytest.mark.parametrize("cfg", [TINY_V1, TINY_V2], ids=["v1", "v2"])
@pytest.mark.parametrize("frames,size", [(2, 32), (8, 32), (4, 48), (8, 40), (4, 24)])
def test_tiny_models_run_on_other_sizes(cfg, frames, size):
    model = build_model(cfg)
    with torch.inference_mode():
        out = model(torch.randn(1, 3, frames, size, size))
    assert out.shape == (1, cfg.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["tv_v1_tiny", "tv_v2_tiny"])
def test_trained_size_is_untouched_by_resampling(name):
    """At the trained size, nothing is interpolated: the reference logits still hold."""
    cfg, weights, clip, expected = reference(name)
    model = build_model(cfg, weights=weights)
    with torch.inference_mode():
        assert torch.allclose(model(clip), expected, rtol=0, atol=1e-5 * expected.abs().max())


def test_v1_positions_are_resampled_smoothly():
    model = build_model(TINY_V1)
    pos = model.pos_embed
    same = pos.grid_positions(pos.grid)
    assert torch.equal(same, (pos.temporal[:, None] + pos.spatial[None]).flatten(0, 1))
    doubled = pos.grid_positions((4, 16, 16))
    assert doubled.shape == (4 * 16 * 16, 16)


@pytest.mark.slow
@pytest.mark.parametrize("name,frames,size", [("B-16x4", 8, 224), ("B-16x4", 16, 256),
                                              ("v2-S-16x4", 8, 224), ("v2-S-16x4", 16, 256)])
def test_full_size_models_on_other_inputs(name, frames, size):
    """The published schedules' own grids, resampled (the tiny models above run the same
    code on small grids in the fast part)."""
    model = build_model(name)
    with torch.inference_mode():
        out = model(torch.randn(1, 3, frames, size, size))
    assert out.shape == (1, 400) and torch.isfinite(out).all()
