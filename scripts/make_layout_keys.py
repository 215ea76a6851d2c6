#!/usr/bin/env python3
"""Write the state-dict key names and tensor shapes of MViT models, built by their publishers' code.

Each model below is built with random weights (nothing is downloaded) and written as one JSON file:
    {"source": "<package> <version>, <how the model was built>", "keys": {"<key>": [shape...], ...}}
with the keys sorted.

Usage:
    python make_layout_keys.py OUT_DIR [--shim-dir DIR] [--slowfast-src DIR]

What has to be importable (Python 3.11):
  * torch (CPU build, 2.13.0 here) and torchvision, installed with `pip install --no-deps torchvision`
    and imported through the shim torchvision_cpu.py (--shim-dir is its folder), which makes
    `import torchvision` work on a CPU-only torch.
  * timm, from PyPI.
  * pytorchvideo, from PyPI (it brings fvcore and iopath).
  * SlowFast (facebookresearch/SlowFast, not on PyPI): its source tree, the folder holding the `slowfast`
    package and `configs/` (--slowfast-src), e.g. from `git archive HEAD slowfast configs | tar -x`.
    A file COMMIT in that folder, if present, names the commit for the "source" text.
    Importing SlowFast's MViT also needs simplejson, psutil and fvcore.
"""

import argparse
import importlib.metadata
import json
import os
import sys
import types

# (file name, builder function, required). Each builder returns (model, how-it-was-built text).
MODELS = [
    ("torchvision-mvit_v1_b.json", "torchvision_mvit_v1_b", True),
    ("torchvision-mvit_v2_s.json", "torchvision_mvit_v2_s", True),
    ("timm-mvitv2_tiny.json", "timm_mvitv2_tiny", True),
    ("timm-mvitv2_small.json", "timm_mvitv2_small", True),
    ("pytorchvideo-mvit_b_16x4.json", "pytorchvideo_mvit_b_16x4", True),
    ("pytorchvideo-mvit_b_16.json", "pytorchvideo_mvit_b_16", False),
    ("slowfast-mvitv2_s_16x4.json", "slowfast_mvitv2_s_16x4", True),
    ("slowfast-mvit_b_16x4.json", "slowfast_mvit_b_16x4", False),
]

ARGS = None  # parsed command line, set in main()


def version(dist):
    return importlib.metadata.version(dist)


# ---------------------------------------------------------------- torchvision


def _torchvision():
    if ARGS.shim_dir not in sys.path:
        sys.path.insert(0, ARGS.shim_dir)
    from torchvision_cpu import torchvision  # noqa: F401  (must come before any torchvision import)
    import torchvision.models.video

    return torchvision.models.video


def _tv_source(call):
    return (
        f"torchvision {version('torchvision')}, torchvision.models.video.{call} "
        f"(on torch {version('torch')}, imported through torchvision_cpu.py)"
    )


def torchvision_mvit_v1_b():
    return _torchvision().mvit_v1_b(weights=None), _tv_source("mvit_v1_b(weights=None)")


def torchvision_mvit_v2_s():
    return _torchvision().mvit_v2_s(weights=None), _tv_source("mvit_v2_s(weights=None)")


# ---------------------------------------------------------------- timm


def _timm(name):
    import timm

    model = timm.create_model(name, pretrained=False)
    return model, f'timm {version("timm")}, timm.create_model("{name}", pretrained=False)'


def timm_mvitv2_tiny():
    return _timm("mvitv2_tiny")


def timm_mvitv2_small():
    return _timm("mvitv2_small")


# ---------------------------------------------------------------- pytorchvideo


def _pytorchvideo(config_name, hub_name):
    # The settings are the ones pytorchvideo's hub builder passes (hub/vision_transformers.py).
    from pytorchvideo.models.hub import vision_transformers as hub
    from pytorchvideo.models.vision_transformers import create_multiscale_vision_transformers

    config = dict(getattr(hub, config_name))
    model = create_multiscale_vision_transformers(**config)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return model, (
        f"pytorchvideo {version('pytorchvideo')}, "
        f"pytorchvideo.models.vision_transformers.create_multiscale_vision_transformers({kwargs}) "
        f"(= pytorchvideo.models.hub.vision_transformers.{config_name}, the settings of hub "
        f"{hub_name}(pretrained=False); other arguments at their defaults, head_num_classes=400)"
    )


def pytorchvideo_mvit_b_16x4():
    return _pytorchvideo("mvit_video_base_config", "mvit_base_16x4")


def pytorchvideo_mvit_b_16():
    return _pytorchvideo("mvit_image_base_16_config", "mvit_base_16")


# ---------------------------------------------------------------- SlowFast

SLOWFAST_SHIMS = (
    "import shims, none of which touches the model: slowfast/models/__init__.py is not run "
    "(the package is registered in sys.modules so that only video_model_builder and what it imports "
    "load, not contrastive/masked/ptv_model_builder); detectron2 is stubbed in sys.modules "
    "(detectron2.layers.ROIAlign, used only by the detection heads); pytorchvideo.layers.distributed "
    "gets placeholder cat_all_gather/get_local_process_group/get_local_rank/get_local_size/"
    "init_distributed_training, which SlowFast's utils/distributed.py imports from pytorchvideo's "
    "GitHub master but PyPI's pytorchvideo lacks (used only in distributed training)"
)


