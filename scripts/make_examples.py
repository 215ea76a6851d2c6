"""Write the example clips in examples/: one synthetic motion clip per chosen class.

    python scripts/make_examples.py

Seed 7 is used for nothing else: training runs use other seeds (the README's uses 3), and
the tests draw their clips from seeds of 100 and up.
"""

from __future__ import annotations

from pathlib import Path

from mvit_cli.synth import clip_spec, folder_name, write_clip

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SEED = 7
CLASSES = ("moving left", "rotating clockwise", "growing", "moving up")


def main() -> None:
    EXAMPLES.mkdir(exist_ok=True)
    for label in CLASSES:
        spec = clip_spec(SEED, label, 0)
        path = EXAMPLES / f"{folder_name(label)}.{spec.extension}"
        write_clip(spec, path)
        print(f"{path.name}: {spec.width}x{spec.height}, {float(spec.fps):.2f} fps")


if __name__ == "__main__":
    main()
