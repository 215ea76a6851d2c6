"""How far bf16 moves a weights' answers from fp32, on clips of their own kind.

For every video under the folders given: the same views (`Pipeline.preprocess`, the
classify path's decoding and sampling) through the fp32 pipeline and the bf16 one
(`load(..., precision="bf16")`: the body cast once, the head in fp32), then the top-1
agreement and the largest change of any class's probability. The last line is the
registry's `bf16` record for these weights; `--precision auto` picks bf16 on CPUs with
native bf16 only where it passes (mvit_cli.devices.bf16_passes).

    python benchmarks/bench_bf16_accuracy.py --weights motion-demo data/eval-classic data/eval-wide

Speed is not measured here (bench_backends.py does): only what bf16 changes in the answers.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

import mvit_cli
from mvit_cli.cpu_gates import gates
from mvit_cli.devices import BF16_AGREEMENT, BF16_SCORE_CHANGE, bf16_passes
from mvit_cli.media.decode import media_kind

from machine import cpu_model


def compare(weights: str, folders: list[Path], reference_path: bool = False,
            backend: str = "torch") -> dict:
    fp32 = mvit_cli.load(weights, device="cpu", precision="fp32")
    bf16 = mvit_cli.load(weights, device="cpu", precision="bf16", backend=backend)
    if backend == "torch":
        bf16.model.fast_paths = not reference_path
    clips = agree = 0
    worst = 0.0
    for folder in folders:
        videos = sorted(p for p in folder.rglob("*") if p.is_file() and media_kind(p) == "video")
        folder_clips = folder_agree = 0
        folder_worst = 0.0
        for path in videos:
            views = fp32.preprocess(path)
            a = fp32.forward(views).softmax(-1).mean(0)
            b = bf16.forward(views).softmax(-1).mean(0)
            folder_clips += 1
            folder_agree += int(a.argmax() == b.argmax())
            folder_worst = max(folder_worst, float((a - b).abs().max()))
        print(f"{folder}: {folder_clips} clips, top-1 agrees on {folder_agree}, largest "
              f"probability change {folder_worst:.4f}")
        clips, agree, worst = clips + folder_clips, agree + folder_agree, max(worst, folder_worst)
    return {"clips": clips, "top1_agreement": round(agree / max(clips, 1), 4),
            "max_score_change": round(worst, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--weights", default="motion-demo")
    parser.add_argument("--reference-path", action="store_true",
                        help="Run bf16 through the reference path (model.fast_paths off): "
                        "torch's fused attention instead of bf16_attention's GEMMs, to see "
                        "what that path changes.")
    parser.add_argument("--backend", default="torch", choices=("torch", "openvino"),
                        help="Whose bf16 to hold to torch fp32: torch's, or OpenVINO's "
                        "(`--backend openvino --precision bf16`; needs the openvino extra).")
    args = parser.parse_args()
    print(f"{cpu_model()}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"native bf16: {gates().native_bf16}")
    record = compare(args.weights, args.folders, args.reference_path, args.backend)
    verdict = "passes" if bf16_passes(record) else "does not pass"
    print(f"all: {record['clips']} clips, top-1 agreement {record['top1_agreement']:.2%}, "
          f"largest probability change {record['max_score_change']:.4f}: {verdict} the bar "
          f"({BF16_AGREEMENT:.1%}, {BF16_SCORE_CHANGE})")
    folders = ", ".join(f.name for f in args.folders)
    print(f'bf16 = {{ clips = {record["clips"]}, top1_agreement = {record["top1_agreement"]}, '
          f'max_score_change = {record["max_score_change"]}, measured_on = "{folders}, '
          f'{datetime.date.today()}" }}')


if __name__ == "__main__":
    main()
