"""A second motion generator, for checking motion-demo on clips no training run has seen.

`mvit synth` (either variety) draws a sprite once and warps it per frame; this one draws
vector outlines per frame at 4x and downsamples, with its own shapes (house, tee, flag,
bolt, chevron, pac-man, kite, drop), letters in other typefaces (DejaVu Serif and Mono
when the system has them), its own textures (dots, rings, marble, halves), backgrounds
(bricks, bokeh, plasma, vignette, diamonds), still distractors (letters and outlines), and
its own ranges of sizes, speeds, durations, frame rates and codecs. Training never imports
it: it lives here, beside the benchmarks, not in the package.

    python benchmarks/motion_holdout.py write OUT --per-class 10 --seed 1
    python benchmarks/motion_holdout.py score OUT --weights motion-demo

`score` runs `mvit classify` (the user's path: decoding, sampling, resizing) over OUT and
counts the top labels that match the class folders, per class.
"""

from __future__ import annotations

import argparse
import csv
import math
import multiprocessing
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av  # before decord (see mvit_cli.synth)
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

LABELS = ("moving left", "moving right", "moving up", "moving down", "rotating clockwise",
          "rotating counterclockwise", "growing", "shrinking")
SHAPES = ("house", "tee", "flag", "bolt", "chevron", "pacman", "kite", "drop", "letter")
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf",
         "/usr/share/fonts/truetype/dejavu/DejaVuSerif-BoldItalic.ttf")
GLYPHS = "AEFGJKLPQRTY2345679bdfhkpqrty"  # no symmetry under rotation
TEXTURES = ("plain", "dots", "rings", "marble", "halves")
BACKGROUNDS = ("bricks", "bokeh", "plasma", "vignette", "diamonds")
RATES = (Fraction(6), Fraction(10), Fraction(24), Fraction(30000, 1001), Fraction(48),
         Fraction(60))
CODECS = (("mp4", "mp4", "libx264"), ("webm", "webm", "libvpx"), ("avi", "avi", "mjpeg"),
          ("mov", "mov", "libx264"))
SUPER = 4  # supersampling factor of the outlines


