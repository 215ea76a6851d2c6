"""`mvit timeline --annotate`: a copy of the video with its labels drawn on it.

Every frame is decoded and encoded again (H.264, the same frame rate and the same frame
times, so the same duration and frame count) with a box at the top left naming what the
timeline says of that moment: the segment it falls in, as the JSON and subtitle outputs give
it (the user's --smooth and --threshold), or, without segments, the top labels of the
window standing for it. The text is sized from the frame's height and the box from the
font's own measure of each line, so it reads alike at 320x240 and at 1280x960. Audio is not
copied.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from ..jobs.segments import Segment, stretches, top_k
from ..jobs.timeline import VideoTimeline
from ..media.decode import _openable, decoded_frames

TEXT_HEIGHT = 1 / 24  # of the frame's height
SMALLEST_TEXT = 10  # pixels


def text_size(height: int) -> int:
    return max(SMALLEST_TEXT, round(height * TEXT_HEIGHT))


def _lines_by_time(video: VideoTimeline, labels: list[str], k: int,
                   found: list[Segment] | None):
    """(ends, lines): the text to show until each end, in time order."""
    if found is not None:
        ends, lines = [], []
        for segment in sorted(found, key=lambda s: s.start):
            ends += [segment.start, segment.end]
            lines += [[], [f"{segment.label}  {segment.score:.2f}"]]
        return np.array(ends), lines + [[]]
    ends = np.array([end for _, end in stretches(video.windows, video.duration)])
    lines = []
    for window in video.windows:
        names, scores = top_k(window, labels, k)
        lines.append([f"{name}  {score:.2f}"
                      for name, score in zip(names, scores, strict=True)])
    return ends, lines


def annotate(video: VideoTimeline, labels: list[str], target: Path, k: int = 3,
             found: list[Segment] | None = None) -> int:
    """Write the annotated copy, showing `found` (the segments) where given, else each
    window's top `k`; returns the frames written."""
    import av
    from PIL import ImageDraw, ImageFont

    ends, texts = _lines_by_time(video, labels, k, found)
    written = 0
    with _openable(Path(video.path)) as name, av.open(name) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        width, height = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
        size = text_size(height)
        font = ImageFont.load_default(size=size)
        margin, spacing = max(2, size // 4), max(2, size // 4)
        with atomic_path(target, suffix=target.suffix) as tmp, av.open(str(tmp), "w") as out:
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = stream.time_base
            for frame in decoded_frames(source, stream):
                seconds = frame.time or 0.0
                index = min(int(np.searchsorted(ends, seconds, side="right")), len(texts) - 1)
                picture = frame.to_image()
                if picture.size != (width, height):
                    picture = picture.crop((0, 0, width, height))
                lines = texts[index]
                if lines:
                    _draw_box(ImageDraw.Draw(picture, "RGBA"), lines, font, margin, spacing)
                copy = av.VideoFrame.from_image(picture)
                copy.pts, copy.time_base = frame.pts, stream.time_base
                for packet in encoder.encode(copy):
                    out.mux(packet)
                written += 1
            for packet in encoder.encode():
                out.mux(packet)
    return written


def _draw_box(draw, lines: list[str], font, margin: int, spacing: int) -> None:
    """The lines in white on a translucent black box that fits them, at the top left."""
    x = y = margin * 2
    boxes = []
    for line in lines:
        left, top, right, bottom = draw.textbbox((x, y), line, font=font)
        boxes.append((line, (x, y), (left, top, right, bottom)))
        y = bottom + spacing
    right = max(b[2][2] for b in boxes)
    bottom = boxes[-1][2][3]
    draw.rectangle((margin, margin, right + margin, bottom + margin), fill=(0, 0, 0, 150))
    for line, origin, _ in boxes:
        draw.text(origin, line, fill=(255, 255, 255, 255), font=font)
