"""Synthetic motion clips: eight classes that only the object's motion tells apart.

Each clip shows one object over a static background, and its label says only how the object
moves. Everything else (shape, colours, background, size, speed, start, resolution, frame
rate, length, sensor noise, codec and container) is drawn at random, so a model trained on
these clips has to learn the motion: there is no other cue.

Two varieties: "classic", one flat-coloured object over a plain or patterned background
(what motion-demo was first trained on), and "wide", which adds textured objects, more
shapes, photo-like backgrounds with still distractor objects, lower contrast, blur,
exposure, and a wider range of speeds, durations, frame rates and compression. The label
still says only how the one moving object moves.

A clip is first drawn as a `ClipSpec` (a few numbers, cheap, fixed by the random
generator), then rendered from the spec alone. The same spec gives the ground-truth motion
per frame (`motion`) and the empty background (`background`), which is how the rendered
pixels can be checked against the label.

Coordinates are image coordinates: x to the right, y down, pixel (i, j) centred at
(i + 0.5, j + 0.5). Angles are degrees clockwise as seen on screen, which is the positive
mathematical sense once y points down.

The parts, each building on the ones before: `spec` (labels, choices, ClipSpec), `formats`
(containers and codecs), `colours`, `sampling` (drawing a spec), `trajectory` (the motion
per frame), `sprites` and `backgrounds` (the object and what it moves over), `rendering`
(frames), `writer` (video files) and `dataset` (the folder layout). Importing this package
imports PyAV (see `writer`).
"""

from __future__ import annotations

from .colours import luma
from .dataset import folder_name, rewrite_clip, write_dataset
from .formats import FORMAT_WEIGHTS, FORMATS, X264, VideoFormat
from .rendering import background, render, render_clip
from .sampling import MIN_SCALE_FACTOR, clip_spec, sample_clip
from .spec import (ASYMMETRIC_GLYPHS, BACKGROUNDS, FILLS, FRAME_RATES, GLYPHS, LABELS,
                   MIN_CONTRAST, NEEDS_MARKER, ROTATION_SHAPES, SHAPES, VARIETIES,
                   WIDE_BACKGROUNDS, WIDE_FRAME_RATES, WIDE_MIN_CONTRAST, WIDE_ROTATION_SHAPES,
                   WIDE_SHAPES, ClipSpec)
from .sprites import SPRITE
from .trajectory import Motion, motion
from .writer import SynthError, encode, write_clip

__all__ = [
    "ASYMMETRIC_GLYPHS", "BACKGROUNDS", "FILLS", "FORMATS", "FORMAT_WEIGHTS", "FRAME_RATES",
    "GLYPHS", "LABELS", "MIN_CONTRAST", "MIN_SCALE_FACTOR", "NEEDS_MARKER", "ROTATION_SHAPES",
    "SHAPES", "SPRITE", "VARIETIES", "WIDE_BACKGROUNDS", "WIDE_FRAME_RATES",
    "WIDE_MIN_CONTRAST", "WIDE_ROTATION_SHAPES", "WIDE_SHAPES", "X264", "ClipSpec", "Motion",
    "SynthError", "VideoFormat", "background", "clip_spec", "encode", "folder_name", "luma",
    "motion", "render", "render_clip", "rewrite_clip", "sample_clip", "write_clip",
    "write_dataset",
]