def outline(shape: str, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Unit-size outline pointing right, centred on 0, inside the unit circle."""
    if shape == "house":
        return [(0.9, 0), (0.2, -0.7), (-0.7, -0.7), (-0.7, 0.7), (0.2, 0.7)]
    if shape == "tee":
        return [(-0.8, -0.15), (0.5, -0.15), (0.5, -0.7), (0.8, -0.7), (0.8, 0.7), (0.5, 0.7),
                (0.5, 0.15), (-0.8, 0.15)]
    if shape == "flag":
        return [(-0.8, -0.9), (-0.6, -0.9), (-0.6, -0.8), (0.8, -0.45), (-0.6, -0.1),
                (-0.6, 0.9), (-0.8, 0.9)]
    if shape == "bolt":
        return [(-0.3, -0.9), (0.4, -0.9), (0.05, -0.15), (0.5, -0.15), (-0.35, 0.9),
                (-0.05, 0.1), (-0.5, 0.1)]
    if shape == "chevron":
        return [(0.9, 0), (0.1, 0.8), (-0.3, 0.8), (0.4, 0), (-0.3, -0.8), (0.1, -0.8)]
    if shape == "pacman":
        mouth = rng.uniform(0.4, 0.8)
        angles = np.linspace(mouth, 2 * math.pi - mouth, 60)
        return [(0.0, 0.0)] + [(0.9 * math.cos(a), 0.9 * math.sin(a)) for a in angles]
    if shape == "kite":
        return [(0.95, 0), (0, 0.45), (-0.6, 0), (0, -0.45)]
    if shape == "drop":
        angles = np.linspace(0, 2 * math.pi, 80, endpoint=False)
        return [((0.55 * math.cos(a) - 0.2) + 0.75 * max(0.0, math.cos(a)) ** 8,
                 0.55 * math.sin(a)) for a in angles]
    raise ValueError(shape)


def draw_object(size_px: tuple[int, int], centre, size, angle, shape, glyph, font_path,
                rng_seed) -> Image.Image:
    """Coverage (L, at SUPER x) of the object with its centre, diameter and angle."""
    w, h = size_px
    canvas = Image.new("L", (w * SUPER, h * SUPER), 0)
    cx, cy = centre[0] * SUPER, centre[1] * SUPER
    r = size / 2 * SUPER
    if shape == "letter":
        font = (ImageFont.truetype(font_path, 200) if font_path
                else ImageFont.load_default(size=200))
        glyph_image = Image.new("L", (400, 400), 0)
        ImageDraw.Draw(glyph_image).text((100, 50), glyph, fill=255, font=font)
        glyph_image = glyph_image.crop(glyph_image.getbbox())
        scale = 2 * r / math.hypot(*glyph_image.size)
        glyph_image = glyph_image.resize((max(1, round(glyph_image.width * scale)),
                                          max(1, round(glyph_image.height * scale))),
                                         Image.Resampling.BICUBIC)
        glyph_image = glyph_image.rotate(-angle, resample=Image.Resampling.BICUBIC, expand=True)
        canvas.paste(glyph_image, (round(cx - glyph_image.width / 2),
                                   round(cy - glyph_image.height / 2)), glyph_image)
        return canvas
    points = outline(shape, np.random.default_rng(rng_seed))
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    placed = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in points]
    ImageDraw.Draw(canvas).polygon(placed, fill=255)
    return canvas


def texture(kind: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) in [0, 1], fixed to the screen for backgrounds."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "bricks":
        bh = rng.uniform(8, 24)
        bw = bh * rng.uniform(1.8, 3)
        row = np.floor(ys / bh)
        shifted = xs + (row % 2) * bw / 2
        mortar = (ys % bh < 2) | (shifted % bw < 2)
        return np.where(mortar, 1.0, 0.2 + 0.3 * ((row * 7 + np.floor(shifted / bw)) % 3) / 2)
    if kind == "bokeh":
        image = Image.new("L", (w, h), int(rng.integers(0, 80)))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(10, 40))):
            x, y, radius = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(3, 0.15 * w)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                         fill=int(rng.integers(100, 256)))
        return np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(2, 6))),
                          np.float32) / 255
    if kind == "plasma":
        t = sum(np.sin(xs * rng.uniform(0.01, 0.08) + ys * rng.uniform(-0.06, 0.06)
                       + rng.uniform(0, 6)) for _ in range(4))
        return (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    if kind == "vignette":
        d = np.hypot(xs - rng.uniform(0.3, 0.7) * w, ys - rng.uniform(0.3, 0.7) * h)
        return np.clip(d / (0.8 * max(w, h)), 0, 1) + rng.normal(0, 0.03, (h, w))
    if kind == "diamonds":
        period = rng.uniform(10, 40)
        return ((np.abs((xs % period) - period / 2) + np.abs((ys % period) - period / 2))
                < period / 3).astype(np.float32)
    raise ValueError(kind)


def object_texture(kind: str, w: int, h: int, centre, size, angle, rng) -> np.ndarray:
    """(H, W) in [0, 1], attached to the object: it moves, turns and scales with it."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    cos, sin = math.cos(math.radians(-angle)), math.sin(math.radians(-angle))
    u = ((xs - centre[0]) * cos - (ys - centre[1]) * sin) / (size / 2)
    v = ((xs - centre[0]) * sin + (ys - centre[1]) * cos) / (size / 2)
    if kind == "plain":
        return np.zeros((h, w), np.float32)
    if kind == "dots":
        return ((np.hypot((u * 3) % 1 - 0.5, (v * 3) % 1 - 0.5)) < 0.25).astype(np.float32)
    if kind == "rings":
        return (0.5 + 0.5 * np.sin(np.hypot(u + 0.3, v) * 14)).astype(np.float32)
    if kind == "marble":
        return (0.5 + 0.5 * np.sin(6 * u + 3 * np.sin(4 * v))).astype(np.float32)
    if kind == "halves":
        return (v > 0).astype(np.float32)
    raise ValueError(kind)


def luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def pick(rng, accept):
    while True:
        c = rng.integers(0, 256, 3)
        if accept(luma(c)):
            return c.astype(np.float32)


def clip(seed: int, label: str, index: int, fonts: list[str]
         ) -> tuple[np.ndarray, Fraction, dict]:
    """(frames (T, H, W, 3) uint8, frame rate, settings) of one clip."""
    rng = np.random.default_rng([seed, LABELS.index(label), index, 77])
    short = int(rng.integers(48, 241)) * 2
    aspect = float(rng.choice([1.0, 4 / 3, 16 / 9, 0.75]))
    w, h = 2 * round(short * max(aspect, 1) / 2), 2 * round(short / min(aspect, 1) / 2)
    w, h = min(w, 480), min(h, 480)
    fps = RATES[int(rng.integers(len(RATES)))]
    duration = rng.uniform(1.5, 8.0)
    frames = max(12, round(duration * float(fps)))
    duration = frames / float(fps)
    shape = str(rng.choice(SHAPES))
    glyph = str(rng.choice(list(GLYPHS)))
    font = str(rng.choice(fonts)) if fonts else ""
    dark = rng.random() < 0.5
    contrast = rng.uniform(55, 110)
    obj = pick(rng, (lambda y: y <= 200 - contrast) if dark else (lambda y: y >= 55 + contrast))
    far = (lambda y: y >= luma(obj) + contrast) if dark else (lambda y: y <= luma(obj) - contrast)
    back1, back2 = pick(rng, far), pick(rng, far)
    obj2 = pick(rng, (lambda y: y <= min(luma(back1), luma(back2)) - contrast) if dark
                else (lambda y: y >= max(luma(back1), luma(back2)) + contrast))
    ground = back1 + texture(str(rng.choice(BACKGROUNDS)), w, h, rng)[..., None] * (back2 - back1)
    # Still distractors: letters and outlines that never move.
    for _ in range(int(rng.integers(0, 4))):
        size = rng.uniform(0.08, 0.25) * min(w, h)
        cover = draw_object((w, h), (rng.uniform(size, w - size), rng.uniform(size, h - size)),
                            size, rng.uniform(0, 360), str(rng.choice(SHAPES)),
                            str(rng.choice(list(GLYPHS))), font, int(rng.integers(1 << 30)))
        cover = np.asarray(cover.reduce(SUPER), np.float32)[..., None] / 255
        ground = ground + cover * (rng.integers(0, 256, 3).astype(np.float32) - ground)
    kind = str(rng.choice(["plain", "plain"] + list(TEXTURES[1:])))
    m = min(w, h)
    angle0, turn = rng.uniform(0, 360), 0.0
    if label.startswith("moving"):
        size = rng.uniform(0.15, 0.35) * m
        horizontal = label in ("moving left", "moving right")
        length = w if horizontal else h
        travel = rng.uniform(0.35, 0.85) * (length - size)
        a0 = rng.uniform(size / 2, length - size / 2 - travel)
        a1 = a0 + travel
        if label in ("moving left", "moving up"):
            a0, a1 = length - a0, length - a1
        across = rng.uniform(size / 2, (h if horizontal else w) - size / 2)
        start = (a0, across) if horizontal else (across, a0)
        end = (a1, across) if horizontal else (across, a1)
        sizes = (size, size)
    elif label.startswith("rotating"):
        size = rng.uniform(0.35, 0.6) * m
        start = end = (rng.uniform(size / 2, w - size / 2), rng.uniform(size / 2, h - size / 2))
        total = rng.uniform(60, 7 * 95)
        turn = total if label == "rotating clockwise" else -total
        sizes = (size, size)
    else:
        big = rng.uniform(0.45, 0.85) * m
        small = big / rng.uniform(1.5, 3.0)
        start = end = (rng.uniform(big / 2, w - big / 2), rng.uniform(big / 2, h - big / 2))
        sizes = (small, big) if label == "growing" else (big, small)
    noise = rng.uniform(0, 5)
    seed_outline = int(rng.integers(1 << 30))
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        f = i / (frames - 1)
        centre = (start[0] + (end[0] - start[0]) * f, start[1] + (end[1] - start[1]) * f)
        size = sizes[0] * (sizes[1] / sizes[0]) ** f
        angle = angle0 + turn * f
        cover = draw_object((w, h), centre, size, angle, shape, glyph, font, seed_outline)
        cover = np.asarray(cover.reduce(SUPER), np.float32)[..., None] / 255
        colour = obj + object_texture(kind, w, h, centre, size, angle, rng)[..., None] * (
            obj2 - obj)
        frame = ground + cover * (colour - ground) + rng.normal(0, noise, (h, w, 1))
        out[i] = np.clip(np.round(frame), 0, 255)
    settings = {"shape": shape if shape != "letter" else f"letter {glyph}", "texture": kind,
                "size": f"{w}x{h}", "fps": float(fps), "seconds": round(duration, 2),
                "turn": round(turn), "font": Path(font).name if font else "default"}
    return out, fps, settings


def encode(frames: np.ndarray, fps: Fraction, path: Path, codec: str, container: str,
           rng: np.random.Generator) -> None:
    with av.open(str(path), "w", format=container) as output:
        stream = output.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(int(rng.integers(20, 31))), "preset": "fast"}
        elif codec == "libvpx":
            stream.bit_rate = int(frames.shape[1] * frames.shape[2] * float(fps) * 0.8)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def write_one(out: Path, seed: int, label: str, index: int, fonts: list[str]) -> list:
    """Render and encode one clip; its settings row. Depends only on (seed, label, index)."""
    frames, fps, settings = clip(seed, label, index, fonts)
    rng = np.random.default_rng([seed, LABELS.index(label), index, 78])
    extension, container, codec = CODECS[int(rng.integers(len(CODECS)))]
    folder = out / label.replace(" ", "_")
    folder.mkdir(exist_ok=True)
    path = folder / f"{index:04d}.{extension}"
    encode(frames, fps, path, codec, container, rng)
    return [str(path), label, *settings.values()]


