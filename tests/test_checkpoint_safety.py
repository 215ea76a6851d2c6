"""Bad checkpoint files: one clear line each, and never any code run from a file."""

from __future__ import annotations

import json
import sys
import types

import pytest
import torch
from safetensors.torch import load_file

from mvit_cli import CheckpointError, build_model
from mvit_cli.checkpoints import read_checkpoint

from conftest import TINY_V1, TINY_V2, reference, save_tiny


def _one_line_error(cfg, path) -> str:
    with pytest.raises(CheckpointError) as error:
        build_model(cfg, weights=path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in _one_line_error(TINY_V1, tmp_path / "absent.pth")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    assert "empty" in _one_line_error(TINY_V1, path)


def test_text_file_named_like_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n" * 20)
    assert "not a readable checkpoint" in _one_line_error(TINY_V1, path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pyth"
    path.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)).numpy().tobytes())
    assert "not a readable checkpoint" in _one_line_error(TINY_V1, path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".legacy.pth"])
def test_truncated_files(tmp_path, suffix):
    _, weights, _, _ = reference("tv_v1_tiny")
    whole = tmp_path / f"whole{suffix}"
    state = load_file(str(weights))
    if suffix == ".safetensors":
        whole.write_bytes(weights.read_bytes())
    else:
        torch.save(state, whole, _use_new_zipfile_serialization=suffix == ".pth")
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    message = _one_line_error(TINY_V1, cut)
    assert "truncated" in message or "not a readable" in message


def test_checkpoint_for_another_architecture_names_the_keys(tmp_path):
    _, v2_weights, _, _ = reference("tv_v2_tiny")
    message = _one_line_error(TINY_V1, v2_weights)
    assert "does not fit tiny-v1" in message
    assert "missing (" in message and "unexpected (" in message and "other shapes (" in message


def test_full_size_checkpoint_for_another_architecture(tmp_path):
    from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native

    v2 = build_model("v2-S-16x4")
    path = tmp_path / "mvit_v2_s.pth"
    torch.save(from_native(v2.state_dict(), LAYOUTS_BY_NAME["torchvision"], v2.cfg), path)
    message = _one_line_error("B-16x4", path)
    assert "torchvision checkpoint does not fit B-16x4" in message


def test_native_file_for_another_architecture(tmp_path):
    from mvit_cli.checkpoints import save_native

    path = tmp_path / "v2.safetensors"
    save_native(build_model(TINY_V2), path)
    assert "holds weights for tiny-v2, not tiny-v1" in _one_line_error(TINY_V1, path)


