"""`--engine ray` against the local engine, on a real local Ray (2 CPUs), with real files,
manifests, Parquet outputs, and s3:// inputs from an S3-protocol server (moto) on 127.0.0.1.
Those runs are slow; the refusals that come before any Ray starts are not, and run in the
fast suite (as does tests/test_ray_rows.py, the engine's rows without Ray).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import INTERRUPTIBLE, run_cli
from mvit_cli.errors import UsageError
from media import join_clips, write_video

try:
    import ray
except ImportError:  # the runs on Ray skip; the refusals of an install without it still run
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed")


def on_ray(test):
    """An end-to-end run on a real Ray: slow, and skipped where Ray is not installed."""
    return pytest.mark.slow(needs_ray(test))


@pytest.fixture(scope="module")
def s3_env():
    """An S3 server on loopback, its credentials in the standard variables (before Ray
    starts, so its workers inherit them)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    yield env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def local_ray(s3_env):
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("engines") / "in"
    root.mkdir()
    for i in range(6):
        write_video(root / f"clip{i}.mp4", frames=12 + i)
        if i == 2:
            (root / "broken.mp4").write_text("not a video")  # in the middle
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from conftest import register_tiny_architectures, save_tiny

    register_tiny_architectures()
    return save_tiny(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def rows(path: Path) -> dict[str, dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as handle:
            found = list(csv.DictReader(handle))
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        found = pq.read_table(path).to_pylist()
    else:
        found = [json.loads(line) for line in path.read_text().splitlines()]
    by_path = {r["path"]: r for r in found}
    assert len(by_path) == len(found), "a file got two rows"
    return by_path


def classify(*args):
    return run_cli("classify", *args, "--workers", "0")


def same_rows(local: dict, remote: dict) -> None:
    assert set(local) == set(remote)
    for path, row in local.items():
        other = remote[path]
        assert (row["error"] == "") == (other["error"] == ""), path
        assert row["label_1"] == other["label_1"] and row["label_2"] == other["label_2"]
        if row["score_1"] not in ("", None):
            assert abs(float(row["score_1"]) - float(other["score_1"])) < 1e-5


@on_ray
@pytest.mark.parametrize("suffix,layout", [(".csv", "nodes"), (".parquet", "split"),
                                           (".jsonl", "auto")])
def test_both_engines_give_the_same_rows(local_ray, folder, weights, tmp_path, suffix, layout):
    local, remote = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    first = classify(folder, "--weights", weights, "-o", local)
    second = classify(folder, "--weights", weights, "-o", remote, "--engine", "ray",
                      "--ray-layout", layout)
    assert first.exit_code == second.exit_code == 1, second.output  # the broken file
    local_rows, ray_rows = rows(local), rows(remote)
    assert len(ray_rows) == 7
    same_rows(local_rows, ray_rows)
    broken = ray_rows[str(folder / "broken.mp4")]
    assert "not a readable video" in broken["error"]
    assert "1 failed" in second.stderr
    assert {r["weights_sha256"] for r in ray_rows.values()} == {
        r["weights_sha256"] for r in local_rows.values()}


@on_ray
def test_a_resumed_ray_run_skips_what_is_done(local_ray, folder, weights, tmp_path):
    out = tmp_path / "labels.jsonl"
    assert classify(folder / "clip0.mp4", folder / "clip1.mp4", "--weights", weights, "-o",
                    out, "--engine", "ray").exit_code == 0
    again = classify(folder, "--weights", weights, "-o", out, "--engine", "ray")
    assert "2 already in the output" in again.stderr
    assert len(rows(out)) == 7


@on_ray
def test_the_python_api_runs_on_ray(local_ray, folder, weights):
    import mvit_cli

    clf = mvit_cli.load(weights)
    local = {r.path: r for r in clf.classify(folder, workers=0)}
    remote = {r.path: r for r in clf.classify(folder, engine="ray")}
    assert set(local) == set(remote) and len(remote) == 7
    for path, result in local.items():
        assert result.labels == remote[path].labels
        assert result.scores == pytest.approx(remote[path].scores, abs=1e-5)
        assert bool(result.error) == bool(remote[path].error)


@needs_ray
def test_a_pipeline_from_a_python_model_is_refused_on_ray(folder):
    """Refused before Ray starts: no cluster needed."""
    from conftest import TINY_V1

    from mvit_cli import Pipeline, build_model
    from mvit_cli.errors import UsageError

    clf = Pipeline.from_model(build_model(TINY_V1))
    with pytest.raises(UsageError, match="cannot be rebuilt on Ray workers"):
        clf.classify(folder, engine="ray")


@on_ray
@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_a_manifest_is_read_not_listed(local_ray, folder, weights, tmp_path, kind):
    entries = [str(folder / "clip3.mp4"), str(folder / "clip4.mp4"),
               str(tmp_path / "gone.mp4")]
    manifest = tmp_path / f"list.{kind}"
    if kind == "txt":  # and a URI that names no media, and a path relative to the manifest
        entries += ["s3://videos/README", str(tmp_path / "near.mp4")]
        write_video(tmp_path / "near.mp4", frames=8)
    if kind == "txt":
        manifest.write_text("\n".join(entries[:-1] + ["near.mp4"]) + "\n")
    elif kind == "csv":
        manifest.write_text("path,note\n" + "".join(f"{e},x\n" for e in entries))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"path": entries}), manifest)
    out = tmp_path / "labels.csv"
    result = classify("--manifest", manifest, "--weights", weights, "-o", out,
                      "--engine", "ray")
    assert result.exit_code == 1, result.output
    found = rows(out)
    assert set(found) == set(entries)
    assert found[entries[2]]["error"] and not found[entries[0]]["error"]
    if kind == "txt":  # one rule for what a listed name is, on the driver and on Ray
        local = tmp_path / "local.csv"
        assert classify("--manifest", manifest, "--weights", weights, "-o", local).exit_code == 1
        assert rows(local)["s3://videos/README"]["error"] == "not a video or image file"
        assert found["s3://videos/README"]["error"] == "not a video or image file"


