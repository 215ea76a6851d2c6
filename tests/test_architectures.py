"""The named architectures: shapes, parameter counts and FLOPs against the papers' tables."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mvit_cli import ARCHITECTURES, UnknownArchitectureError, build_model, get_config
from mvit_cli.flops import count
from mvit_cli.models.config import block_settings

from conftest import TINY_V1, TINY_V2

VIDEO = [n for n, c in ARCHITECTURES.items() if c.is_video and c.paper_params_m]
IMAGE_V1 = [n for n, c in ARCHITECTURES.items() if not c.is_video and c.generation == 1]
IMAGE_V2 = [n for n, c in ARCHITECTURES.items() if not c.is_video and c.generation == 2]


def test_exact_parameter_counts_of_the_torchvision_models():
    assert count(get_config("B-16x4"))[0] == 36_610_672
    assert count(get_config("v2-S-16x4"))[0] == 34_537_744


@pytest.mark.parametrize("name", VIDEO)
def test_video_parameter_counts_within_half_a_percent_of_the_paper(name):
    cfg = get_config(name)
    params, _ = count(cfg)
    assert abs(params / 1e6 / cfg.paper_params_m - 1) < 0.005


@pytest.mark.parametrize("name", IMAGE_V1)
def test_v1_image_parameter_counts_within_half_a_percent(name):
    cfg = get_config(name)
    assert abs(count(cfg)[0] / 1e6 / cfg.paper_params_m - 1) < 0.005


@pytest.mark.parametrize("name", IMAGE_V2)
def test_v2_image_parameter_counts_within_three_percent(name):
    cfg = get_config(name)
    assert abs(count(cfg)[0] / 1e6 / cfg.paper_params_m - 1) < 0.03


@pytest.mark.parametrize("name", ["B-16x4", "B-32x3", "B-64x3", "v2-S-16x4", "v2-B-32x3",
                                  "B-16", "v2-T", "v2-S", "v2-B"])
def test_gflops_within_one_and_a_half_percent_of_the_paper(name):
    cfg = get_config(name)
    _, macs = count(cfg)
    assert abs(macs / 1e9 / cfg.paper_gflops - 1) < 0.015


def test_s16x4_follows_table_3c_of_the_paper():
    settings = block_settings(get_config("S-16x4"))
    assert len(settings) == 16
    assert get_config("S-16x4").patch_grid == (8, 28, 28)
    assert [s.grid_in for s in (settings[0], settings[4], settings[11])] == [
        (8, 28, 28), (8, 14, 14), (8, 7, 7)]
    assert {s.dim_out for s in settings} == {128, 256, 512}
    assert sum(s.dim_in == 256 and s.dim_out == 256 for s in settings) == 6


def test_b16x4_block_table_follows_the_paper():
    settings = block_settings(get_config("B-16x4"))
    assert len(settings) == 16
    assert [s.num_heads for s in settings] == [1, 2, 2] + [4] * 11 + [8, 8]
    assert [i for i, s in enumerate(settings) if s.stride_q != (1, 1, 1)] == [1, 3, 14]
    assert [i for i, s in enumerate(settings) if s.dim_in != s.dim_out] == [0, 2, 13]
    assert [s.kernel_q is not None for s in settings].count(True) == 3
    assert settings[0].stride_kv == (1, 8, 8)
    assert settings[1].stride_kv == (1, 4, 4) and settings[3].stride_kv == (1, 2, 2)
    assert settings[14].stride_kv == (1, 1, 1)
    assert [s.grid_in for s in (settings[0], settings[2], settings[4], settings[15])] == [
        (8, 56, 56), (8, 28, 28), (8, 14, 14), (8, 7, 7)]
    assert settings[-1].dim_out == 768


def test_v2_s_widens_in_attention_and_pools_q_everywhere():
    settings = block_settings(get_config("v2-S-16x4"))
    assert [i for i, s in enumerate(settings) if s.dim_in != s.dim_out] == [1, 3, 14]
    assert all(s.kernel_q == (3, 3, 3) for s in settings)
    assert settings[1].attn_dim == 192


@pytest.mark.parametrize("spelling", ["B-16x4", "b-16x4", "MVIT-B-16X4", "mvit-b-16x4",
                                      " mvit_b_16x4 "])
def test_names_are_case_insensitive_with_optional_prefix(spelling):
    assert get_config(spelling).name == "B-16x4"


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(UnknownArchitectureError) as error:
        build_model("B-99x9")
    message = str(error.value)
    assert "B-99x9" in message and "\n" not in message
    assert all(name in message for name in ARCHITECTURES)


def test_build_model_returns_eval_mode_and_the_asked_head():
    model = build_model(TINY_V1, num_classes=5)
    assert not model.training
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 5)


def test_image_models_take_four_dimensional_input():
    from conftest import TINY_V2_IMAGE, TINY_V1_IMAGE

    for cfg in (TINY_V2_IMAGE, TINY_V1_IMAGE):
        model = build_model(cfg)
        image = torch.randn(2, 3, 32, 32)
        with torch.inference_mode():
            assert torch.equal(model(image), model(image.unsqueeze(2)))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_max_and_avg_pooling_modes(mode):
    from dataclasses import replace

    cfg = replace(TINY_V2, pool_mode=mode)
    model = build_model(cfg)
    attn = model.blocks[1].attn
    kind = torch.nn.MaxPool3d if mode == "max" else torch.nn.AvgPool3d
    assert any(isinstance(m, kind) for m in attn.pool_q.modules())
    assert attn.norm_q is None
    assert not any(".pool_" in name for name, _ in model.named_parameters())
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 10)


def test_avg_pooling_counts_padding_like_avgpool3d():
    from mvit_cli.models.pooling import make_pool

    grid = torch.randn(2, 4, 4, 6, 6)
    ours = make_pool("avg", 4, (3, 3, 3), (1, 2, 2))(grid)
    assert torch.allclose(ours, torch.nn.AvgPool3d(3, (1, 2, 2), 1)(grid), atol=1e-6)


def test_class_token_is_never_pooled():
    from mvit_cli.models.pooling import pool_tokens

    tokens = torch.randn(2, 1 + 2 * 8 * 8, 16)
    pool = torch.nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
    pooled, grid = pool_tokens(tokens, (2, 8, 8), pool, has_cls=True)
    assert grid == (2, 4, 4) and pooled.shape == (2, 1 + 32, 16)
    assert torch.equal(pooled[:, 0], tokens[:, 0])


def test_attention_goes_through_sdpa(monkeypatch, force_gates):
    calls = []
    real = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    # Where fp32's GEMMs run through oneDNN (AMD with AVX-512) the attention does too
    # (fp32_attention, tested on its own); the fused kernel is the path everywhere else.
    force_gates(onednn_fp32=False)
    model = build_model(TINY_V2)
    with torch.inference_mode():
        model(torch.randn(1, 3, 4, 32, 32))
    assert len(calls) == len(model.blocks)


@pytest.mark.parametrize("head_pool", ["cls", "mean_then_norm", "norm_then_mean"])
@pytest.mark.parametrize("fast_paths", [False, True], ids=["reference", "fast"])
def test_each_head_pool_reads_the_final_tokens_as_its_name_says(head_pool, fast_paths):
    """The head's three ways of pooling the final tokens, held to their definitions over
    the tokens `run_blocks` returns: the class token normalised; the mean of the grid
    tokens (never the class token) normalised; the grid tokens normalised, then averaged."""
    cfg = replace(TINY_V2, name=f"tiny-v2-{head_pool}", head_pool=head_pool)
    torch.manual_seed(0)
    model = build_model(cfg)
    for param in model.norm.parameters():  # a norm that is not the identity, so order shows
        torch.nn.init.normal_(param, std=0.5)
    model.fast_paths = fast_paths
    clip = torch.randn(2, 3, cfg.frames, cfg.size, cfg.size)
    with torch.inference_mode():
        tokens = model.run_blocks(*model.embed(clip))[0]
        pooled = {"cls": model.norm(tokens[:, 0]),
                  "mean_then_norm": model.norm(tokens[:, 1:].mean(dim=1)),
                  "norm_then_mean": model.norm(tokens[:, 1:]).mean(dim=1)}[head_pool]
        torch.testing.assert_close(model(clip), model.head(pooled), rtol=1e-5, atol=1e-5)
        # The two means differ on this model, so neither could pass for the other.
        assert not torch.allclose(model.norm(tokens[:, 1:].mean(dim=1)),
                                  model.norm(tokens[:, 1:]).mean(dim=1), atol=1e-3)


def test_stochastic_depth_grows_linearly_and_keeps_the_expected_value():
    """Training only: block i drops its branches with probability drop_path * i / (depth - 1)
    (0 in the first block, drop_path in the last, as the papers train), and a kept sample is
    scaled by 1 / keep so that the branch's expected value is what inference adds."""
    from mvit_cli.models.block import DropPath

    model = build_model(TINY_V1)
    rates = [block.drop_path.prob for block in model.blocks]
    depth = TINY_V1.depth
    assert rates == pytest.approx([TINY_V1.drop_path * i / (depth - 1) for i in range(depth)])

    drop = DropPath(0.25).train()
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2)
    out = drop(x)
    per_sample = out.flatten(1)
    kept = per_sample[:, 0] != 0
    assert torch.equal(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.75))
    assert torch.equal(per_sample[~kept], torch.zeros_like(per_sample[~kept]))
    assert abs(kept.float().mean().item() - 0.75) < 0.03  # whole samples dropped at the rate
    assert torch.equal(drop.eval()(x), x)
