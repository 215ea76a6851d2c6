"""The Ray engine's rows without Ray: each file scored from its own views, error rows on their
own files, the order of rows and calls, and the node arithmetic. A fake model answers with
the class a view is filled with, so a row scored from another row's views shows at once.

tests/test_engines.py runs the same code end to end on a real local Ray (slow).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import PROTOCOL, TINY_V1, register_tiny_architectures, save_tiny
from media import write_image, write_video
from mvit_cli.jobs.classify import ClassifyJob, FileResult
from mvit_cli.engines.ray import scheduling
from mvit_cli.engines.ray.batch_rows import (COLUMNS, decode_row, file_result, input_items,
                                         one_per_item, score_batch, views_of)
from mvit_cli.errors import UsageError
from mvit_cli.media.discover import InputItem
from mvit_cli.media.protocol import protocol_for

CLASSES = 10
LABELS = [f"L{i}" for i in range(CLASSES)]


def job(top_k: int) -> ClassifyJob:
    """The classify job that makes the rows (its protocol is the decoders', not used here)."""
    return ClassifyJob(LABELS, None, True, top_k=top_k)


def seen(views: torch.Tensor) -> torch.Tensor:
    """The fake model: each view's softmax is all on the class its pixels hold."""
    classes = views.reshape(len(views), -1)[:, 0].long()
    return torch.nn.functional.one_hot(classes, CLASSES).float()


def decoded(path: str, classes: list[int] | None, frames: int = 2, error: str = "",
            duration: float = -1.0, source_frames: int = -1, warning: str = "") -> dict:
    """A row as decode_row leaves it: views (one per entry of `classes`, each filled with
    its class) as bytes, with their shape."""
    if classes is None:
        return {"path": path, "views": b"", "shape": [], "error": error, "duration": duration,
                "frames": source_frames, "warning": warning}
    views = np.stack([np.full((frames, 4, 4, 3), c, np.uint8) for c in classes])
    return {"path": path, "views": views.tobytes(), "shape": list(views.shape), "error": error,
            "duration": duration, "frames": source_frames, "warning": warning}


def as_batch(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows as Ray Data hands a batch to map_batches: one numpy array per column."""
    return {key: np.array([row[key] for row in rows], dtype=object) for key in rows[0]}


def by_path(out: dict[str, list]) -> dict[str, dict]:
    assert set(out) == set(COLUMNS)
    rows = [dict(zip(out, values, strict=True)) for values in zip(*out.values(), strict=True)]
    return {row["path"]: row for row in rows}


# ---- a batch's views back to their files -------------------------------------------------


def test_each_file_gets_the_mean_and_top_k_of_its_own_views():
    """Files of 3, 5, 1 and 7 views (of 2, 3, 1 and 4 frames), in one batch: each row's
    labels are its own views' mean, best first, whatever its neighbours hold."""
    batch = as_batch([decoded("a", [0, 1, 0], frames=2),
                      decoded("b", [3, 2, 3, 3, 3], frames=3),
                      decoded("c", [9], frames=1),
                      decoded("d", [5, 4, 4, 5, 5, 4, 4], frames=4)])
    rows = by_path(score_batch(batch, seen, job(2)))
    assert rows["a"]["labels"] == ["L0", "L1"]
    assert rows["a"]["scores"] == pytest.approx([2 / 3, 1 / 3])
    assert rows["b"]["labels"] == ["L3", "L2"]
    assert rows["b"]["scores"] == pytest.approx([4 / 5, 1 / 5])
    assert rows["c"]["labels"][0] == "L9" and rows["c"]["scores"] == pytest.approx([1, 0])
    assert rows["d"]["labels"] == ["L4", "L5"]
    assert rows["d"]["scores"] == pytest.approx([4 / 7, 3 / 7])
    assert [rows[p]["views"] for p in "abcd"] == [3, 5, 1, 7]
    assert all(row["error"] == "" for row in rows.values())


def test_rows_keep_the_batchs_order_and_their_own_columns():
    paths = [f"clip{i}.mp4" for i in range(5)]
    batch = as_batch([decoded(p, [i], duration=1.5 + i, source_frames=30 + i,
                              warning=f"note {i}") for i, p in enumerate(paths)])
    out = score_batch(batch, seen, job(1))
    assert out["path"] == paths
    assert out["labels"] == [[f"L{i}"] for i in range(5)]
    assert out["duration"] == [1.5 + i for i in range(5)]
    assert out["frames"] == [30 + i for i in range(5)]
    assert out["warning"] == [f"note {i}" for i in range(5)]


def test_a_row_that_came_with_an_error_keeps_it_and_its_neighbours_keep_theirs():
    calls: list[list[int]] = []

    def model(views: torch.Tensor) -> torch.Tensor:
        calls.append(views.reshape(len(views), -1)[:, 0].tolist())
        return seen(views)

    batch = as_batch([decoded("a", [1, 1]), decoded("bad", None, error="not a readable video"),
                      decoded("c", [7])])
    rows = by_path(score_batch(batch, model, job(1)))
    assert rows["bad"]["error"] == "not a readable video"
    assert rows["bad"]["labels"] == [] and rows["bad"]["views"] == 0
    assert rows["a"]["labels"] == ["L1"] and rows["c"]["labels"] == ["L7"]
    assert sorted(calls) == [[1, 1], [7]], "the model sees each file's views, once"


def test_a_file_the_model_fails_on_gets_the_error_on_its_own_row():
    def model(views: torch.Tensor) -> torch.Tensor:
        if int(views.flatten()[0]) == 6:
            raise RuntimeError("out of memory\nand a long story after it")
        return seen(views)

    batch = as_batch([decoded("a", [2]), decoded("b", [6, 6, 6]), decoded("c", [8])])
    rows = by_path(score_batch(batch, model, job(1)))
    assert rows["b"]["error"] == "RuntimeError: out of memory"
    assert rows["b"]["labels"] == [] and rows["b"]["scores"] == []
    assert rows["a"] == {**rows["a"], "labels": ["L2"], "error": ""}
    assert rows["c"] == {**rows["c"], "labels": ["L8"], "error": ""}


def test_views_that_do_not_fit_their_shape_are_that_rows_error():
    good, bad = decoded("good", [4]), decoded("bad", [5, 5])
    bad["shape"] = [3, 2, 4, 4, 3]  # 3 views recorded, 2 sent
    rows = by_path(score_batch(as_batch([bad, good]), seen, job(1)))
    assert rows["bad"]["error"].startswith("ValueError: ")
    assert rows["good"]["labels"] == ["L4"] and rows["good"]["error"] == ""


def test_a_files_labels_are_the_mean_of_its_views_best_first():
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.4, 0.2, 0.4]])
    two = ClassifyJob(["x", "y", "z"], None, True, top_k=2).finish_views(FileResult("f"), probs)
    assert two.labels == ["y", "z"] and two.scores == pytest.approx([0.4, 0.35])
    five = ClassifyJob(["x", "y", "z"], None, True, top_k=5).finish_views(FileResult("f"), probs)
    assert five.labels == ["y", "z", "x"]  # k past the classes


