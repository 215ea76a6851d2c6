"""Our MViTv2 against timm's (`timm.models.mvitv2.MultiScaleVit`), a second reference.

The torchvision fixtures (test_reference.py) cover one shape of network: a class token that
the head reads alone, and one block in the last stage. timm's model is a separate port of the
published code that also covers what those leave out: no class token, heads that average the
tokens, a class token with a mean-pooled head, last stages of several blocks (where K/V is
finer than Q in the stage's first block, so relative positions are rescaled), and widening in
the MLP (v2-L). Each case builds timm's network with random weights, writes its state dict as
a timm checkpoint file and loads that through our timm layout: the logits must agree, on the
fast paths and on the reference path alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mvit_cli import build_model
from mvit_cli.checkpoints import read_weights
from mvit_cli.models.architectures import get_config
from mvit_cli.models.config import MViTConfig

from conftest import max_rel_error

TOLERANCE = 1e-5
BATCH = 2
NUM_CLASSES = 5


@pytest.fixture(scope="module")
def mvitv2() -> ModuleType:
    """timm's mvitv2 module, or a skip where timm is not installed (the test extra has it)."""
    from reference_libraries import timm_mvitv2

    try:
        return timm_mvitv2()
    except ModuleNotFoundError as exc:
        pytest.skip(f"timm's MViTv2 is the reference here: {exc}")


@dataclass(frozen=True)
class Case:
    """One tiny image network, described the way both timm's config and ours can say it."""

    name: str
    depths: tuple[int, ...]
    class_token: bool
    # timm's global_pool: "avg" (norm, then the mean of the grid tokens) or "token".
    global_pool: str
    # timm's expand_attn: widen in the first block's attention (v2-T/S/B) or in the MLP of a
    # stage's last block (v2-L).
    expand_attn: bool = True
    embed_dim: int = 16
    num_heads: int = 1
    size: int = 32

    def timm_model(self, mvitv2: ModuleType) -> nn.Module:
        stride_q = ((1, 1),) + ((2, 2),) * (len(self.depths) - 1)
        cfg = mvitv2.MultiScaleVitCfg(
            depths=self.depths, embed_dim=self.embed_dim, num_heads=self.num_heads,
            use_cls_token=self.class_token, expand_attn=self.expand_attn, stride_q=stride_q)
        return mvitv2.MultiScaleVit(cfg, img_size=self.size, num_classes=NUM_CLASSES,
                                    global_pool=self.global_pool).eval()

    def our_config(self) -> MViTConfig:
        """v2-T's image schedule (timm's defaults: 7x7 patch of stride 4, 3x3 pooling, K/V
        stride 4 in the first stage, conv pooling, residual pooling, relative positions),
        reduced, with this case's differences."""
        return replace(
            get_config("v2-T"), name=f"timm-{self.name}", depths=self.depths,
            embed_dim=self.embed_dim, num_heads=self.num_heads, size=self.size,
            num_classes=NUM_CLASSES, cls_token=self.class_token,
            # timm adds the pooled query to the class token's row too (with no class token
            # the flag changes nothing).
            residual_with_cls=self.class_token,
            head_pool="cls" if self.global_pool == "token" else "norm_then_mean",
            dim_mul_in_att=self.expand_attn)


CASES = [
    Case("no-class-token-mean-head", depths=(1, 2, 1), class_token=False, global_pool="avg"),
    Case("class-token-head", depths=(1, 2, 1), class_token=True, global_pool="token"),
    Case("class-token-mean-head", depths=(1, 2, 1), class_token=True, global_pool="avg"),
    # The last stage's first block pools Q (4x4 -> 2x2) but not K/V, so relative positions
    # are rescaled to the finer K/V grid there; here two more blocks follow it, as in every
    # published schedule, instead of that block feeding the head directly.
    Case("deep-last-stage-mean-head", depths=(1, 2, 3), class_token=False, global_pool="avg"),
    # v2-L's schedule: widening in the MLP, and two heads to split.
    Case("widening-in-mlp", depths=(1, 2, 2), class_token=False, global_pool="avg",
         expand_attn=False, num_heads=2),
]


def randomise(model: nn.Module, seed: int) -> None:
    """Every parameter random, none at a value that would hide a mistake.

    timm's initial weights would let wrong code pass: a zero bias loaded into the wrong
    place, or not at all, changes nothing; LayerNorm at weight one and bias zero is the same
    as no affine at all; rel-pos tables of std 0.02 barely move the attention, so wrong
    relative positions would barely move the logits. So: LayerNorm weights 1 + N(0, 0.1),
    rel-pos tables N(0, 0.5), everything else (biases and LayerNorm biases included)
    N(0, 0.1).
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=generator)
                if isinstance(module, nn.LayerNorm) and name == "weight":
                    param.copy_(1.0 + 0.1 * noise)
                elif name.startswith("rel_pos"):
                    param.copy_(0.5 * noise)
                else:
                    param.copy_(0.1 * noise)


def timm_checkpoint(model: nn.Module, path: Path) -> Path:
    """timm's state dict as it is published (Hugging Face Hub timm/mvitv2_*: safetensors)."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


# The reference path, and the fast paths with fp32's GEMMs through MKL or through oneDNN
# (cpu_gates.onednn_fp32: the CPU decides, forced both ways here).
PATHS = {"reference-path": (False, False), "fast-mkl": (True, False), "fast-onednn": (True, True)}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_logits_match_timm(mvitv2: ModuleType, case: Case, path: str, force_gates,
                           tmp_path: Path) -> None:
    """timm's network, saved as a timm checkpoint and loaded by us, gives timm's logits."""
    fast_paths, onednn = PATHS[path]
    force_gates(onednn_fp32=onednn)
    torch.manual_seed(0)
    reference = case.timm_model(mvitv2)
    randomise(reference, seed=1)
    path = timm_checkpoint(reference, tmp_path / "timm.safetensors")
    cfg = case.our_config()
    assert read_weights(path).layout.name == "timm"

    model = build_model(cfg, weights=path)
    model.fast_paths = fast_paths
    images = torch.randn(BATCH, 3, case.size, case.size, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = reference(images)
        actual = model(images)
    assert actual.shape == expected.shape == (BATCH, NUM_CLASSES)
    assert max_rel_error(actual, expected) < TOLERANCE
