"""The annotated copy shows what the timeline's outputs say (the segments, smoothed and
thresholded as asked), in text sized for the frame."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from media import write_colour_video
from mvit_cli.jobs.segments import Segment
from mvit_cli.jobs.timeline import VideoTimeline, Window
from mvit_cli.outputs.annotate import annotate

LABELS = ["a", "a much longer label"]


def two_windows(path: Path) -> VideoTimeline:
    """Window 0 says "a", window 1 the long label, each at 0.9."""
    return VideoTimeline(str(path), 2.0, [Window(0.0, 1.0, np.array([0.9, 0.1], np.float32)),
                                          Window(1.0, 2.0, np.array([0.1, 0.9], np.float32))])


def dark_box(path: Path) -> dict[float, tuple[int, int]]:
    """(width, height) of the dark box at the top left of each frame ((0, 0): none)."""
    found = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            red = frame.to_ndarray(format="rgb24")[:, :, 0]
            dark = red < 180
            rows, columns = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
            found[round(frame.time, 2)] = ((int(columns.max()), int(rows.max()))
                                           if len(rows) else (0, 0))
    return found


def test_the_copy_shows_the_segments_not_the_raw_windows(tmp_path):
    source = write_colour_video(tmp_path / "white.mp4", (255, 255, 255), 20, 10, 320, 96)
    video = two_windows(source)
    raw = tmp_path / "raw.mp4"
    annotate(video, LABELS, raw, k=1)
    smoothed = tmp_path / "segments.mp4"
    # as if --smooth had merged both windows into one segment of the long label, and a
    # --threshold had left the last half second without one
    annotate(video, LABELS, smoothed, k=1,
             found=[Segment("a much longer label", 0.5, 0.0, 1.5)])
    raw_boxes, boxes = dark_box(raw), dark_box(smoothed)
    assert raw_boxes[0.0][0] < raw_boxes[1.0][0]  # the windows: short, then long
    assert boxes[0.0] == boxes[1.0] == raw_boxes[1.0]  # the segment's label throughout
    assert boxes[1.6] == (0, 0)  # no segment there: no box


def test_the_text_is_sized_for_the_frame(tmp_path):
    boxes = {}
    for height in (240, 960):
        source = write_colour_video(tmp_path / f"white{height}.mp4", (255, 255, 255), 5, 10,
                                    640, height)
        copy = tmp_path / f"copy{height}.mp4"
        annotate(two_windows(source), LABELS, copy, k=1)
        boxes[height] = dark_box(copy)[0.0]
    assert boxes[960][1] > 3 * boxes[240][1]  # taller text in a taller frame
    assert boxes[960][0] > 3 * boxes[240][0]  # and its box as wide as the text it holds
