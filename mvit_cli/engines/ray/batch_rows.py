"""The Ray engine's rows: a path decoded into its views, a batch's views scored into one row
per file, a row turned back into the driver's FileResult, and one result per listed path.

Apart from `engine` and free of Ray because this is where a slip gives a file another
file's labels or loses its row, and the fast tests should see that with a fake model, without
starting a cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ...jobs.classify import ClassifyJob, FileResult
from ...media.discover import InputItem
from ...media.protocol import Protocol

if TYPE_CHECKING:  # torch only where a batch is scored: `--engine ray` without Ray fails fast
    import torch

# uint8 views (N, T, crop, crop, 3) of one file -> softmax (N, classes), float32 on the CPU.
Score = Callable[["torch.Tensor"], "torch.Tensor"]

# A scored row's columns, as the model stage hands them to the driver.
COLUMNS = ("path", "labels", "scores", "error", "duration", "frames", "views", "warning")


def error_text(exc: BaseException) -> str:
    """One line for a row: Ray's and the decoders' messages run to many."""
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode_row(row: Mapping[str, Any], protocol: Protocol, video_model: bool
               ) -> dict[str, Any]:
    """One input to its views (as bytes, which Arrow carries between stages where an array of
    a shape per row it does not), or to its error row: every path keeps a row."""
    from ...jobs.tasks import Task
    from ...media.discover import kind_error, unchecked_item
    from ..local.workers import prepare

    path = row["path"]
    out = {"path": path, "views": b"", "shape": [], "error": "", "duration": -1.0,
           "frames": -1, "warning": ""}
    try:
        item = unchecked_item(path)
        error = item.error or kind_error(item.kind, video_model)
        if error:
            out["error"] = error
            return out
        prepared = prepare(Task(0, path, item.kind), protocol)
        if prepared.error:
            out["error"] = prepared.error
            return out
        out.update(views=prepared.views.tobytes(), shape=list(prepared.views.shape),
                   duration=float(prepared.duration) if video_model else -1.0,
                   frames=int(prepared.source_frames) if video_model else -1,
                   warning=prepared.warning)
    except Exception as exc:  # noqa: BLE001 - every input keeps its row
        out["error"] = error_text(exc)
    return out


def views_of(batch: Mapping[str, Sequence], index: int) -> np.ndarray:
    """Row `index`'s views, back in their shape (a writable copy: torch wants one)."""
    flat = np.frombuffer(batch["views"][index], dtype=np.uint8)
    return flat.reshape([int(n) for n in batch["shape"][index]]).copy()


def score_batch(batch: Mapping[str, Sequence], score: Score, job: ClassifyJob
                ) -> dict[str, list]:
    """A decoded batch (the columns of `decode_row`) to its scored rows (COLUMNS), row i from
    row i's views alone, made by the job as the local engine makes them; a row that came
    with an error keeps it, and one whose views fail to score gets its own error while the
    others keep their labels."""
    import torch

    out: dict[str, list] = {key: [] for key in COLUMNS}
    for i, path in enumerate(batch["path"]):
        error, names, scores, count = str(batch["error"][i]), [], [], 0
        if not error:
            try:
                views = views_of(batch, i)
                row = job.finish_views(FileResult(str(path)), score(torch.from_numpy(views)))
                names, scores = row.labels, row.scores
                count = len(views)
            except Exception as exc:  # noqa: BLE001 - the row stays, with its error
                error = error_text(exc)
        for key, value in (("path", str(path)), ("labels", names), ("scores", scores),
                           ("error", error), ("duration", float(batch["duration"][i])),
                           ("frames", int(batch["frames"][i])), ("views", count),
                           ("warning", str(batch["warning"][i]))):
            out[key].append(value)
    return out


def file_result(row: Mapping[str, Any]) -> FileResult:
    """A scored row as the driver writes it: -1 (Arrow has no None in a float column) is
    back to None, and an error row has no labels."""
    error = str(row["error"])
    duration, frames = float(row["duration"]), int(row["frames"])
    return FileResult(
        str(row["path"]), labels=list(row["labels"]) if not error else [],
        scores=[float(s) for s in row["scores"]] if not error else [], error=error,
        duration=duration if duration >= 0 else None, frames=frames if frames >= 0 else None,
        views=int(row["views"]), warning=str(row["warning"]))


def input_items(paths: Iterable[str]) -> list[InputItem]:
    """The inputs a call's paths name, by the same rule as the driver's manifests; a path
    that cannot even be named is an item with its error, not an exception that would take
    the call's other paths with it."""
    from ...media.discover import unchecked_item

    items = []
    for path in paths:
        try:
            items.append(unchecked_item(path))
        except Exception as exc:  # noqa: BLE001 - every input keeps its row
            items.append(InputItem(path, None, error_text(exc)))
    return items


def one_per_item(items: Sequence[InputItem], run: Callable[[], Iterable],
                 failed: Callable[[str, str], Any]) -> list:
    """The results `run()` yields (each with a `path`), one per item in the items' order;
    an item the run failed on, or never reached, gets `failed(path, error)`. The local engine
    yields in the order files finish and stops at its first exception: the driver counts on
    exactly one row per path it sent."""
    done: dict[str, Any] = {}
    try:
        for result in run():
            done[result.path] = result
    except Exception as exc:  # noqa: BLE001 - the list's rows stay, with the error
        for item in items:
            done.setdefault(item.path, failed(item.path, error_text(exc)))
    return [done.get(item.path) or failed(item.path, "no result") for item in items]