@on_ray
def test_object_store_inputs_through_both_engines(local_ray, s3_env, folder, weights,
                                                  tmp_path):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="videos")
    for name in ("clip0.mp4", "clip5.mp4", "broken.mp4"):
        s3.upload_file(str(folder / name), "videos", f"set/{name}")
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert classify("s3://videos/set/", "--weights", weights, "-o", local).exit_code == 1
    assert classify("s3://videos/set/", "--weights", weights, "-o", remote,
                    "--engine", "ray").exit_code == 1
    local_rows, ray_rows = rows(local), rows(remote)
    assert set(ray_rows) == {f"s3://videos/set/{n}" for n in
                             ("clip0.mp4", "clip5.mp4", "broken.mp4")}
    same_rows(local_rows, ray_rows)
    resumed = classify("s3://videos/set/", "--weights", weights, "-o", remote, "--engine", "ray")
    assert "3 already in the output" in resumed.stderr


def window_rows(path: Path) -> dict[tuple[str, float], dict]:
    with open(path, newline="") as handle:
        found = list(csv.DictReader(handle))
    by_window = {(r["path"], round(float(r["start"] or -1), 3)): r for r in found}
    assert len(by_window) == len(found), "a window got two rows"
    return by_window


def no_local_timelines(monkeypatch) -> None:
    """From here on, a timeline computed in this process (not by a Ray worker) fails."""
    from mvit_cli.engines.local.timeline_runner import TimelineRunner

    def refuse(*args, **kwargs):
        raise AssertionError("the timeline ran on the driver, not on Ray")

    monkeypatch.setattr(TimelineRunner, "run", refuse)


@on_ray
def test_timelines_on_ray_are_the_local_ones(local_ray, tmp_path, monkeypatch):
    """motion-demo over two long videos of known motions and a broken file: the same
    windows, labels and scores from both engines, the same segments, and resume."""
    videos = tmp_path / "long"
    videos.mkdir()
    join_clips(videos / "a.mp4")
    join_clips(videos / "b.mp4", order=["shrinking", "moving right"], seed=9100)
    (videos / "broken.mp4").write_text("not a video")
    args = ("--weights", "motion-demo", "--window", "1.5", "--stride", "0.75")
    local, remote = tmp_path / "local.csv", tmp_path / "ray.csv"
    first = run_cli("timeline", videos, *args, "-o", local, "--workers", "0")
    local_segments = run_cli("timeline", videos / "b.mp4", *args, "--workers", "0").stdout
    no_local_timelines(monkeypatch)
    second = run_cli("timeline", videos, *args, "-o", remote, "--engine", "ray")
    assert first.exit_code == second.exit_code == 1, second.output  # the broken file
    assert "broken.mp4: error" in second.stderr and "2 of 3 videos" in second.stderr
    local_rows, ray_rows = window_rows(local), window_rows(remote)
    assert set(local_rows) == set(ray_rows) and len(ray_rows) > 20
    for key, row in local_rows.items():
        other = ray_rows[key]
        assert row["error"] == other["error"] or (row["error"] and other["error"]), key
        assert row["label_1"] == other["label_1"], key
        if row["score_1"]:
            assert abs(float(row["score_1"]) - float(other["score_1"])) < 1e-5, key
    ray_segments = run_cli("timeline", videos / "b.mp4", *args, "--engine", "ray").stdout
    assert local_segments == ray_segments and "shrinking" in ray_segments
    again = run_cli("timeline", videos, *args, "-o", remote, "--engine", "ray")
    assert "3 already in the output" in again.stderr
    assert len(window_rows(remote)) == len(ray_rows)


