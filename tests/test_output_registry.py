"""The output registry (`mvit_cli.outputs.registry`): one table that the options' help, the
suffix checks and the choice of writer all read.

A format missing from the help is one nobody finds; an entry whose writer writes something
other than its suffix says (a CSV named .json) is a file its readers reject. So every entry
is written through its writer, read back by the suffix's own reader (not mvit's), and
resumed through the same lifecycle; a deliberately broken entry must fail that check.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from mvit_cli.jobs.timeline import VideoTimeline, Window
from mvit_cli.jobs.classify import FileResult
from mvit_cli.outputs.registry import (FORMATS, OutputFormat, check_output, format_of,
                                       open_features, open_writer, read_features)
from mvit_cli.outputs.timeline_settings import Settings

from conftest import run_cli

STAMP = {"model": "m", "weights": "w", "weights_sha256": "0" * 64, "protocol": "p",
         "mvit_version": "1"}
LABELS = ["walk", "run"]


def _help(command: str, option: str) -> str:
    """The help text of `mvit COMMAND`'s `option`, on one line."""
    result = run_cli(command, "--help")
    assert result.exit_code == 0, result.output
    text = re.sub(r"\s+", " ", result.stdout)
    start = text.index(option)
    following = re.search(r" --?[a-z]", text[start + len(option) + 1:])
    return text[start:start + len(option) + 1 + following.start()] if following else text[start:]


@pytest.mark.parametrize("entry", FORMATS, ids=lambda f: f"{f.job}{f.suffix}")
def test_the_help_offers_every_format(entry: OutputFormat):
    if entry.job == "features":
        texts = [_help("classify", "--features"), _help("timeline", "--features")]
    else:
        texts = [_help(entry.job, "--output")]
    for text in texts:
        word = "or - for" if entry.stream else entry.suffix
        assert word in text, (entry, text)


def test_each_job_has_one_entry_per_suffix():
    seen = [(f.job, f.suffix) for f in FORMATS]
    assert len(seen) == len(set(seen))
    for entry in FORMATS:
        named = "-" if entry.stream else f"x{entry.suffix.upper()}"
        assert format_of(entry.job, named) is entry


# ---- each suffix round-trips through its writer, its reader and a resume -----------------------

def _file_result(path: str) -> FileResult:
    return FileResult(path, labels=["walk", "run"], scores=[0.75, 0.25], duration=1.0,
                      frames=8, views=1)


def _video(path: str) -> VideoTimeline:
    windows = [Window(0.0, 1.0, np.array([0.75, 0.25], np.float32)),
               Window(1.0, 2.0, np.array([0.25, 0.75], np.float32))]
    return VideoTimeline(path, duration=2.0, windows=windows)


def _read_as_its_suffix_says(path: Path) -> list[str]:
    """The paths a file holds, read with the reader its suffix names (not mvit's)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return [row["path"] for row in csv.DictReader(io.StringIO(path.read_text("utf-8")))]
    if suffix == ".jsonl":
        return [json.loads(line)["path"] for line in path.read_text("utf-8").splitlines()]
    if suffix == ".json":
        data = json.loads(path.read_text("utf-8"))
        return [r["path"] for r in data] if isinstance(data, list) else list(data["results"])
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).column("path").to_pylist()
    if suffix == ".vtt":
        assert path.read_text("utf-8").startswith("WEBVTT\n")
        return [path.stem]
    if suffix == ".srt":
        assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> ", path.read_text("utf-8"))
        return [path.stem]
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)["path"].tolist()
    if suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as reader:
            return json.loads(reader.metadata()["mvit.paths"])
    raise AssertionError(f"no reader for {suffix}")


def round_trip(entry: OutputFormat, folder: Path) -> None:
    """Write two results through `entry`'s writer; its suffix's own reader must find them,
    and reopening the output must resume it (both done, a third not)."""
    first, second, third = (str(folder / f"{name}.mp4") for name in ("a", "b", "c"))
    if entry.job == "features":
        out = folder / f"features{entry.suffix}"
        writer = open_features(out, STAMP)
        writer.add(first, np.ones(4))
        writer.add(second, np.zeros(4), 0.0, 1.0)
        writer.close()
        keys, matrix = read_features(out)
        assert [k[0] for k in keys] == [first, second] and matrix.shape == (2, 4)
        assert _read_as_its_suffix_says(out) == [first, second]
        return
    options = 2 if entry.job == "classify" else Settings(LABELS, 2, 1, 0.0)
    make = _file_result if entry.job == "classify" else _video
    if entry.stream:
        printed = io.StringIO()
        with redirect_stdout(printed):
            writer = open_writer(entry.job, "-", options, STAMP)
            writer.write(make(first))
            writer.close()
        assert json.loads(printed.getvalue())["path"] == first
        return
    out = folder / ("{stem}" if entry.per_video else "out")
    out = out.with_name(out.name + entry.suffix)
    writer = open_writer(entry.job, out, options, STAMP)
    writer.write(make(first))
    writer.write(make(second))
    writer.close()
    if entry.per_video:
        written = sorted(p for p in folder.iterdir() if p.suffix == entry.suffix)
        assert [_read_as_its_suffix_says(p)[0] for p in written] == ["a", "b"]
    else:
        assert sorted(set(_read_as_its_suffix_says(out))) == [first, second]
    resumed = open_writer(entry.job, out, options, STAMP)
    try:
        assert resumed.is_done(first) and resumed.is_done(second)
        assert not resumed.is_done(third)
    finally:
        resumed.close()


@pytest.mark.parametrize("entry", FORMATS, ids=lambda f: f"{f.job}{f.suffix}")
def test_every_format_round_trips_through_its_writer(entry: OutputFormat, tmp_path):
    if entry.needs:
        pytest.importorskip(entry.needs)
    assert check_output(entry.job, "-" if entry.stream else f"x{entry.suffix}") is entry
    round_trip(entry, tmp_path)


@pytest.mark.parametrize("broken", [
    ("classify", ".json", "rows:FileRowsCsv"),  # a CSV named .json
    ("timeline", ".jsonl", "rows:WindowRowsCsv"),
    ("features", ".npy", "features:SafetensorsFeatures"),
])
def test_a_broken_entry_fails_the_round_trip(broken, tmp_path, monkeypatch):
    from mvit_cli.outputs import registry

    job, suffix, format_class = broken
    entry = format_of(job, f"x{suffix}")
    wrong = dataclasses.replace(entry, format_class=format_class)
    monkeypatch.setattr(registry, "FORMATS",
                        tuple(wrong if f is entry else f for f in registry.FORMATS))
    with pytest.raises((AssertionError, ValueError)):
        round_trip(wrong, tmp_path)
