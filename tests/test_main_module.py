"""The Python API in a plain script: no `if __name__ == "__main__":` guard, standard input,
and the README's own example.

Decoding workers start from a fork server (spawn on Windows), which would otherwise import
the user's main module again in every worker: an unguarded script then re-runs itself there.
These run real scripts in a fresh interpreter, as a user would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mvit_cli

from media import write_colour_video, write_video

TREE = Path(mvit_cli.__file__).resolve().parent.parent
README = TREE / "README.md"

# Top-level code only, no guard: each run of it adds one line to `runs.txt`.
UNGUARDED = """\
import mvit_cli

with open("runs.txt", "a") as runs:
    runs.write("ran\\n")

clf = mvit_cli.load("motion-demo")
for result in clf.classify(["videos/"], top_k=1, clips=1, workers=2):
    print("RESULT", result.path, "error" if result.error else "ok", result.labels)
"""


def python(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TREE))
    return subprocess.run([sys.executable, *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, env=env, timeout=300)


def videos(folder: Path) -> list[Path]:
    folder.mkdir()
    return [write_video(folder / "numbers.mp4", frames=20),
            write_colour_video(folder / "red.mp4", (200, 30, 30), frames=12),
            write_colour_video(folder / "blue.mp4", (30, 30, 200), frames=12)]


def assert_clean(done: subprocess.CompletedProcess) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output and "crashed" not in output, output


def assert_every_file_labelled(done: subprocess.CompletedProcess, files: list[Path]) -> None:
    rows = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert len(rows) == len(files), done.stdout
    for file in files:
        [row] = [r for r in rows if r.split()[1].endswith(file.name)]
        assert row.split()[2] == "ok" and not row.endswith("[]"), row  # labelled, no error


@pytest.mark.slow
def test_an_unguarded_script_classifies_with_workers_and_runs_once(tmp_path):
    files = videos(tmp_path / "videos")
    (tmp_path / "script.py").write_text(UNGUARDED)
    done = python(["script.py"], tmp_path)
    assert_clean(done)
    assert_every_file_labelled(done, files)
    assert (tmp_path / "runs.txt").read_text() == "ran\n"


@pytest.mark.slow
def test_an_unguarded_script_on_standard_input_classifies_with_workers(tmp_path):
    files = videos(tmp_path / "videos")
    done = python(["-"], tmp_path, stdin=UNGUARDED)
    assert_clean(done)
    assert_every_file_labelled(done, files)
    assert (tmp_path / "runs.txt").read_text() == "ran\n"


def readme_example() -> str:
    """The first Python block after the README's "## Python API" heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_python_example_runs_as_a_script(tmp_path):
    """As printed, from a folder holding the README's examples/, with a line added that
    counts how often the script's top level runs."""
    example = readme_example()
    assert 'mvit_cli.load("motion-demo")' in example and "clf.classify(" in example
    (tmp_path / "examples").symlink_to(TREE / "examples", target_is_directory=True)
    script = ('with open("runs.txt", "a") as runs:\n    runs.write("ran\\n")\n' + example
              + 'print("DONE", logits.shape, len(clf.labels))\n')
    (tmp_path / "example.py").write_text(script)
    done = python(["example.py"], tmp_path)
    assert_clean(done)
    assert "DONE torch.Size([" in done.stdout
    for example_file in (TREE / "examples").iterdir():
        assert f"examples/{example_file.name}" in done.stdout, done.stdout
    assert (tmp_path / "runs.txt").read_text() == "ran\n"


def test_only_our_workers_starts_leave_the_main_module_out(monkeypatch):
    """In this process: the preparation data names the main module for anyone else's
    process, and leaves it out while one of ours starts."""
    import threading
    from multiprocessing import spawn

    from mvit_cli.engines.local import worker_start

    fake_main = type(sys)("__main__")
    fake_main.__file__, fake_main.__spec__ = "/somewhere/script.py", None
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    seen = {}

    class Recorder:
        name = "recorder"

        def start(self):
            seen["ours"] = spawn.get_preparation_data(self.name)
            other = threading.Thread(
                target=lambda: seen.setdefault("other thread", spawn.get_preparation_data("x")))
            other.start()
            other.join()

    worker_start.start_worker(Recorder())
    assert "init_main_from_path" not in seen["ours"] and seen["ours"]["sys_path"]
    assert seen["other thread"]["init_main_from_path"] == "/somewhere/script.py"
    assert spawn.get_preparation_data("x")["init_main_from_path"] == "/somewhere/script.py"
