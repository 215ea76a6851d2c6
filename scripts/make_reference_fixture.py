"""Make the reference fixtures the tests compare against, from torchvision's MViT class.

Run once, by hand, where torchvision can be imported (it is not a project dependency):

    python scripts/make_reference_fixture.py --torchvision-shim ../shared/reference

For each reduced network below it builds torchvision's `MViT` from an explicit per-block
table, with random weights, runs a random clip through it, and writes
`tests/fixtures/<name>.weights.safetensors` (torchvision's own state dict, torchvision's key
names) and `tests/fixtures/<name>.io.safetensors` (`input`, `logits`). The tests load the
weights through mvit_cli's loaders and must reproduce the logits, with no torchvision at all.

The tables are written out by hand here, in torchvision's terms, on purpose: they must not
come from mvit_cli's own schedule expansion, or the check would compare the code with itself.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save_file

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

# (heads, in, out, kernel_q, kernel_kv, stride_q, stride_kv) per block; 4x32x32 clip -> 2x8x8
# tokens -> 2x4x4 -> 2x2x2. Q strides at blocks 1 and 3, K/V stride 1x4x4 divided by them.
K3 = [3, 3, 3]
V1_TINY = [
    (1, 16, 32, [], K3, [], [1, 4, 4]),
    (2, 32, 32, K3, K3, [1, 2, 2], [1, 2, 2]),
    (2, 32, 64, [], K3, [], [1, 2, 2]),
    (4, 64, 64, K3, K3, [1, 2, 2], [1, 1, 1]),
]
V2_TINY = [
    (1, 16, 16, K3, K3, [1, 1, 1], [1, 4, 4]),
    (2, 16, 32, K3, K3, [1, 2, 2], [1, 2, 2]),
    (2, 32, 32, K3, K3, [1, 1, 1], [1, 2, 2]),
    (4, 32, 64, K3, K3, [1, 2, 2], [1, 1, 1]),
]
NETWORKS = {
    "tv_v1_tiny": dict(table=V1_TINY, residual_pool=False, rel_pos_embed=False,
                       proj_after_attn=False),
    "tv_v2_tiny": dict(table=V2_TINY, residual_pool=True, rel_pos_embed=True,
                       proj_after_attn=True),
}
FRAMES, SIZE, CLASSES, BATCH = 4, 32, 10, 2


def build(torchvision, table, **flags):
    from torchvision.models.video.mvit import MSBlockConfig, MViT

    blocks = [MSBlockConfig(num_heads=h, input_channels=i, output_channels=o, kernel_q=kq,
                            kernel_kv=kkv, stride_q=sq, stride_kv=skv)
              for h, i, o, kq, kkv, sq, skv in table]
    return MViT(spatial_size=(SIZE, SIZE), temporal_size=FRAMES, block_setting=blocks,
                residual_with_cls_embed=False, num_classes=CLASSES,
                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), **flags)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision-shim", type=Path, default=None,
                        help="folder holding torchvision_cpu.py (CPU-only torch)")
    parser.add_argument("--seed", type=int, default=20211)
    args = parser.parse_args()
    if args.torchvision_shim is not None:
        sys.path.insert(0, str(args.torchvision_shim))
        from torchvision_cpu import torchvision
    else:
        import torchvision

    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name, spec in NETWORKS.items():
        torch.manual_seed(args.seed)
        model = build(torchvision, spec["table"], residual_pool=spec["residual_pool"],
                      rel_pos_embed=spec["rel_pos_embed"],
                      proj_after_attn=spec["proj_after_attn"]).eval()
        clip = torch.randn(BATCH, 3, FRAMES, SIZE, SIZE)
        with torch.inference_mode():
            logits = model(clip)
        meta = {"torchvision": torchvision.__version__, "seed": str(args.seed)}
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(FIXTURES / f"{name}.weights.safetensors"), metadata=meta)
        save_file({"input": clip, "logits": logits}, str(FIXTURES / f"{name}.io.safetensors"),
                  metadata=meta)
        print(f"{name}: {sum(v.numel() for v in state.values())} parameters, "
              f"logits {tuple(logits.shape)}")


if __name__ == "__main__":
    main()
