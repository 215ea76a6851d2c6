"""`mvit timeline --annotate`: a copy of the video with its labels drawn on it.

Every frame is decoded and encoded again (H.264, the same frame rate and the same frame
times, so the same duration and frame count) with the top labels and scores of the window
standing for that moment drawn in a box at the top left. Audio is not copied.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from ..media.decode import _openable, decoded_frames
from ..jobs.timeline import VideoTimeline
from ..jobs.segments import stretches, top_k


def annotate(video: VideoTimeline, labels: list[str], target: Path, k: int = 3) -> int:
    """Write the annotated copy; returns the frames written."""
    import av
    from PIL import ImageDraw, ImageFont

    spans = stretches(video.windows, video.duration)
    ends = np.array([end for _, end in spans])
    texts = []
    for window in video.windows:
        names, scores = top_k(window, labels, k)
        texts.append([f"{name}  {score:.2f}" for name, score in zip(names, scores, strict=True)])
    font = ImageFont.load_default(size=14) if hasattr(ImageFont, "load_default") else None
    written = 0
    with _openable(Path(video.path)) as name, av.open(name) as source:
        stream = source.streams.video[0]
        rate = stream.average_rate or Fraction(25)
        width, height = stream.codec_context.width // 2 * 2, stream.codec_context.height // 2 * 2
        with atomic_path(target, suffix=target.suffix) as tmp, av.open(str(tmp), "w") as out:
            encoder = out.add_stream("libx264", rate=rate)
            encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
            encoder.time_base = stream.time_base
            for frame in decoded_frames(source, stream):
                seconds = frame.time or 0.0
                window = min(int(np.searchsorted(ends, seconds, side="right")), len(texts) - 1)
                picture = frame.to_image()
                if picture.size != (width, height):
                    picture = picture.crop((0, 0, width, height))
                draw = ImageDraw.Draw(picture, "RGBA")
                lines = texts[window]
                box = (4, 4, 8 + 9 * max(len(line) for line in lines), 8 + 18 * len(lines))
                draw.rectangle(box, fill=(0, 0, 0, 150))
                for row, line in enumerate(lines):
                    draw.text((8, 6 + 18 * row), line, fill=(255, 255, 255, 255), font=font)
                copy = av.VideoFrame.from_image(picture)
                copy.pts, copy.time_base = frame.pts, stream.time_base
                for packet in encoder.encode(copy):
                    out.mux(packet)
                written += 1
            for packet in encoder.encode():
                out.mux(packet)
    return written