class _RunsCode:
    """Unpickling this would call os.system: the attack a checkpoint loader must refuse."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model_state": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    message = _one_line_error(TINY_V1, path)
    assert "refused" in message and "system" in message
    assert not marker.exists()


def test_slowfast_pickled_config_node_is_allowed_without_yacs(tmp_path, monkeypatch):
    """Old SlowFast files pickle a yacs CfgNode next to the weights; it loads as plain data."""
    yacs = types.ModuleType("yacs")
    config = types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__ = "yacs.config"
    CfgNode.__qualname__ = "CfgNode"
    config.CfgNode = CfgNode
    monkeypatch.setitem(sys.modules, "yacs", yacs)
    monkeypatch.setitem(sys.modules, "yacs.config", config)
    node = CfgNode(MVIT=CfgNode(DEPTH=16))
    node.__dict__["__immutable__"] = False
    _, weights, _, _ = reference("tv_v1_tiny")
    path = tmp_path / "slowfast.pyth"
    torch.save({"model_state": load_file(str(weights)), "cfg": node, "epoch": 200}, path)
    monkeypatch.delitem(sys.modules, "yacs.config")
    monkeypatch.delitem(sys.modules, "yacs")

    tensors, _ = read_checkpoint(path)
    assert "conv_proj.weight" in tensors


def test_file_without_weights(tmp_path):
    path = tmp_path / "stats.pth"
    torch.save({"epoch": 3, "accuracy": 0.5}, path)
    assert "holds no model weights" in _one_line_error(TINY_V1, path)


def test_metadata_reads_the_header_only(tmp_path):
    from mvit_cli.checkpoints import read_metadata, save_native

    native = tmp_path / "own.safetensors"
    save_native(build_model(TINY_V1), native)
    assert read_metadata(native)["mvit.architecture"] == "tiny-v1"
    _, weights, _, _ = reference("tv_v1_tiny")
    pickled = tmp_path / "tv.pth"
    torch.save(load_file(str(weights)), pickled)
    assert read_metadata(pickled) == {}  # pickles carry none; their tensors are not read
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_metadata(empty)


def test_a_tensor_of_the_same_size_but_another_shape_is_refused(tmp_path):
    """Singleton dims are all that may differ: a transposed (64, 16) weight stored as
    (16, 64) holds the right number of values in the wrong places."""
    _, weights, _, _ = reference("tv_v1_tiny")
    state = load_file(str(weights))
    state["blocks.0.mlp.0.weight"] = state["blocks.0.mlp.0.weight"].t().contiguous()
    path = tmp_path / "transposed.pth"
    torch.save(state, path)
    message = _one_line_error(TINY_V1, path)
    assert "blocks.0.mlp.fc1.weight (16, 64) vs (64, 16)" in message


def test_two_names_for_one_tensor_must_hold_the_same_values(tmp_path):
    """pytorchvideo files may carry a pool weight under two names; if the two differ, which
    one the model gets is not ours to choose."""
    from mvit_cli.checkpoints import LAYOUTS_BY_NAME, from_native, read_weights

    _, weights, _, _ = reference("tv_v1_tiny")
    state = from_native(read_weights(weights).state, LAYOUTS_BY_NAME["pytorchvideo"],
                        TINY_V1)
    key = "blocks.1.attn.pool_k.weight"
    state[key.replace(".attn.pool_k.", ".attn._attention_pool_k.pool.")] = state[key] + 1
    path = tmp_path / "aliases.pyth"
    torch.save({"model_state": state}, path)
    message = _one_line_error(TINY_V1, path)
    assert "two different tensors for blocks.1.attn.pool_k.weight" in message


def test_a_head_size_asked_for_must_be_the_files(tiny_weights):
    """`num_classes` with weights checks the head; it never hands back another size."""
    with pytest.raises(CheckpointError, match=r"head\.weight \(10, 64\) vs \(3, 64\)"):
        build_model(TINY_V1, weights=tiny_weights, num_classes=3)


def test_class_names_in_a_file_must_be_strings(tmp_path):
    """Numbers where names belong would reach every output row as labels."""
    from safetensors.torch import save_file

    tensors, metadata = read_checkpoint(save_tiny(tmp_path / "own.safetensors"))
    path = tmp_path / "numbers.safetensors"
    metadata["mvit.labels"] = json.dumps(list(range(10)))
    save_file(tensors, str(path), metadata=metadata)
    assert "mvit.labels metadata is not a list of names" in _one_line_error(TINY_V1, path)


def test_model_state_is_read_before_an_ema_copy(tmp_path):
    """Training checkpoints may hold the weights twice; the model's own come first."""
    _, weights, _, _ = reference("tv_v1_tiny")
    state = load_file(str(weights))
    ema = {key: value + 1 for key, value in state.items()}
    path = tmp_path / "training.pyth"
    torch.save({"model_ema": ema, "model_state": state, "epoch": 3}, path)
    tensors, _ = read_checkpoint(path)
    assert torch.equal(tensors["conv_proj.weight"], state["conv_proj.weight"])


def test_a_checkpoint_in_torchs_legacy_format_loads(tmp_path):
    """torch's pre-1.6 format is not a zip file and cannot be memory-mapped."""
    _, weights, _, _ = reference("tv_v1_tiny")
    state = load_file(str(weights))
    legacy = tmp_path / "legacy.pth"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(legacy)[0]["conv_proj.weight"], state["conv_proj.weight"])
