"""The moving object as a sprite: its silhouette, marker and fill drawn once, large, then
warped into each frame."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .spec import ClipSpec

# Objects are drawn once at this size (fitting in a circle of diameter SPRITE) and shrunk
# from the nearest power-of-two copy per frame, which keeps edges smooth at every scale.
SPRITE = 256


def _polygon(points: list[tuple[float, float]], c: float, r: float) -> list[tuple[float, float]]:
    """Unit-circle points to sprite pixels."""
    return [(c + r * px, c + r * py) for px, py in points]


def _regular(n: int, phase: float = 0.0) -> list[tuple[float, float]]:
    return [(math.cos(phase + 2 * math.pi * k / n), math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)]


def _glyph_mask(glyph: str, size: int, radius: float, slant: float = 0.0,
                stretch: float = 1.0) -> Image.Image:
    """A bold character centred in a (size, size) mask, fitting in a circle of `radius`;
    `slant` shears it (italics) and `stretch` widens or narrows it, other typefaces from the
    one font Pillow ships."""
    font = ImageFont.load_default(size=size)
    canvas = Image.new("L", (3 * size, 2 * size), 0)  # room for slanted, widened ones
    ImageDraw.Draw(canvas).text((size, size // 4), glyph, fill=255, font=font)
    canvas = canvas.filter(ImageFilter.MaxFilter(2 * (size // 40) + 1))  # thin strokes vanish
    if slant or stretch != 1.0:
        canvas = canvas.transform(canvas.size, Image.Transform.AFFINE,
                                  (1 / stretch, slant, -slant * size, 0, 1, 0),
                                  resample=Image.Resampling.BILINEAR)
    canvas = canvas.crop(canvas.getbbox())
    scale = 2 * radius / math.hypot(*canvas.size)
    canvas = canvas.resize((max(1, round(canvas.width * scale)),
                            max(1, round(canvas.height * scale))), Image.Resampling.LANCZOS)
    mask = Image.new("L", (size, size), 0)
    mask.paste(canvas, ((size - canvas.width) // 2, (size - canvas.height) // 2))
    return mask


def _body(spec: ClipSpec, rng: np.random.Generator) -> Image.Image:
    """The object's silhouette, pointing right (angle 0), in a circle of radius ~SPRITE/2."""
    c, r = SPRITE / 2, SPRITE / 2 - 2
    if spec.shape == "letter":
        return _glyph_mask(spec.glyph, SPRITE, r, spec.slant, spec.stretch)
    mask = Image.new("L", (SPRITE, SPRITE), 0)
    draw = ImageDraw.Draw(mask)
    box = lambda hx, hy: [c - r * hx, c - r * hy, c + r * hx, c + r * hy]  # noqa: E731
    shape = spec.shape
    if shape == "circle":
        draw.ellipse(box(1, 1), fill=255)
    elif shape == "ring":
        draw.ellipse(box(1, 1), fill=255)
        inner = rng.uniform(0.45, 0.7)
        draw.ellipse(box(inner, inner), fill=0)
    elif shape == "ellipse":
        draw.ellipse(box(1, rng.uniform(0.35, 0.65)), fill=255)
    elif shape == "square":
        half = rng.uniform(0.66, 0.7)  # corners on the circle at 0.707
        draw.rounded_rectangle(box(half, half), radius=rng.uniform(0, 0.25) * r * half,
                               fill=255)
    elif shape == "bar":
        draw.rectangle(box(0.95, rng.uniform(0.2, 0.32)), fill=255)
    elif shape == "triangle":
        # Isosceles with a sharper apex than 60 degrees: it points somewhere, even turning.
        base = math.radians(rng.uniform(25, 45))
        points = [(1, 0), (-math.cos(base), math.sin(base)), (-math.cos(base), -math.sin(base))]
        draw.polygon(_polygon(points, c, r), fill=255)
    elif shape == "star":
        n, inner = int(rng.integers(5, 8)), rng.uniform(0.4, 0.55)
        points = [(p[0] * (1 if k % 2 == 0 else inner), p[1] * (1 if k % 2 == 0 else inner))
                  for k, p in enumerate(_regular(2 * n))]
        draw.polygon(_polygon(points, c, r), fill=255)
    elif shape == "polygon":
        draw.polygon(_polygon(_regular(int(rng.integers(5, 9))), c, r), fill=255)
    elif shape == "cross":
        arm = rng.uniform(0.2, 0.35)
        draw.rectangle(box(0.7, arm), fill=255)
        draw.rectangle(box(arm, 0.7), fill=255)
    elif shape == "arrow":
        shaft = rng.uniform(0.16, 0.26)
        draw.rectangle([c - 0.9 * r, c - shaft * r, c + 0.25 * r, c + shaft * r], fill=255)
        draw.polygon(_polygon([(0.95, 0), (0.2, 0.55), (0.2, -0.55)], c, r), fill=255)
    elif shape == "ell":
        t = rng.uniform(0.3, 0.45)
        draw.rectangle([c - 0.6 * r, c - 0.7 * r, c + (t - 0.6) * r, c + 0.7 * r], fill=255)
        draw.rectangle([c - 0.6 * r, c + (0.7 - t) * r, c + 0.6 * r, c + 0.7 * r], fill=255)
    elif shape == "blob":  # a smooth random outline: low harmonics of the radius
        angles = np.linspace(0, 2 * math.pi, 180, endpoint=False)
        radius = np.ones_like(angles)
        for k in range(1, 5):
            radius += rng.uniform(0.05, 0.25) / k * np.cos(k * angles + rng.uniform(0, 6.3))
        radius /= radius.max()
        draw.polygon([(c + r * q * math.cos(a), c + r * q * math.sin(a))
                      for q, a in zip(radius, angles, strict=True)], fill=255)
    elif shape == "heart":  # the classic parametric heart, tip pointing right
        t = np.linspace(0, 2 * math.pi, 200, endpoint=False)
        hx = 16 * np.sin(t) ** 3
        hy = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        scale = 1 / np.hypot(hx, hy - 2).max()
        draw.polygon([(c - r * scale * (y - 2), c + r * scale * x)
                      for x, y in zip(hx, hy, strict=True)], fill=255)
    elif shape == "crescent":
        draw.ellipse(box(1, 1), fill=255)
        shift, inner = rng.uniform(0.3, 0.55), rng.uniform(0.75, 0.95)
        draw.ellipse([c + (shift - inner) * r, c - inner * r, c + (shift + inner) * r,
                      c + inner * r], fill=0)
    elif shape == "key":  # a ring on a shaft with one tooth
        draw.ellipse([c - 0.95 * r, c - 0.45 * r, c - 0.05 * r, c + 0.45 * r], fill=255)
        draw.ellipse([c - 0.68 * r, c - 0.16 * r, c - 0.34 * r, c + 0.16 * r], fill=0)
        draw.rectangle([c - 0.2 * r, c - 0.15 * r, c + 0.9 * r, c + 0.15 * r], fill=255)
        draw.rectangle([c + 0.5 * r, c + 0.15 * r, c + 0.78 * r, c + 0.45 * r], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    if rng.random() < 0.5:  # either handedness of chiral shapes
        mask = mask.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return mask


def _marker(body: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A spot inside the body, off centre (towards one end of elongated shapes, which lie
    along x): a turn of the whole object then shows even where its outline hardly does."""
    empty = Image.new("L", body.size, 0)
    c, r = SPRITE / 2, SPRITE / 2 - 2
    for attempt in range(12):
        direction = (rng.choice([0.0, math.pi]) + rng.uniform(-0.3, 0.3) if attempt < 4
                     else rng.uniform(0, 2 * math.pi))
        distance, radius = rng.uniform(0.4, 0.6) * r, rng.uniform(0.15, 0.25) * r
        x, y = c + distance * math.cos(direction), c + distance * math.sin(direction)
        disk = empty.copy()
        ImageDraw.Draw(disk).ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
        spot = np.minimum(np.asarray(disk), np.asarray(body))
        if (spot > 127).sum() >= 0.5 * math.pi * radius * radius:
            return Image.fromarray(spot)
    return empty


def _fill_pattern(spec: ClipSpec, rng: np.random.Generator) -> Image.Image:
    """The object's texture (how much of the second colour, 0-255), drawn on the sprite so
    that it turns and scales with the object."""
    if spec.fill == "solid":
        return Image.new("L", (SPRITE, SPRITE), 0)
    ys, xs = np.mgrid[0:SPRITE, 0:SPRITE].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    along = xs * math.cos(theta) + ys * math.sin(theta)
    if spec.fill == "stripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * along / rng.uniform(20, 80))
    elif spec.fill == "gradient":
        t = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    elif spec.fill == "noise":
        cells = int(rng.integers(3, 10))
        grid = rng.random((cells, cells)).astype(np.float32)
        t = np.asarray(Image.fromarray(grid, "F").resize((SPRITE, SPRITE),
                                                          Image.Resampling.BICUBIC))
    else:
        raise ValueError(f"unknown fill {spec.fill!r}")
    return Image.fromarray(np.round(255 * np.clip(t, 0, 1)).astype(np.uint8))


def sprite_levels(spec: ClipSpec, rng: np.random.Generator) -> list[Image.Image]:
    """The object as an RGB image (red: body coverage, green: marker, blue: the second
    colour's share of the fill), halved repeatedly."""
    body = _body(spec, rng)
    marker = _marker(body, rng) if spec.marker else Image.new("L", body.size, 0)
    pattern = _fill_pattern(spec, np.random.default_rng([spec.seed, 3]))
    sprite = Image.merge("RGB", (body, marker, pattern))
    levels = [sprite]
    while levels[-1].width > 8:
        levels.append(levels[-1].reduce(2))
    return levels[::-1]  # smallest first


def coverage(levels: list[Image.Image], spec: ClipSpec, x: float, y: float, size: float,
             angle: float) -> np.ndarray:
    """(H, W, 3) float32 body and marker coverage, and the fill pattern, of one frame.

    One affine warp per frame places, turns and scales the sprite with sub-pixel accuracy;
    it samples from the smallest copy at least as large as the object, so it never skips
    over sprite pixels (which would alias edges).
    """
    sprite = next((s for s in levels if s.width >= size), levels[-1])
    k = sprite.width / size
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    half = sprite.width / 2
    # Output pixel q maps to sprite point half + k R(-angle) (q - centre).
    data = (k * cos, k * sin, half - k * (cos * x + sin * y),
            -k * sin, k * cos, half - k * (-sin * x + cos * y))
    warped = sprite.transform((spec.width, spec.height), Image.Transform.AFFINE, data,
                              resample=Image.Resampling.BILINEAR)
    return np.asarray(warped, np.float32) / 255
