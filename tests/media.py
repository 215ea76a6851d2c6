"""Real media files for the tests, written with PyAV.

Frames can carry their own number: the left half of the picture is grey level
16 * (n % 16) + 8 and the right half 16 * (n // 16) + 8, so a frame's number can be read
back from the preprocessed clip that reaches the model, after compression, resizing and
cropping (flat grey survives all three).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from mvit_cli.synth import clip_spec, render


def numbered_frame(number: int, width: int, height: int) -> np.ndarray:
    """Frame `number` (modulo 256) drawn as two grey halves."""
    number %= 256
    image = np.empty((height, width, 3), np.uint8)
    image[:, : width // 2] = 16 * (number % 16) + 8
    image[:, width // 2:] = 16 * (number // 16) + 8
    return image


def read_number(view: np.ndarray) -> int:
    """Frame number from one (H, W, 3) uint8 frame of a centre-cropped view."""
    width = view.shape[1]
    low = view[:, : width // 4].mean()
    high = view[:, 3 * width // 4:].mean()
    return int(round((high - 8) / 16)) * 16 + int(round((low - 8) / 16))


def write_video(path: Path, frames: int = 30, fps: float = 30, width: int = 64, height: int = 48,
                codec: str = "libx264", pts_ms: list[int] | None = None) -> Path:
    """A numbered video; `pts_ms` gives each frame's time in ms (variable frame rate)."""
    pix_fmt = "yuv420p"
    with av.open(str(path), "w") as container:
        rate = Fraction(fps).limit_denominator(1000)
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for number in range(frames):
            frame = av.VideoFrame.from_ndarray(numbered_frame(number, width, height), "rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[number], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_colour_video(path: Path, colour: tuple[int, int, int], frames: int = 6,
                       fps: float = 30, width: int = 64, height: int = 48) -> Path:
    """An H.264 video of one colour: what a decoder gives back is then known at every pixel
    (within the codec's rounding)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        picture = np.full((height, width, 3), colour, np.uint8)
        for _ in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = int(16000 * seconds)
        tone = (np.sin(np.arange(samples) / 10) * 0.3).astype(np.float32)[None]
        frame_size = 1024
        for start in range(0, samples, frame_size):
            chunk = tone[:, start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp",
                                               layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_image(path: Path, width: int = 40, height: int = 30) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


# A long video of known motions, joined from `mvit synth` clips (for timelines).
ORDER = ["moving left", "growing", "rotating clockwise", "moving up"]
SECONDS, FPS = 3, 25


def join_clips(path: Path, order=ORDER, seed=9000) -> Path:
    """One video of `SECONDS` s per motion, in order, from synth clips the demo never saw."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        for k, label in enumerate(order):
            frames = render(clip_spec(seed + k, label, 0))
            for i in np.linspace(0, len(frames) - 1, SECONDS * FPS).round().astype(int):
                image = np.asarray(Image.fromarray(frames[i]).resize((128, 96)))
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
