"""The containers and codecs clips are written in, and how often each is drawn."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoFormat:
    container: str  # PyAV (FFmpeg) muxer name
    codec: str
    options: tuple[tuple[str, str], ...]


# Extension -> how to write it; every one is yuv420p, hence even frame sizes throughout.
# With its macroblock tree on, x264 now and then encodes the same frames differently (seen
# at widths that are no multiple of 16); off, runs repeat byte for byte.
X264 = (("preset", "veryfast"), ("x264-params", "mbtree=0"))
FORMATS: dict[str, VideoFormat] = {
    "mp4": VideoFormat("mp4", "libx264", X264 + (("crf", "18"),)),
    "avi": VideoFormat("avi", "mpeg4", ()),
    "webm": VideoFormat("webm", "libvpx-vp9", (("deadline", "realtime"), ("cpu-used", "8"),
                                               ("crf", "28"), ("b", "0"))),
    "mkv": VideoFormat("matroska", "libx264", X264 + (("crf", "20"),)),
}
FORMAT_WEIGHTS = {"mp4": 0.4, "avi": 0.2, "webm": 0.2, "mkv": 0.2}
