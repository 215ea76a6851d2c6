"""From window scores to segments and subtitles, on hand-made windows whose right answer is
known exactly: smoothing, the time each window stands for, thresholds, merging, top-k, and
the cue times of WebVTT and SubRip."""

from __future__ import annotations

import numpy as np

from mvit_cli.jobs.timeline import Window
from mvit_cli.outputs.subtitles import srt_text, vtt_text
from mvit_cli.jobs.segments import Segment, segments, smooth, stretches, top_k

LABELS = ["walk", "run", "jump"]
STAMP = {"model": "m", "weights": "w", "weights_sha256": "0" * 64,
         "protocol": "clips --> views", "mvit_version": "1"}


def windows_every_second(*probs: list[float], length: float = 2.0) -> list[Window]:
    return [Window(float(i), float(i) + length, np.array(p, dtype=np.float64))
            for i, p in enumerate(probs)]


def test_smoothing_is_a_centred_mean_over_the_windows_there_are():
    """Each window's score becomes the mean of its neighbourhood; at the ends only the
    windows that exist count, so a constant score stays what it is."""
    probs = np.array([[0.0, 3.0, 0.0, 0.0, 6.0], [1.0] * 5]).T
    assert np.allclose(smooth(probs, 3)[:, 0], [1.5, 1.0, 1.0, 2.0, 3.0])
    assert np.allclose(smooth(probs, 2)[:, 0], [1.5, 1.5, 0.0, 3.0, 6.0])
    for windows in (2, 3, 4):
        assert np.allclose(smooth(probs, windows)[:, 1], 1.0)
    assert smooth(probs, 1) is probs


def test_each_window_stands_for_the_time_nearest_its_centre():
    """Cuts halfway between neighbouring centres; the first stretch starts at 0 and the last
    ends at the end of the video, so the stretches tile it."""
    found = stretches(windows_every_second([1], [1], [1]), duration=4.0)
    assert found == [(0.0, 1.5), (1.5, 2.5), (2.5, 4.0)]


def test_agreeing_windows_merge_and_unsure_ones_break_segments():
    windows = windows_every_second(
        [0.75, 0.25, 0.0],     # walk
        [0.625, 0.375, 0.0],   # walk
        [0.375, 0.25, 0.375],  # top score under the threshold: no label
        [0.5, 0.25, 0.25],     # walk, at the threshold exactly
        [0.25, 0.75, 0.0],     # run
        [0.125, 0.875, 0.0])   # run
    found = segments(windows, LABELS, duration=7.0, threshold=0.5)
    assert found == [Segment("walk", 0.6875, 0.0, 2.5), Segment("walk", 0.5, 3.5, 4.5),
                     Segment("run", 0.8125, 4.5, 7.0)]
    merged = segments(windows, LABELS, duration=7.0)  # no threshold: the gap is walk too
    assert [(s.label, s.start, s.end) for s in merged] == [("walk", 0.0, 4.5), ("run", 4.5, 7.0)]
    assert segments([], LABELS, duration=7.0) == []


def test_top_k_is_the_k_most_likely_most_likely_first():
    window = Window(0.0, 1.0, np.array([0.1, 0.5, 0.15, 0.25]))
    names = ["a", "b", "c", "d"]
    assert top_k(window, names, 3) == (["b", "d", "c"], [0.5, 0.25, 0.15])
    assert top_k(window, names, 1) == (["b"], [0.5])
    assert top_k(window, names, 9)[0] == ["b", "d", "c", "a"]


FOUND = [Segment("walk", 0.6875, 0.0, 1.5), Segment("run", 0.5, 3723.4564, 7261.0)]


def test_subrip_cues_count_hours_minutes_seconds_and_milliseconds():
    assert srt_text(FOUND) == ("1\n00:00:00,000 --> 00:00:01,500\nwalk (0.69)\n\n"
                               "2\n01:02:03,456 --> 02:01:01,000\nrun (0.50)\n")


def test_webvtt_cues_are_blocks_apart_after_a_note_of_what_made_them():
    blocks = vtt_text(FOUND, STAMP).split("\n\n")
    assert blocks[0] == "WEBVTT"
    assert blocks[1].startswith("NOTE made by mvit: model m, weights w")
    assert "-->" not in blocks[1]  # a cue timing line inside a note would end it
    assert blocks[2:] == ["00:00:00.000 --> 00:00:01.500\nwalk (0.69)",
                          "01:02:03.456 --> 02:01:01.000\nrun (0.50)\n"]


def one_second_windows(*top: int | None) -> list[Window]:
    """Window i a second long, led by class top[i] at 0.8 (None: no class above 0.4)."""
    windows = []
    for i, label in enumerate(top):
        probs = np.full(3, 0.1 if label is not None else 1 / 3)
        if label is not None:
            probs[label] = 0.8
        windows.append(Window(float(i), float(i) + 1.0, probs))
    return windows


def test_a_segment_shorter_than_the_minimum_takes_its_neighbours_label():
    """walk x3, run x1 (a flicker), walk x3, then jump x1 at the end: with --min-segment 2
    the flicker joins the walk around it, and the last second joins what comes before."""
    windows = one_second_windows(0, 0, 0, 1, 0, 0, 0, 2)
    plain = segments(windows, LABELS, 8.0)
    assert [s.label for s in plain] == ["walk", "run", "walk", "jump"]
    merged = segments(windows, LABELS, 8.0, min_length=2.0)
    assert [(s.label, s.start, s.end) for s in merged] == [("walk", 0.0, 8.0)]
    # the absorbed windows count with their score for the label they took: 6 x 0.8, 2 x 0.1
    assert merged[0].score == np.float64(np.mean([0.8] * 3 + [0.1] + [0.8] * 3 + [0.1]))


def test_a_short_segment_between_unlabelled_stretches_is_dropped_and_none_is_invented():
    windows = one_second_windows(None, None, 1, None, None, 0, 0, 0)
    found = segments(windows, LABELS, 8.0, threshold=0.5, min_length=2.0)
    assert [(s.label, s.start, s.end) for s in found] == [("walk", 5.0, 8.0)]
    assert segments(windows, LABELS, 8.0, threshold=0.5, min_length=0.0)[0].label == "run"


def test_the_minimum_leaves_segments_as_they_were_when_none_is_shorter():
    windows = one_second_windows(0, 0, 1, 1, 2, 2)
    assert segments(windows, LABELS, 6.0, min_length=2.0) == segments(windows, LABELS, 6.0)
