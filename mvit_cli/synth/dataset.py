"""A dataset on disk: one folder per class, clips numbered within it, and labels.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .formats import FORMATS
from .sampling import clip_spec
from .spec import LABELS, ClipSpec
from .writer import SynthError, write_clip


def folder_name(label: str) -> str:
    """The class folder of `label`: spaces in folder names trip up shells and scripts."""
    return label.replace(" ", "_")


def _remove_other_formats(path: Path) -> None:
    """A rerun with another seed may have written this clip in another container: without
    this, the folder would hold the clip twice."""
    for extension in FORMATS:
        other = path.with_suffix(f".{extension}")
        if other != path:
            try:
                other.unlink(missing_ok=True)
            except OSError as exc:
                raise SynthError(f"cannot remove {other}: {exc.strerror or exc}") from exc


def write_dataset(out_dir: Path | str, per_class: int, seed: int,
                  progress: Callable[[Path, str], None] | None = None,
                  variety: str = "classic", jobs: int = 1) -> list[tuple[Path, str]]:
    """Write `per_class` clips of every class under out_dir/<label_with_underscores>/.

    Also writes out_dir/labels.txt, the labels in class-index order. Clips are made one of
    each class in turn, so a run stopped early still has balanced classes. `progress` is
    called after each clip with its path and label. `variety`: one of VARIETIES; `jobs`:
    processes rendering at once (the files are the same whatever the number). Returns
    (path, label) per clip.
    """
    out_dir = Path(out_dir)
    try:
        for label in LABELS:
            (out_dir / folder_name(label)).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SynthError(f"cannot write to {out_dir}: {exc.strerror or exc}") from exc
    plan = []
    for index in range(per_class):
        for label in LABELS:
            spec = clip_spec(seed, label, index, variety)
            path = out_dir / folder_name(label) / f"{index:05d}.{spec.extension}"
            plan.append((spec, path))
    written = []
    for spec, path in _written(plan, jobs):
        written.append((path, spec.label))
        if progress is not None:
            progress(path, spec.label)
    return written


def rewrite_clip(spec: ClipSpec, path: Path) -> None:
    _remove_other_formats(path)
    write_clip(spec, path)


def _written(plan: list[tuple[ClipSpec, Path]], jobs: int):
    """Each (spec, path) of `plan` once its file is written, in order; `jobs` processes."""
    if jobs <= 1:
        for spec, path in plan:
            rewrite_clip(spec, path)
            yield spec, path
        return
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending: deque = deque()
        try:
            for spec, path in plan:
                pending.append((spec, path, pool.submit(rewrite_clip, spec, path)))
                while len(pending) > 4 * jobs:
                    done = pending.popleft()
                    done[2].result()
                    yield done[0], done[1]
            while pending:
                done = pending.popleft()
                done[2].result()
                yield done[0], done[1]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