def write(out: Path, per_class: int, seed: int, jobs: int = 1) -> None:
    """Every clip of (seed, per_class); `jobs` processes write the same bytes as one."""
    fonts = [f for f in FONTS if Path(f).exists()]
    if not fonts:
        print("note: no DejaVu fonts here; letters use Pillow's own font", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    work = [(out, seed, label, index, fonts) for index in range(per_class) for label in LABELS]
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            rows = pool.starmap(write_one, work, chunksize=1)
    else:
        rows = [write_one(*job) for job in work]
    with open(out / "settings.csv", "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(["path", "label", "shape", "texture", "size", "fps", "seconds", "turn",
                        "font"])
        table.writerows(rows)


def score(folder: Path, weights: str, mvit: str) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        rows_path = Path(scratch) / "rows.csv"
        subprocess.run([mvit, "classify", str(folder), "--weights", weights, "-o",
                        str(rows_path), "--quiet"], check=False)
        rows = list(csv.DictReader(open(rows_path, newline="")))
    per_class: dict[str, list[int]] = {label: [0, 0] for label in LABELS}
    wrong = []
    for row in rows:
        truth = Path(row["path"]).parent.name.replace("_", " ")
        if truth not in per_class:
            continue
        per_class[truth][1] += 1
        if row["label_1"] == truth:
            per_class[truth][0] += 1
        else:
            wrong.append((Path(row["path"]).relative_to(folder.resolve()),
                          row["label_1"] or row["error"]))
    right = sum(r for r, _ in per_class.values())
    total = sum(n for _, n in per_class.values())
    for label, (r, n) in per_class.items():
        print(f"{label:28s} {r:3d} / {n:3d}")
    print(f"{'all':28s} {right:3d} / {total:3d}  ({100 * right / max(total, 1):.1f}%)")
    for path, said in wrong:
        print(f"  wrong: {path}: {said}")
    return right / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    w = commands.add_parser("write", help="write clips, one folder per class")
    w.add_argument("out", type=Path)
    w.add_argument("--per-class", type=int, default=10)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--jobs", type=int, default=1, help="processes (the same clips as one)")
    s = commands.add_parser("score", help="classify a folder and count the right top labels")
    s.add_argument("folder", type=Path)
    s.add_argument("--weights", default="motion-demo")
    s.add_argument("--mvit", default=str(Path(sys.executable).with_name("mvit")))
    args = parser.parse_args()
    if args.command == "write":
        write(args.out, args.per_class, args.seed, args.jobs)
    else:
        score(args.folder, args.weights, args.mvit)


if __name__ == "__main__":
    main()
