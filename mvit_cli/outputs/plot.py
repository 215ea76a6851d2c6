"""`mvit timeline --plot`: the timeline as a picture a person reads at a glance.

Time runs left to right (seconds, or minutes for long videos); the classes that score
highest anywhere are rows of a heat map of their smoothed scores; the segments are a labelled
band above it. 16 x 7 inches at 100 dpi: 1600 pixels wide, nothing clipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..jobs.timeline import VideoTimeline
from ..jobs.segments import Segment, smooth, stretches

ROWS = 8  # classes shown


def plot_timeline(video: VideoTimeline, found: list[Segment], labels: list[str], path: Path,
                  weights: str, smooth_windows: int = 1) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'mvit-cli[plot]'") from None
    scores = smooth(np.stack([w.probs for w in video.windows]), smooth_windows)
    shown = np.argsort(-scores.max(axis=0), kind="stable")[:ROWS]
    minutes = video.duration >= 180
    scale = 60.0 if minutes else 1.0
    unit = "minutes" if minutes else "seconds"
    spans = [(a / scale, b / scale) for a, b in stretches(video.windows, video.duration)]
    edges = np.array([spans[0][0], *(b for _, b in spans)])

    figure, (band, heat) = plt.subplots(
        2, 1, figsize=(16, 7), dpi=100, sharex=True, gridspec_kw={"height_ratios": [1, 5]})
    colours = plt.get_cmap("tab10")
    palette = {name: colours(i % 10) for i, name in enumerate(dict.fromkeys(s.label for s in found))}
    for segment in found:
        start, end = segment.start / scale, segment.end / scale
        band.axvspan(start, end, color=palette[segment.label], alpha=0.85)
        if end - start > 0.04 * edges[-1]:
            band.text((start + end) / 2, 0.5, f"{segment.label}\n{segment.score:.2f}",
                      ha="center", va="center", fontsize=9, clip_on=True)
    band.set_yticks([])
    band.set_ylabel("segments", rotation=0, ha="right", va="center")
    band.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in palette.values()],
                labels=list(palette), loc="upper left", bbox_to_anchor=(1.005, 1.0),
                fontsize=8, title="segment labels", title_fontsize=8)
    image = heat.pcolormesh(edges, np.arange(len(shown) + 1), scores[:, shown].T, vmin=0,
                            vmax=1, cmap="viridis", shading="flat")
    heat.set_yticks(np.arange(len(shown)) + 0.5, [labels[i] for i in shown], fontsize=9)
    heat.invert_yaxis()
    heat.set_xlabel(f"time ({unit})")
    heat.set_xlim(edges[0], edges[-1])
    colourbar = figure.colorbar(image, ax=heat, pad=0.01, fraction=0.03)
    colourbar.set_label("score (mean softmax per window" +
                        (f", smoothed over {smooth_windows}" if smooth_windows > 1 else "") + ")")
    figure.suptitle(f"{Path(video.path).name}: labels over time (weights {weights})",
                    fontsize=12)
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
