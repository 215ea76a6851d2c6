"""Our models against torchvision's MViT (fixtures made by scripts/make_reference_fixture.py).

The same weights in every layout we read must give torchvision's logits.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from mvit_cli import build_model
from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native, read_weights, save_native
from mvit_cli.checkpoints.loading import Checkpoint

from conftest import max_rel_error, reference

TOLERANCE = 1e-5


def logits_of(model: torch.nn.Module, clip: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(clip)


# How a forward may run: the reference path, or the fast paths with fp32's GEMMs through
# MKL or through oneDNN (cpu_gates.onednn_fp32, which the CPU decides, forced both ways here).
PATHS = {"reference": (False, False), "fast-mkl": (True, False), "fast-onednn": (True, True)}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_torchvision_safetensors_matches_reference(reference_name, path, force_gates):
    """torchvision's logits from each path on its own: the reference path is held to
    torchvision directly, not only through the fast paths' agreement with it."""
    fast_paths, onednn = PATHS[path]
    force_gates(onednn_fp32=onednn)
    cfg, weights, clip, expected = reference(reference_name)
    model = build_model(cfg, weights=weights)
    model.fast_paths = fast_paths
    assert not model.training
    assert max_rel_error(logits_of(model, clip), expected) < TOLERANCE


def test_torchvision_pth_matches_reference(reference_name, tmp_path):
    cfg, weights, clip, expected = reference(reference_name)
    path = tmp_path / "model.pth"
    torch.save(load_file(str(weights)), path)
    model = build_model(cfg, weights=path)
    assert max_rel_error(logits_of(model, clip), expected) < TOLERANCE


def _pyth(state: dict, path, **extra) -> None:
    """A training-framework pickle: weights under model_state, training state beside."""
    torch.save({"model_state": state, "epoch": 30, "cfg": "MVIT:\n  DEPTH: 4\n", **extra}, path)


def _with_pool_norm_eps(model: torch.nn.Module, eps: float) -> torch.nn.Module:
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in ("norm_q", "norm_k", "norm_v"):
            module.eps = eps
    return model


def test_slowfast_and_pytorchvideo_layouts_give_the_same_logits(reference_name, tmp_path):
    """Same weights, other names and shapes: the same network comes out.

    One known difference is kept on purpose: the original MViT v1 code of SlowFast and
    pytorchvideo used LayerNorm eps 1e-5 after pooling (torchvision's port uses 1e-6), so v1
    weights in those layouts are run with 1e-5, as they were trained. With the eps set back,
    the logits must equal torchvision's; as loaded, they differ only by that eps.
    """
    cfg, weights, clip, expected = reference(reference_name)
    native = read_weights(weights).state
    for layout_name in ("slowfast", "slowfast-qkv", "pytorchvideo"):
        layout = LAYOUTS_BY_NAME[layout_name]
        state = from_native(native, layout, cfg)
        path = tmp_path / f"{layout_name}.pyth"
        _pyth(state, path, optimizer_state={"state": {}, "param_groups": [{"lr": 0.1}]})
        loaded = read_weights(path)
        assert loaded.layout.name == layout_name
        model = build_model(cfg, weights=path)
        trained_eps = 1e-5 if cfg.generation == 1 else 1e-6
        assert model.blocks[0].attn.norm_k.eps == trained_eps, layout_name
        as_loaded = logits_of(model, clip)
        assert max_rel_error(as_loaded, expected) < 1e-2, layout_name
        same_eps = logits_of(_with_pool_norm_eps(model, 1e-6), clip)
        assert max_rel_error(same_eps, expected) < TOLERANCE, layout_name


def test_layouts_store_what_their_publishers_store(reference_name):
    """Spot-check the foreign names and shapes against the publishers' documented keys."""
    cfg, weights, _, _ = reference(reference_name)
    native = read_weights(weights).state
    slowfast = from_native(native, LAYOUTS_BY_NAME["slowfast"], cfg)
    assert slowfast["cls_token"].shape == (1, 1, 16)
    assert slowfast["head.projection.weight"].shape == (10, 64)
    assert "blocks.0.attn.qkv.weight" in slowfast
    pytorchvideo = from_native(native, LAYOUTS_BY_NAME["pytorchvideo"], cfg)
    assert pytorchvideo["cls_positional_encoding.cls_token"].shape == (1, 1, 16)
    assert "blocks.0.attn.q.weight" in pytorchvideo and "norm_embed.weight" in pytorchvideo
    assert "head.proj.weight" in pytorchvideo
    if cfg.generation == 1:
        assert slowfast["pos_embed_spatial"].shape == (1, 64, 16)
        assert pytorchvideo["cls_positional_encoding.pos_embed_temporal"].shape == (1, 2, 16)