def test_the_model_actor_gives_each_file_the_local_engines_labels(tmp_path):
    """The split layout's model stage (ModelActor, as Ray Data calls it) on one batch of a
    tiny model's files, a broken one among them, against the local engine on the same files:
    the slow tests' comparison, without Ray."""
    from mvit_cli import load
    from mvit_cli.assembly import LoadArguments
    from mvit_cli.engines.ray.engine import ModelActor

    register_tiny_architectures()
    weights = save_tiny(tmp_path / "tiny.safetensors")
    paths = [str(write_video(tmp_path / f"v{i}.mp4", frames=6 + 9 * i)) for i in range(3)]
    (tmp_path / "broken.mp4").write_text("not a video")
    paths.insert(1, str(tmp_path / "broken.mp4"))
    clf = load(weights, device="cpu", precision="fp32")
    local = {r.path: r for r in clf.classify(paths, top_k=3, clips=2, workers=0)}
    rows = [decode_row({"path": p}, clf.protocol_with(2, 1), video_model=True) for p in paths]
    threads = torch.get_num_threads()  # the actor sets torch's threads: keep this process's
    job = ClassifyJob(clf.labels, clf.protocol_with(2, 1), True, top_k=3)
    actor = ModelActor(LoadArguments(str(weights), None, None, "fp32"), job, threads, False)
    remote = by_path(actor(as_batch(rows)))
    assert list(remote) == paths
    assert len({tuple(local[p].scores) for p in paths}) == 4  # files the model tells apart
    for path in paths:
        assert bool(remote[path]["error"]) == bool(local[path].error), path
        assert remote[path]["labels"] == local[path].labels, path
        assert remote[path]["scores"] == local[path].scores, path  # the same sums, bit for bit
        assert remote[path]["views"] == local[path].views, path


