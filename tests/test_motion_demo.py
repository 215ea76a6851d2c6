"""The shipped motion-demo model: offline, and right on clips it has never seen."""

from __future__ import annotations

import pytest

import subprocess
import sys
from pathlib import Path

import mvit_cli
from mvit_cli.pretrained.registry import find_entry
from mvit_cli.pretrained.store import cached_file, verify_entry
from mvit_cli.synth import write_dataset

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_motion_demo_ships_in_the_package_small_and_verified():
    entry = find_entry("motion-demo")
    assert entry.shipped and entry.architecture == "v2-XS-8"
    path = cached_file(entry)
    assert path is not None and path.stat().st_size <= 5 * 1024 * 1024
    assert verify_entry(entry).status == "ok"  # its sha256 in the registry, and it loads


@pytest.mark.slow
def test_motion_demo_labels_fresh_clips(tmp_path):
    # Seed 4242 is used by nothing else: the weights were trained on seed 1.
    written = write_dataset(tmp_path, per_class=5, seed=4242)
    clf = mvit_cli.load("motion-demo")
    truth = {str(path): label for path, label in written}
    results = list(clf.classify([p for p, _ in written], top_k=1, workers=2))
    assert len(results) == 40 and all(r.ok for r in results)
    right = sum(r.labels[0] == truth[r.path] for r in results)
    assert right / len(results) >= 0.95, [(Path(r.path).parent.name, r.labels[0])
                                          for r in results if r.labels[0] != truth[r.path]]


def right_share(clf, truth: dict[str, str]) -> tuple[float, list]:
    results = list(clf.classify(list(truth), top_k=1, workers=2))
    assert len(results) == len(truth) and all(r.ok for r in results)
    wrong = [(Path(r.path).parent.name, r.labels[0]) for r in results
             if r.labels[0] != truth[r.path]]
    return 1 - len(wrong) / len(results), wrong


@pytest.mark.slow
def test_motion_demo_labels_fresh_wide_clips(tmp_path):
    # Trained on the wide variety's seed 11; 4343 is used by nothing else.
    written = write_dataset(tmp_path, per_class=4, seed=4343, variety="wide", jobs=2)
    share, wrong = right_share(mvit_cli.load("motion-demo"),
                               {str(path): label for path, label in written})
    # 29 of 32 measured (weights/motion-demo.md); its hardest set of clips. The two weights
    # before these: 28 and 27.
    assert share >= 28 / 32, wrong


@pytest.mark.slow
def test_motion_demo_labels_clips_of_a_renderer_it_never_saw(tmp_path, monkeypatch):
    """benchmarks/motion_holdout.py: other shapes, typefaces, textures, backgrounds and
    codecs, drawn by another renderer; training never used it."""
    # On the path while its worker processes start too: they import it by name.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import motion_holdout

    motion_holdout.write(tmp_path, per_class=3, seed=4444, jobs=2)
    truth = {str(p): p.parent.name.replace("_", " ") for p in tmp_path.rglob("*")
             if p.suffix in (".mp4", ".webm", ".avi", ".mov")}
    assert len(truth) == 24
    share, wrong = right_share(mvit_cli.load("motion-demo"), truth)
    assert share >= 23 / 24, wrong  # 24 measured; the classic-only weights: 21 of 24


@pytest.mark.slow
def test_examples_classify_offline_as_the_readme_says(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "MVIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "classify", str(EXAMPLES),
                           "--weights", "motion-demo", "-k", "1", "-o", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = (tmp_path / "x.csv").read_text().splitlines()[1:]
    assert len(rows) == 5
    for row in rows:
        path, label = row.split(",")[:2]
        if Path(path).stem != "four_motions":  # one motion each, named after it
            assert Path(path).stem.replace("_", " ") == label, row


def test_motion_demo_says_what_it_knows_wherever_it_is_shown(tmp_path):
    """Its answers on real footage are not Kinetics labels: the list and every run say so."""
    from conftest import run_cli

    entry = find_entry("motion-demo")
    assert "eight synthetic motions" in entry.note
    listed = run_cli("weights", "list")
    assert f"motion-demo: {entry.note}" in " ".join(listed.stdout.split())
    classified = run_cli("classify", EXAMPLES, "--weights", "motion-demo", "--workers", "0")
    assert classified.exit_code == 0, classified.output
    assert f"note: motion-demo {entry.note}" in classified.stderr
    assert mvit_cli.load("motion-demo").note == entry.note