def _slowfast_import():
    if "slowfast.models.video_model_builder" in sys.modules:
        return sys.modules["slowfast.models.video_model_builder"]
    src = os.path.abspath(ARGS.slowfast_src)
    if src not in sys.path:
        sys.path.insert(0, src)
    import pytorchvideo.layers.distributed as ptv_distributed

    def _unavailable(*args, **kwargs):
        raise NotImplementedError("placeholder: distributed helpers are not needed to build the model")

    for name in (
        "cat_all_gather",
        "get_local_process_group",
        "get_local_rank",
        "get_local_size",
        "init_distributed_training",
    ):
        if not hasattr(ptv_distributed, name):
            setattr(ptv_distributed, name, _unavailable)

    detectron2 = types.ModuleType("detectron2")
    detectron2_layers = types.ModuleType("detectron2.layers")

    class ROIAlign:  # noqa: N801  stand-in; building a detection head with it would fail
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("detectron2 is stubbed")

    detectron2_layers.ROIAlign = ROIAlign
    detectron2.layers = detectron2_layers
    sys.modules.setdefault("detectron2", detectron2)
    sys.modules.setdefault("detectron2.layers", detectron2_layers)

    import slowfast

    models_pkg = types.ModuleType("slowfast.models")
    models_pkg.__path__ = [os.path.join(os.path.dirname(slowfast.__file__), "models")]
    sys.modules["slowfast.models"] = models_pkg
    slowfast.models = models_pkg

    import slowfast.models.video_model_builder as vmb

    return vmb


def _slowfast(config_file):
    vmb = _slowfast_import()
    from slowfast.config.defaults import get_cfg

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ARGS.slowfast_src, config_file))
    model = vmb.MViT(cfg)
    commit_file = os.path.join(ARGS.slowfast_src, "COMMIT")
    commit = open(commit_file).read().strip() if os.path.exists(commit_file) else "unknown commit"
    return model, (
        f"SlowFast (facebookresearch/SlowFast, GitHub {commit}; not on PyPI), "
        f"slowfast.models.video_model_builder.MViT(cfg) with cfg = slowfast.config.defaults.get_cfg() "
        f"merged with {config_file} (MVIT.SEPARATE_QKV={cfg.MVIT.SEPARATE_QKV}, "
        f"MVIT.USE_ABS_POS={cfg.MVIT.USE_ABS_POS}, MVIT.SEP_POS_EMBED={cfg.MVIT.SEP_POS_EMBED}, "
        f"MVIT.REL_POS_SPATIAL={cfg.MVIT.REL_POS_SPATIAL}); "
        f"on torch {version('torch')} with pytorchvideo {version('pytorchvideo')} and "
        f"fvcore {version('fvcore')}; {SLOWFAST_SHIMS}"
    )


def slowfast_mvitv2_s_16x4():
    return _slowfast("configs/Kinetics/MVITv2_S_16x4.yaml")


def slowfast_mvit_b_16x4():
    return _slowfast("configs/Kinetics/MVIT_B_16x4_CONV.yaml")


# ---------------------------------------------------------------- main


def key_shapes(model):
    return {k: list(v.shape) for k, v in sorted(model.state_dict().items())}


def to_json(source, keys):
    """The JSON text, one key per line."""
    lines = [f"  {json.dumps(k)}: {json.dumps(shape)}" for k, shape in keys.items()]
    return '{\n "source": ' + json.dumps(source) + ',\n "keys": {\n' + ",\n".join(lines) + "\n }\n}\n"


def main():
    global ARGS
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="folder to write the JSON files into")
    parser.add_argument("--shim-dir", default="/work/shared/reference", help="folder of torchvision_cpu.py")
    parser.add_argument(
        "--slowfast-src",
        default=os.path.join(os.path.dirname(here), "slowfast"),
        help="SlowFast source tree (holding slowfast/ and configs/)",
    )
    parser.add_argument("--only", nargs="*", help="file names to write (default: all)")
    ARGS = parser.parse_args()

    import torch

    # torchvision is installed, and timm, pytorchvideo and SlowFast import it when it is: make
    # `import torchvision` work on the CPU-only torch before any of them runs.
    _torchvision()
    os.makedirs(ARGS.out_dir, exist_ok=True)
    failed = []
    for file_name, builder_name, required in MODELS:
        if ARGS.only and file_name not in ARGS.only:
            continue
        torch.manual_seed(0)
        try:
            model, source = globals()[builder_name]()
        except Exception as error:  # report and go on with the others
            print(f"{file_name}: NOT BUILT ({type(error).__name__}: {error})", file=sys.stderr)
            if required:
                failed.append(file_name)
            continue
        keys = key_shapes(model)
        with open(os.path.join(ARGS.out_dir, file_name), "w") as f:
            f.write(to_json(source, keys))
        print(f"{file_name}: {len(keys)} keys, {sum(p.numel() for p in model.state_dict().values())} values")
    if failed:
        sys.exit(f"required models not built: {', '.join(failed)}")


if __name__ == "__main__":
    main()
