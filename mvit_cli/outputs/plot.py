"""`mvit timeline --plot`: the timeline as a picture a person reads at a glance.

Time runs left to right (seconds, or minutes for long videos), on one axis for the whole
figure: the segments are a labelled band above a heat map whose rows are the classes that
score highest anywhere; the colour bar has a column of its own, so it narrows neither. A
label keeps its colour from one picture to the next (the colour follows its index in the
label set, spaced by the golden angle so that neighbours differ); a segment's name is
written only where it fits; the figure widens with the video, up to a limit.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..extras import install_hint
from ..jobs.segments import Segment, smooth, stretches
from ..jobs.timeline import VideoTimeline

ROWS = 8  # classes shown
GOLDEN = 0.6180339887498949  # hue step between consecutive label indices


def label_colour(index: int) -> tuple[float, float, float]:
    """A label's colour, from its index in the label set alone: stable across pictures,
    and consecutive indices far apart in hue (two lightness and saturation levels more)."""
    hue = (index * GOLDEN) % 1.0
    saturation = 0.55 if index % 2 else 0.8
    value = 0.95 if (index // 2) % 2 else 0.75
    return colorsys.hsv_to_rgb(hue, saturation, value)


def figure_width(duration: float) -> float:
    """Inches: 8 for a short clip, growing with the video, at most 24."""
    return float(min(24.0, 8.0 + duration / 30.0))


def timeline_figure(video: VideoTimeline, found: list[Segment], labels: list[str],
                    weights: str, smooth_windows: int = 1):
    import matplotlib.pyplot as plt

    scores = smooth(np.stack([w.probs for w in video.windows]), smooth_windows)
    shown = np.argsort(-scores.max(axis=0), kind="stable")[:ROWS]
    minutes = video.duration >= 180
    scale = 60.0 if minutes else 1.0
    unit = "minutes" if minutes else "seconds"
    spans = [(a / scale, b / scale) for a, b in stretches(video.windows, video.duration)]
    edges = np.array([spans[0][0], *(b for _, b in spans)])

    figure = plt.figure(figsize=(figure_width(video.duration), 2.0 + 0.45 * len(shown)),
                        dpi=100, layout="constrained")
    grid = figure.add_gridspec(2, 2, height_ratios=[1, 5], width_ratios=[1, 0.015])
    band = figure.add_subplot(grid[0, 0])
    heat = figure.add_subplot(grid[1, 0], sharex=band)
    bar_axis = figure.add_subplot(grid[1, 1])
    index_of = {name: i for i, name in enumerate(labels)}
    for segment in found:
        start, end = segment.start / scale, segment.end / scale
        band.axvspan(start, end, color=label_colour(index_of.get(segment.label, 0)),
                     alpha=0.9)
        band.text((start + end) / 2, 0.5, f"{segment.label}\n{segment.score:.2f}",
                  ha="center", va="center", fontsize=9, clip_on=True)
    named = list(dict.fromkeys(segment.label for segment in found))
    if named:  # every segment's label, also of those too short to carry their name
        figure.legend(handles=[plt.Rectangle((0, 0), 1, 1,
                                             color=label_colour(index_of.get(name, 0)))
                               for name in named],
                      labels=named, loc="outside lower center", fontsize=8,
                      ncols=min(len(named), 8), frameon=False)
    band.set_yticks([])
    band.set_ylabel("segments", rotation=0, ha="right", va="center")
    band.tick_params(labelbottom=False)
    image = heat.pcolormesh(edges, np.arange(len(shown) + 1), scores[:, shown].T, vmin=0,
                            vmax=1, cmap="viridis", shading="flat")
    heat.set_yticks(np.arange(len(shown)) + 0.5, [labels[i] for i in shown], fontsize=9)
    heat.invert_yaxis()
    heat.set_xlabel(f"time ({unit})")
    heat.set_xlim(edges[0], edges[-1])
    colourbar = figure.colorbar(image, cax=bar_axis)
    colourbar.set_label("score (mean softmax per window" +
                        (f", smoothed over {smooth_windows}" if smooth_windows > 1 else "") + ")")
    figure.suptitle(f"{Path(video.path).name}: labels over time (weights {weights})",
                    fontsize=12)
    _drop_names_that_do_not_fit(figure, band, found, scale)
    return figure


def _drop_names_that_do_not_fit(figure, band, found: list[Segment], scale: float) -> None:
    """A segment's name stays only if its text, as the renderer measures it, fits inside the
    segment's width on screen."""
    figure.canvas.draw()  # final layout, so that both extents are the saved ones
    renderer = figure.canvas.get_renderer()
    for text, segment in zip(list(band.texts), found, strict=True):
        left, _ = band.transData.transform((segment.start / scale, 0))
        right, _ = band.transData.transform((segment.end / scale, 0))
        if text.get_window_extent(renderer).width > (right - left) - 4:
            text.remove()


def plot_timeline(video: VideoTimeline, found: list[Segment], labels: list[str], path: Path,
                  weights: str, smooth_windows: int = 1) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(f"--plot needs matplotlib: {install_hint('plot')}") from None
    figure = timeline_figure(video, found, labels, weights, smooth_windows)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
