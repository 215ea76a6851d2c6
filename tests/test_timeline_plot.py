"""The timeline's picture: one time axis for the segments and the heat map, a colour per
label that does not change between pictures, names only where they fit, a width that
follows the video."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mvit_cli.jobs.segments import Segment  # noqa: E402
from mvit_cli.jobs.timeline import VideoTimeline, Window  # noqa: E402
from mvit_cli.outputs.plot import figure_width, label_colour, timeline_figure  # noqa: E402

LABELS = [f"class {i}" for i in range(400)]


def video_of(duration: float, top: list[int]) -> VideoTimeline:
    """One window a second, window i led by class top[i]."""
    windows = []
    for i, label in enumerate(top):
        probs = np.full(len(LABELS), 0.1 / (len(LABELS) - 1), dtype=np.float32)
        probs[label] = 0.9
        windows.append(Window(float(i), float(i) + 1.0, probs))
    return VideoTimeline("clip.mp4", duration, windows)


def test_the_band_and_the_heat_map_share_one_time_axis():
    figure = timeline_figure(video_of(30.0, [3] * 30), [Segment("class 3", 0.9, 0, 30)],
                             LABELS, "w")
    band, heat = figure.axes[:2]
    assert band.get_position().x0 == pytest.approx(heat.get_position().x0)
    assert band.get_position().x1 == pytest.approx(heat.get_position().x1)
    plt.close(figure)


def test_a_label_keeps_its_colour_and_neighbours_differ():
    first = timeline_figure(video_of(4.0, [5, 5, 7, 7]), [Segment("class 5", 0.9, 0, 2),
                                                          Segment("class 7", 0.9, 2, 4)],
                            LABELS, "w")
    second = timeline_figure(video_of(4.0, [7, 7, 9, 9]), [Segment("class 7", 0.9, 0, 2),
                                                           Segment("class 9", 0.9, 2, 4)],
                             LABELS, "w")
    colour_of_7 = [tuple(p.get_facecolor()[:3]) for p in first.axes[0].patches][1]
    assert colour_of_7 == pytest.approx(tuple(second.axes[0].patches[0].get_facecolor()[:3]))
    colours = {tuple(np.round(label_colour(i), 3)) for i in range(40)}
    assert len(colours) == 40  # more than tab10's ten before any repeats
    plt.close(first)
    plt.close(second)


def test_names_are_written_only_where_they_fit():
    found = [Segment("class 1", 0.9, 0, 50), Segment("class 2", 0.9, 50, 50.4),
             Segment("class 3", 0.9, 50.4, 100)]
    figure = timeline_figure(video_of(100.0, [1] * 50 + [3] * 50), found, LABELS, "w")
    assert [t.get_text().split("\n")[0] for t in figure.axes[0].texts] == ["class 1",
                                                                           "class 3"]
    legend = figure.legends[0]  # every label still named, with its colour
    assert [t.get_text() for t in legend.get_texts()] == ["class 1", "class 2", "class 3"]
    plt.close(figure)


def test_the_width_follows_the_video():
    assert figure_width(5) < figure_width(300) < figure_width(3600) == 24
    short = timeline_figure(video_of(5.0, [1] * 5), [], LABELS, "w")
    long = timeline_figure(video_of(300.0, [1] * 300), [], LABELS, "w")
    assert short.get_figwidth() < long.get_figwidth()
    plt.close(short)
    plt.close(long)
