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
             threshold: float = 0.0) -> list[Segment]:
    """Consecutive windows whose smoothed top label agrees, merged; windows whose top score
    is under `threshold` have no label and break segments."""
    if not windows:
        return []
    scores = smooth(np.stack([w.probs for w in windows]), smooth_windows)
    top = scores.argmax(axis=1)
    best = scores[np.arange(len(top)), top]
    found: list[Segment] = []
    run_label, run_scores, run_start, run_end = None, [], 0.0, 0.0
    for index, (start, end) in enumerate(stretches(windows, duration)):
        label = int(top[index]) if best[index] >= threshold else None
        if label != run_label or label is None:
            if run_label is not None:
                found.append(Segment(labels[run_label], float(np.mean(run_scores)), run_start,
                                     run_end))
            run_label, run_scores, run_start = label, [], start
        if label is not None:
            run_scores.append(float(best[index]))
        run_end = end
    if run_label is not None:
        found.append(Segment(labels[run_label], float(np.mean(run_scores)), run_start, run_end))
    return found


def top_k(window: Window, labels: list[str], k: int) -> tuple[list[str], list[float]]:
    order = np.argsort(-window.probs, kind="stable")[:k]
    return [labels[i] for i in order], [float(window.probs[i]) for i in order]