# ---- rows into and out of the pipeline ---------------------------------------------------


def test_a_scored_row_becomes_the_drivers_file_result():
    ok = {"path": "a.mp4", "labels": np.array(["L1", "L2"]), "scores": np.array([0.7, 0.2]),
          "error": "", "duration": 2.5, "frames": 75, "views": 3, "warning": "w"}
    assert file_result(ok) == FileResult("a.mp4", ["L1", "L2"], [0.7, 0.2], "", 2.5, 75, 3,
                                         "w")
    image = {**ok, "duration": -1.0, "frames": -1}  # Arrow's stand-in for None
    assert file_result(image).duration is None and file_result(image).frames is None
    failed = file_result({**ok, "error": "not a readable video", "views": 0})
    assert (failed.labels, failed.scores, failed.error) == ([], [], "not a readable video")


def test_decoded_rows_carry_their_own_files_views_and_errors(tmp_path):
    protocol = protocol_for(TINY_V1, PROTOCOL, clips=2)
    short, long_ = (write_video(tmp_path / "short.mp4", frames=9),
                    write_video(tmp_path / "long.mp4", frames=21))
    (tmp_path / "broken.mp4").write_text("not a video")
    image = write_image(tmp_path / "still.png")
    paths = [str(short), str(tmp_path / "broken.mp4"), str(tmp_path / "notes.txt"),
             str(image), str(long_), str(tmp_path / "gone.mp4")]
    rows = [decode_row({"path": p}, protocol, video_model=True) for p in paths]
    assert [row["path"] for row in rows] == paths
    assert [row["frames"] for row in rows] == [9, -1, -1, -1, 21, -1]
    assert rows[0]["duration"] == pytest.approx(9 / 30) and rows[4]["duration"] > 0.6
    assert views_of(as_batch(rows), 4).shape == (2, 4, 32, 32, 3)
    assert all(rows[i]["error"] == "" for i in (0, 4))
    assert rows[2]["error"] == "not a video or image file"
    assert rows[3]["error"].startswith("this is an image, and the model is not")
    assert rows[1]["error"] and rows[5]["error"]
    assert all(rows[i]["views"] == b"" for i in (1, 2, 3, 5))


def test_input_items_keep_the_order_and_name_what_they_cannot_read():
    items = input_items(["/v/a.mp4", "/v/readme", "s3://b/c.jpg"])
    assert [(i.path, i.kind, i.error) for i in items] == [
        ("/v/a.mp4", "video", ""), ("/v/readme", None, "not a video or image file"),
        ("s3://b/c.jpg", "image", "")]


# ---- one result per path (the nodes layout) ----------------------------------------------


def failed_row(path: str, error: str) -> FileResult:
    return FileResult(path, error=error)


def items(*paths: str) -> list[InputItem]:
    return [InputItem(p, "video") for p in paths]


def test_one_per_item_puts_results_back_in_the_items_order():
    listed = items("a", "b", "c")
    out = one_per_item(listed, lambda: iter([FileResult("c", ["x"]), FileResult("a", ["y"]),
                                             FileResult("b", ["z"])]), failed_row)
    assert [(r.path, r.labels) for r in out] == [("a", ["y"]), ("b", ["z"]), ("c", ["x"])]


def test_a_run_that_stops_leaves_the_rest_an_error_and_keeps_what_it_did():
    def run():
        yield FileResult("b", ["x"])
        raise RuntimeError("decoder died\ntraceback")

    out = one_per_item(items("a", "b", "c"), run, failed_row)
    assert [r.path for r in out] == ["a", "b", "c"]
    assert out[1].labels == ["x"] and out[1].error == ""
    assert out[0].error == out[2].error == "RuntimeError: decoder died"


def test_an_item_the_run_never_reached_is_a_no_result_row():
    out = one_per_item(items("a", "b"), lambda: iter([FileResult("b", ["x"])]), failed_row)
    assert out[0] == FileResult("a", error="no result") and out[1].labels == ["x"]


# ---- cutting the work up -----------------------------------------------------------------


def node(cpus: float, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpus} if cpus else {"memory": 1.0}}