@on_ray
def test_the_timeline_api_runs_on_ray(local_ray, tmp_path, monkeypatch):
    import mvit_cli

    video = join_clips(tmp_path / "a.mp4", order=["moving up", "growing"])
    clf = mvit_cli.load("motion-demo")
    probed = []
    [local] = clf.timeline(video, workers=0)
    no_local_timelines(monkeypatch)
    [remote] = clf.timeline(video, engine="ray", on_probe=lambda p, s: probed.append((p, s)))
    assert remote.ok and probed == [(str(video), pytest.approx(local.duration))]
    assert [w.start for w in remote.windows] == [w.start for w in local.windows]
    for mine, theirs in zip(local.windows, remote.windows, strict=True):
        assert np.abs(mine.probs - theirs.probs).max() < 1e-5
    with pytest.raises(UsageError, match="features"):
        clf.timeline(video, engine="ray", features=True)


@pytest.mark.parametrize("command", ["classify", "timeline"])
def test_without_ray_the_engine_says_how_to_install_it(tmp_path, weights, command):
    code = ("import sys; sys.modules['ray'] = None\n"
            "from mvit_cli.cli import main\nmain(sys.argv[1:])")
    video = write_video(tmp_path / "c.mp4", frames=8)
    done = subprocess.run([sys.executable, "-c", code, command, str(video), "--weights",
                           str(weights), "--engine", "ray"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "pip install 'ray[data]>=2.51'" in done.stderr
    assert "mvit-cli[" not in done.stderr  # not on PyPI: name what pip can install
    assert len(done.stderr.strip().splitlines()) == 1


@on_ray
def test_an_interrupted_ray_run_resumes_without_losses(local_ray, weights, tmp_path):
    """Ctrl-C on the driver (a process of its own, on the test's Ray): the rows written
    stay, and a second run does the rest, once each."""
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(16):
        write_video(folder / f"clip{i:02d}.mp4", frames=8)
    out = tmp_path / "labels.csv"
    command = [sys.executable, "-m", "mvit_cli.cli", "classify", str(folder), "--weights",
               str(weights), "-o", str(out), "--engine", "ray", "--batch-size", "1"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, **INTERRUPTIBLE)
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_text().count("\n") > 2):
        assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    before = len(rows(out))
    assert 0 < before < 16
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{before} already in the output" in again.stderr
    found = rows(out)
    assert len(found) == 16 and all(r["error"] == "" for r in found.values())


CLUSTER = """
import sys, ray
ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False)
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()  # up until the test closes stdin
"""


@on_ray
def test_a_cluster_without_credentials_gets_the_drivers(s3_env, folder, weights, tmp_path):
    """Workers of a cluster start from their node's environment: the object-store settings
    reach them from the driver (an S3 server that needs them, a cluster that lacks them)."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"])
    s3.create_bucket(Bucket="private")
    s3.upload_file(str(folder / "clip1.mp4"), "private", "clip1.mp4")
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env=bare)
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the cluster did not start"
        out = tmp_path / "labels.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "mvit_cli.cli", "classify", "s3://private/clip1.mp4",
             "--weights", str(weights), "-o", str(out), "--engine", "ray"],
            capture_output=True, text=True, timeout=300,
            env={**bare, **s3_env, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token"})
        assert done.returncode == 0, done.stderr
        [row] = rows(out).values()
        assert row["error"] == "" and row["label_1"]
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=60)


def test_inputs_that_cannot_be_read_are_one_line(tmp_path, weights):
    """An empty manifest, and an object store that refuses us (no credentials), without Ray."""
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing here\n")
    result = run_cli("classify", "--manifest", empty, "--weights", weights)
    assert result.exit_code == 2 and "lists no paths" in result.stderr
    bare = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    code = "from mvit_cli.cli import main; import sys; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "classify", "s3://nobucket/x/",
                           "--weights", str(weights)], capture_output=True, text=True,
                          timeout=120, env={**bare, "AWS_EC2_METADATA_DISABLED": "true",
                                            "AWS_CONFIG_FILE": "/nonexistent",
                                            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "s3://nobucket/x/: cannot list it" in done.stderr
