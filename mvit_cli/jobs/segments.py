"""From window scores to segments: smoothed, thresholded, merged.

Windows overlap (by default each starts half a window after the last), so each one is given
the stretch of time nearest its centre: the stretches tile the video, from 0 to its end, and a
segment's boundaries fall within one stride of where the labels change.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .timeline import Window


@dataclass(frozen=True)
class Segment:
    label: str
    score: float  # mean of the smoothed score of `label` over the segment's windows
    start: float  # seconds
    end: float


def smooth(probs: np.ndarray, windows: int) -> np.ndarray:
    """Moving average of each class's score over `windows` windows, centred; the ends
    average over the windows there are."""
    if windows <= 1 or len(probs) <= 1:
        return probs
    kernel = np.ones(windows)
    before = windows // 2
    padded_sum = np.stack([np.convolve(column, kernel, mode="full")[before:before + len(probs)]
                           for column in probs.T], axis=1)
    counts = np.convolve(np.ones(len(probs)), kernel, mode="full")[before:before + len(probs)]
    return padded_sum / counts[:, None]


def stretches(windows: list[Window], duration: float) -> list[tuple[float, float]]:
    """The time each window stands for: from the midpoint with its predecessor's centre to
    the midpoint with its successor's (0 and the video's end at the ends)."""
    centres = [(w.start + w.end) / 2 for w in windows]
    cuts = [0.0, *((a + b) / 2 for a, b in itertools.pairwise(centres)), max(duration, 0.0)]
    return list(itertools.pairwise(cuts))


def segments(windows: list[Window], labels: list[str], duration: float, smooth_windows: int = 1,
             threshold: float = 0.0, min_length: float = 0.0) -> list[Segment]:
    """Consecutive windows whose smoothed top label agrees, merged; windows whose top score
    is under `threshold` have no label and break segments. A segment shorter than
    `min_length` seconds takes the label of the segment it adjoins (the one before, else the
    one after), or is dropped where it adjoins none: a second's flicker is not a scene."""
    if not windows:
        return []
    scores = smooth(np.stack([w.probs for w in windows]), smooth_windows)
    top = scores.argmax(axis=1)
    best = scores[np.arange(len(top)), top]
    spans = stretches(windows, duration)
    window_labels = [int(top[i]) if best[i] >= threshold else None for i in range(len(top))]
    if min_length > 0:
        window_labels = absorb_short_runs(window_labels, spans, min_length)
    found: list[Segment] = []
    run_label, run_scores, run_start, run_end = None, [], 0.0, 0.0
    for index, (start, end) in enumerate(spans):
        label = window_labels[index]
        if label != run_label or label is None:
            if run_label is not None:
                found.append(Segment(labels[run_label], float(np.mean(run_scores)), run_start,
                                     run_end))
            run_label, run_scores, run_start = label, [], start
        if label is not None:
            run_scores.append(float(scores[index, label]))
        run_end = end
    if run_label is not None:
        found.append(Segment(labels[run_label], float(np.mean(run_scores)), run_start, run_end))
    return found


def absorb_short_runs(window_labels: list[int | None], spans: list[tuple[float, float]],
                      min_length: float) -> list[int | None]:
    """Each run of windows with one label lasting under `min_length`, shortest first,
    relabelled as the labelled run before it, else the one after it, else unlabelled."""
    labels = list(window_labels)
    while True:
        runs = []  # (label, first, last) of the labelled runs, and None runs between them
        for index, label in enumerate(labels):
            if runs and runs[-1][0] == label and label is not None:
                runs[-1][2] = index
            else:
                runs.append([label, index, index])
        short = [(spans[last][1] - spans[first][0], position)
                 for position, (label, first, last) in enumerate(runs)
                 if label is not None and spans[last][1] - spans[first][0] < min_length]
        if not short:
            return labels
        _, position = min(short)
        before = runs[position - 1][0] if position > 0 else None
        after = runs[position + 1][0] if position + 1 < len(runs) else None
        _, first, last = runs[position]
        labels[first:last + 1] = [before if before is not None else after] * (last - first + 1)


def top_k(window: Window, labels: list[str], k: int) -> tuple[list[str], list[float]]:
    order = np.argsort(-window.probs, kind="stable")[:k]
    return [labels[i] for i in order], [float(window.probs[i]) for i in order]