def test_only_live_nodes_with_cpus_take_actors_and_the_smallest_sets_the_request():
    nodes = [node(8), node(0), node(4), node(2, alive=False), node(16)]
    usable = scheduling.cpu_nodes(nodes)
    assert usable == [nodes[0], nodes[2], nodes[4]]
    assert scheduling.node_cpus(usable) == 4
    assert scheduling.node_cpus([node(0.5)]) == 1


@pytest.mark.parametrize("batch_size,views,expected",
                         [(8, 1, 8), (8, 3, 2), (8, 10, 1), (8, 0, 8), (1, 1, 1)])
def test_files_per_call_hold_about_a_batch_of_views(batch_size, views, expected):
    assert scheduling.files_per_call(batch_size, views) == expected


def test_the_layout_follows_the_cluster_unless_asked():
    assert scheduling.choose_layout(None, gpus=0) == "nodes"
    assert scheduling.choose_layout(None, gpus=2) == "split"
    assert scheduling.choose_layout("split", gpus=0) == "split"
    with pytest.raises(UsageError, match="nodes or split, not 'grid'"):
        scheduling.choose_layout("grid", gpus=0)


def test_the_model_actor_asks_for_unequal_cpus_to_the_decoders():
    assert scheduling.model_actor_resources(gpus=2, cpus=16) == (1.0, 1)
    assert scheduling.model_actor_resources(gpus=0, cpus=16) == (8.0, 16)
    assert scheduling.model_actor_resources(gpus=0, cpus=1) == (1.0, 1)


def test_paths_go_in_calls_of_the_size_asked_in_order():
    assert scheduling.in_calls(["a", "b", "c", "d", "e"], 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert scheduling.in_calls([], 3) == []


class FakeCluster:
    """Calls as handles (their number); a call of a path in `lost` raises where Ray's get
    would (its actor died under it)."""

    def __init__(self, lost: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, list[str]]] = []
        self.lost = lost
        self.outstanding: dict[str, int] = {}
        self.deepest = 0

    def send(self, actor: str, paths: list[str]) -> int:
        self.sent.append((actor, paths))
        self.outstanding[actor] = self.outstanding.get(actor, 0) + 1
        self.deepest = max(self.deepest, self.outstanding[actor])
        return len(self.sent) - 1

    def results(self, handle: int) -> list[FileResult]:
        actor, paths = self.sent[handle]
        self.outstanding[actor] -= 1
        if set(paths) & set(self.lost):
            raise RuntimeError(f"actor {actor} died\nits log")
        return [FileResult(p, [actor]) for p in paths]


def test_calls_go_out_in_order_two_deep_and_come_back_whole():
    cluster = FakeCluster()
    paths = [f"p{i}" for i in range(9)]
    out = list(scheduling.run_calls(["x", "y"], scheduling.in_calls(paths, 2), cluster.send,
                                    min, cluster.results, failed_row))
    assert [r.path for r in out] == paths  # oldest call first: the paths' own order
    assert [chunk for _, chunk in cluster.sent] == scheduling.in_calls(paths, 2)
    assert [actor for actor, _ in cluster.sent[:4]] == ["x", "x", "y", "y"]
    assert cluster.deepest == 2


def test_results_come_as_calls_finish():
    cluster = FakeCluster()
    out = list(scheduling.run_calls(["x"], [["a"], ["b"], ["c"]], cluster.send, max,
                                    cluster.results, failed_row))
    assert [r.path for r in out] == ["b", "c", "a"]  # the newest call finishing first


def test_a_call_whose_actor_died_is_error_rows_for_its_own_paths():
    """The first call fails while others still wait to be sent: its own paths get the error,
    and the actor goes on with the next call."""
    cluster = FakeCluster(lost=("a",))
    calls = [["a", "b"], ["c"], ["d"], ["e"], ["f", "g"]]
    out = list(scheduling.run_calls(["x", "y"], calls, cluster.send, min, cluster.results,
                                    failed_row))
    assert sorted(r.path for r in out) == list("abcdefg")
    errors = {r.path: r.error for r in out if r.error}
    assert errors == {p: "the Ray worker failed: RuntimeError: actor x died" for p in "ab"}
    assert [(actor, chunk) for actor, chunk in cluster.sent][4] == ("x", ["f", "g"])
    assert all(r.labels for r in out if not r.error)
