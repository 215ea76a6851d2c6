"""Each checkpoint layout against its publisher's own key names and shapes.

tests/fixtures/layouts/ holds, per publisher, the state-dict keys and shapes of their models
as their own code builds them (torchvision, timm, pytorchvideo, SlowFast; written by
scripts/make_layout_keys.py, each file saying how). Writing our weights in a layout must give
exactly those keys and shapes, and a file with exactly those keys must load strictly: a
renamed or reshaped mapping fails here, which a round trip through our own code cannot see.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mvit_cli import get_config
from mvit_cli.checkpoints import LAYOUTS_BY_NAME, detect_layout, from_native
from mvit_cli.checkpoints.layouts import native_state
from mvit_cli.checkpoints.loading import Checkpoint, expected_shapes, load_model
from mvit_cli.models.model import model_from_config

LAYOUT_FILES = Path(__file__).parent / "fixtures" / "layouts"

# publisher file -> (our architecture, our layout name)
PUBLISHED = {
    "torchvision-mvit_v1_b.json": ("B-16x4", "torchvision"),
    "torchvision-mvit_v2_s.json": ("v2-S-16x4", "torchvision"),
    "slowfast-mvit_b_16x4.json": ("B-16x4", "slowfast"),
    "slowfast-mvitv2_s_16x4.json": ("v2-S-16x4", "slowfast"),
    "pytorchvideo-mvit_b_16x4.json": ("B-16x4", "pytorchvideo"),
    "pytorchvideo-mvit_b_16.json": ("B-16", "pytorchvideo"),
    "timm-mvitv2_tiny.json": ("v2-T", "timm"),
    "timm-mvitv2_small.json": ("v2-S", "timm"),
}


def _published(name: str) -> tuple[dict[str, list[int]], object]:
    keys = json.loads((LAYOUT_FILES / name).read_text())["keys"]
    architecture, _ = PUBLISHED[name]
    heads = [shape for key, shape in keys.items() if key.startswith("head") and
             key.endswith("weight")]
    cfg = replace(get_config(architecture), num_classes=heads[0][0])
    return keys, cfg


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_writing_a_layout_gives_the_publishers_keys_and_shapes(name):
    published, cfg = _published(name)
    layout = LAYOUTS_BY_NAME[PUBLISHED[name][1]]
    with torch.device("meta"):
        state = model_from_config(cfg).state_dict()
    written = {key: list(value.shape) for key, value in from_native(state, layout, cfg).items()}
    missing = sorted(set(published) - set(written))
    extra = sorted(set(written) - set(published))
    assert not missing and not extra, (missing[:5], extra[:5])
    shapes = {key: (written[key], published[key]) for key in published
              if written[key] != published[key]}
    assert not shapes, list(shapes.items())[:5]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_a_file_with_the_publishers_keys_loads_strictly(name):
    published, cfg = _published(name)
    tensors = {key: torch.zeros(shape) for key, shape in published.items()}
    assert detect_layout(tensors).name.startswith(PUBLISHED[name][1])
    layout, state = native_state(tensors)
    checkpoint = Checkpoint(state, layout, {}, name)
    model = load_model(cfg, checkpoint)
    assert model.num_classes == cfg.num_classes


def test_a_file_of_each_layout_is_identified_by_shape_alone():
    """The published architectures, told apart from the publishers' shapes (no metadata)."""
    from mvit_cli.checkpoints.files import architecture_from_shapes

    for name, (architecture, _) in PUBLISHED.items():
        published, _ = _published(name)
        tensors = {key: torch.empty(shape) for key, shape in published.items()}
        found = architecture_from_shapes(tensors, detect_layout(tensors), name)
        assert found.name == architecture, name


def test_a_loaded_model_owns_its_tensors_whatever_the_checkpoint_shares():
    """load_model builds on the meta device and takes copies of the checkpoint's tensors:
    none is left on meta, values are the file's, and each is contiguous memory of its own
    (not the file's mapping; tied keys, views and transposed ones apart), so training one
    never moves another."""
    from mvit_cli.checkpoints import Checkpoint
    from mvit_cli.checkpoints.layouts import NATIVE

    cfg = replace(get_config("B-16x4"), name="tiny-b16x4", frames=4, size=32, num_classes=5)
    torch.manual_seed(0)
    state = model_from_config(cfg).state_dict()
    state["blocks.0.norm2.weight"] = state["blocks.0.norm1.weight"]  # one tensor, two keys
    state["head.bias"] = torch.randn(10)[::2]  # a strided view
    state["head.weight"] = state["head.weight"].t().contiguous().t()  # transposed memory
    expected = {k: v.clone() for k, v in state.items()}
    model = load_model(cfg, Checkpoint(dict(state), NATIVE))
    loaded = model.state_dict()
    assert not any(t.is_meta for t in loaded.values())
    assert all(torch.equal(loaded[k], expected[k]) and loaded[k].is_contiguous() for k in state)
    pointers = [t.untyped_storage().data_ptr() for t in loaded.values()]
    assert len(set(pointers)) == len(pointers)
    assert not set(pointers) & {t.untyped_storage().data_ptr() for t in state.values()}
    with torch.no_grad():
        model.blocks[0].norm1.weight.add_(1.0)
    assert torch.equal(model.blocks[0].norm2.weight, expected["blocks.0.norm2.weight"])


def _tensors_of(cfg) -> dict[str, torch.Tensor]:
    """A file of `cfg`'s names and shapes (zeros: only the shapes are looked at)."""
    return {key: torch.zeros(shape) for key, shape in expected_shapes(cfg).items()}


def test_a_registered_variant_with_a_builtins_shapes_leaves_it_the_builtins_files(
        monkeypatch):
    """Architectures that differ only in how clips are sampled have the same tensors: a file
    of those shapes is the builtin's, not an error asking which of the two."""
    from mvit_cli.checkpoints.files import architecture_from_shapes
    from mvit_cli.models.architectures import ARCHITECTURES

    builtin = get_config("v2-XS-8")
    monkeypatch.setitem(ARCHITECTURES, "v2-XS-8-every-2nd",
                        replace(builtin, name="v2-XS-8-every-2nd", sampling_rate=2))
    tensors = _tensors_of(builtin)
    assert architecture_from_shapes(tensors, detect_layout(tensors), "file").name == "v2-XS-8"


def test_a_head_of_a_registered_variants_size_names_that_variant(monkeypatch):
    from mvit_cli.checkpoints.files import architecture_from_shapes
    from mvit_cli.models.architectures import ARCHITECTURES

    builtin = get_config("v2-XS-8")
    variant = replace(builtin, name="v2-XS-8-twenty", num_classes=20)
    monkeypatch.setitem(ARCHITECTURES, variant.name, variant)
    for cfg in (builtin, variant):
        tensors = _tensors_of(cfg)
        assert architecture_from_shapes(tensors, detect_layout(tensors), "f").name == cfg.name


def test_a_file_of_ours_loads_as_the_config_it_records(tmp_path):
    """Our files carry their whole config: a network trained at other frames loads as it
    was trained, whether or not its name is registered here."""
    from conftest import TINY_V1, register_tiny_architectures
    from mvit_cli.checkpoints import load_file, save_native

    register_tiny_architectures()
    for name in ("tiny-v1-8-frames", "tiny-v1"):
        cfg = replace(TINY_V1, name=name, frames=8)
        path = tmp_path / f"{name}.safetensors"
        save_native(model_from_config(cfg), path)
        loaded = load_file(path, None if name != "tiny-v1" else "tiny-v1")
        assert loaded.cfg == cfg and loaded.model.cfg.frames == 8, name