def test_newer_pytorchvideo_alias_keys_are_accepted(tmp_path):
    cfg, weights, clip, expected = reference("tv_v1_tiny")
    state = from_native(read_weights(weights).state, LAYOUTS_BY_NAME["pytorchvideo"], cfg)
    for key in [k for k in state if ".attn.pool_" in k or ".attn.norm_" in k]:
        kind = "pool" if ".attn.pool_" in key else "norm"
        alias = key.replace(f".attn.{kind}_", ".attn._attention_pool_")
        alias = alias.replace(alias.split(".attn._attention_pool_")[1],
                              key.split(f".attn.{kind}_")[1][0] + f".{kind}." +
                              key.rsplit(".", 1)[1])
        state[alias] = state[key].clone()
    path = tmp_path / "new.pyth"
    _pyth(state, path)
    model = _with_pool_norm_eps(build_model(cfg, weights=path), 1e-6)
    assert max_rel_error(logits_of(model, clip), expected) < TOLERANCE


def test_pool_norm_eps_survives_conversion_to_native(tmp_path):
    cfg, weights, clip, _ = reference("tv_v1_tiny")
    path = tmp_path / "ptv.pyth"
    _pyth(from_native(read_weights(weights).state, LAYOUTS_BY_NAME["pytorchvideo"], cfg),
          path)
    model = build_model(cfg, weights=path)
    own = tmp_path / "own.safetensors"
    save_native(model, own)
    again = build_model(cfg, weights=own)
    assert again.blocks[0].attn.norm_k.eps == 1e-5
    assert torch.equal(logits_of(again, clip), logits_of(model, clip))


def test_native_safetensors_round_trip_keeps_logits_and_labels(reference_name, tmp_path):
    cfg, weights, clip, expected = reference(reference_name)
    model = build_model(cfg, weights=weights)
    labels = [f"class {i}" for i in range(cfg.num_classes)]
    path = tmp_path / "own.safetensors"
    save_native(model, path, labels=labels)
    again = build_model(cfg, weights=path)
    assert again.labels == labels
    assert torch.equal(logits_of(again, clip), logits_of(model, clip))
    assert max_rel_error(logits_of(again, clip), expected) < TOLERANCE


def test_timm_image_layout_round_trip(tmp_path):
    from conftest import TINY_V2_IMAGE as cfg

    torch.manual_seed(0)
    model = build_model(cfg)
    image = torch.randn(2, 3, cfg.size, cfg.size)
    state = from_native(model.state_dict(), LAYOUTS_BY_NAME["timm"], cfg)
    # timm's image models: 2D kernels, stage-relative block names, no temporal tables.
    assert state["patch_embed.proj.weight"].ndim == 4
    assert state["stages.0.blocks.0.attn.pool_q.weight"].ndim == 4
    assert "stages.1.blocks.0.shortcut_proj_attn.weight" in state
    assert not any("rel_pos_t" in k for k in state)
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    assert read_weights(path).layout.name == "timm"
    loaded = build_model(cfg, weights=path)
    assert torch.equal(logits_of(loaded, image), logits_of(model, image))


def test_checkpoint_head_size_sets_the_number_of_classes(tmp_path):
    cfg, weights, clip, _ = reference("tv_v1_tiny")
    state = load_file(str(weights))
    state["head.1.weight"] = state["head.1.weight"][:3].clone()
    state["head.1.bias"] = state["head.1.bias"][:3].clone()
    path = tmp_path / "three.pth"
    torch.save(state, path)
    model = build_model(cfg, weights=path)
    assert model.num_classes == 3
    assert logits_of(model, clip).shape == (2, 3)


def test_checkpoint_dataclass_reports_classes():
    cfg, weights, _, _ = reference("tv_v2_tiny")
    checkpoint = read_weights(weights)
    assert isinstance(checkpoint, Checkpoint)
    assert checkpoint.num_classes == 10
    assert checkpoint.layout.name == "torchvision"


def test_a_slowfast_image_models_joint_position_table_is_split(tmp_path):
    """SlowFast image models store one `pos_embed` [1, 1 + HW, C]: its first row is the
    class token's position, the rest the spatial grid's, in order."""
    from conftest import TINY_V1_IMAGE as cfg

    torch.manual_seed(0)
    model = build_model(cfg)
    native = {key: value.clone() for key, value in model.state_dict().items()}
    native["pos_embed.temporal"].zero_()  # a joint table has no temporal part
    state = from_native(native, LAYOUTS_BY_NAME["slowfast"], cfg)
    state["pos_embed"] = torch.cat([state.pop("pos_embed_class"),
                                    state.pop("pos_embed_spatial")], dim=1)
    del state["pos_embed_temporal"]
    path = tmp_path / "image.pyth"
    _pyth(state, path)
    loaded = build_model(cfg, weights=path).state_dict()
    for key in ("pos_embed.cls", "pos_embed.spatial", "pos_embed.temporal"):
        assert torch.equal(loaded[key], native[key]), key
