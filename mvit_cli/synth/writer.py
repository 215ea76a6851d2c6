
"""Encoding clips into video files, the same bytes for the same spec."""

from __future__ import annotations

import sys
from pathlib import Path

# PyAV is imported with this module, not when the first clip is written: decord 0.6.0
# bundled an older libvpx and exported its symbols process-wide, so a PyAV loaded after it
# could not open its VP9 encoder. (decord2, which mvit now uses, does not; the order costs
# nothing and keeps an older decord working.)
import av
import numpy as np

from ..errors import MvitError
from ..fileio import atomic_path
from .formats import FORMATS
from .rendering import render
from .spec import ClipSpec


class SynthError(MvitError):
    """A clip could not be written; the message is one line for the user."""


def encode(frames: np.ndarray, spec: ClipSpec, path: Path) -> None:
    """Write frames as a video in the spec's container, codec and frame rate."""
    form = FORMATS[spec.extension]
    # Bit-exact muxing leaves out random file ids and version strings, so the same seed
    # writes the same bytes (see FORMATS for x264's part; small frames gain nothing from
    # encoder threads).
    with av.open(str(path), "w", format=form.container,
                 container_options={"fflags": "+bitexact"}) as container:
        options = {"threads": "1", **dict(form.options)}
        if spec.quality and "crf" in options:
            options["crf"] = str(spec.quality)
        stream = container.add_stream(form.codec, rate=spec.fps, options=options)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        if form.codec == "mpeg4":  # its default 200 kb/s smears small frames
            bits_per_pixel = 1.5 if not spec.quality else 1.5 * 2 ** ((18 - spec.quality) / 6)
            stream.bit_rate = int(spec.width * spec.height * float(spec.fps) * bits_per_pixel)
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_clip(spec: ClipSpec, path: Path) -> None:
    """Render and encode one clip to `path`, which appears only once complete.

    Writing goes to a temporary name first, so an interrupted run leaves no truncated video
    for a later training run to trip over.
    """
    try:
        with atomic_path(path, suffix=".part") as partial:
            encode(render(spec), spec, partial)
    except (OSError, av.FFmpegError) as exc:
        hint = ""
        if FORMATS[spec.extension].codec.startswith("libvpx") and "decord" in sys.modules:
            hint = " (decord was loaded before PyAV, whose VP9 encoder then fails: import av first)"
        raise SynthError(f"cannot write {path}: {exc}{hint}") from exc
