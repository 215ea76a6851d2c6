"""A labelled video folder, decoded once into memory, and the augmentations drawn from it.

DATA_DIR holds one folder per class. Labels are the folder names with underscores read as
spaces, in sorted order, unless DATA_DIR/labels.txt lists them (then in that order). Every
clip is decoded once, T frames spread over its whole length, resized so its short side is a
little larger than the training size and centre-cropped square: augmentations then only cut
and scale arrays in memory.
"""

from __future__ import annotations

import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MvitError
from ..media.decode import decode_video, media_kind, silence_decoder_messages
from ..media.protocol import KINETICS_MEAN, KINETICS_STD, Protocol
from ..media.transform import crop_boxes, resize_short_side

# Decoded clips keep this much more than the training size, room for random crops.
MARGIN = 1.15
# A horizontal flip turns these into their opposites, so such clips are never flipped.
MIRROR_WORDS = ("left", "right", "clockwise")
# Played backwards, a clip of one word of a pair shows the other ("moving left" becomes
# "moving right"): with --time-reversal such clips are reversed and relabelled.
REVERSED_WORDS = (("left", "right"), ("up", "down"), ("clockwise", "counterclockwise"),
                  ("clockwise", "anticlockwise"), ("growing", "shrinking"),
                  ("opening", "closing"), ("rising", "falling"), ("forward", "backward"),
                  ("approaching", "receding"), ("in", "out"))


class DatasetError(MvitError, ValueError):
    """A data folder we cannot train from; one line."""


@dataclass
class ClipSet:
    clips: np.ndarray  # (N, T, S, S, 3) uint8, S = load size
    labels: np.ndarray  # (N,) int64
    names: list[str]  # class names, index order
    paths: list[str]
    skipped: list[str] = field(default_factory=list)  # videos that could not be decoded


def mirror_sensitive(label: str) -> bool:
    """Whether flipping left-right would change what the label says."""
    return any(word in label.lower() for word in MIRROR_WORDS)


def time_opposites(names: list[str]) -> dict[int, int]:
    """Class index -> the class a backwards clip of it belongs to, for every label whose
    word-for-word opposite (REVERSED_WORDS) is also a class; other classes have none."""
    swaps: dict[str, list[str]] = {}
    for one, other in REVERSED_WORDS:
        swaps.setdefault(one, []).append(other)
        swaps.setdefault(other, []).append(one)
    index = {name.lower(): i for i, name in enumerate(names)}
    opposites = {}
    for i, name in enumerate(names):
        words = [[word] + swaps.get(word, []) for word in name.lower().split()]
        for candidate in itertools.product(*words):
            reversed_name = " ".join(candidate)
            if reversed_name != name.lower() and reversed_name in index:
                opposites[i] = index[reversed_name]
                break
    return opposites


def scan(data_dir: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(video path, class index) for every video, and the class names."""
    if not data_dir.is_dir():
        raise DatasetError(f"{data_dir}: not a folder")
    folders = {p.name: p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    listing = data_dir / "labels.txt"
    if listing.exists():
        names = [line.strip() for line in listing.read_text("utf-8").splitlines() if line.strip()]
    else:
        names = sorted(name.replace("_", " ") for name in folders)
    items = []
    for index, name in enumerate(names):
        folder = folders.get(name) or folders.get(name.replace(" ", "_"))
        if folder is None:
            raise DatasetError(f"{data_dir}: no folder for class {name!r}")
        videos = sorted(p for p in folder.rglob("*") if p.is_file() and media_kind(p) == "video")
        if not videos:
            raise DatasetError(f"{folder}: no videos in this class folder")
        items += [(path, index) for path in videos]
    if len(names) < 2:
        raise DatasetError(f"{data_dir}: needs at least two class folders")
    return items, names


def _load_one(job: tuple[str, int, int]) -> np.ndarray | None:
    path, frames, size = job
    protocol = Protocol(frames=frames, frame_interval=0.0, clips=1, crops=1, short_side=size,
                        crop=size, mean=KINETICS_MEAN, std=KINETICS_STD)
    try:
        sampled = decode_video(Path(path), protocol)
    except Exception:  # noqa: BLE001 - a bad clip is skipped, and listed in ClipSet.skipped
        return None
    tensor = torch.from_numpy(sampled.frames).permute(0, 3, 1, 2)
    tensor = resize_short_side(tensor, size, "bilinear")
    top, left = crop_boxes(tensor.shape[-2], tensor.shape[-1], size, 1)[0]
    return tensor[:, :, top:top + size, left:left + size].permute(0, 2, 3, 1).numpy()


def load(data_dir: Path, frames: int, size: int, workers: int = 2) -> ClipSet:
    """Decode every clip of `data_dir` at a size that leaves room for random crops."""
    items, names = scan(data_dir)
    load_size = int(round(size * MARGIN))
    jobs = [(str(path), frames, load_size) for path, _ in items]
    if workers > 1:
        # An executor, not multiprocessing.Pool: when a worker dies (a crash in a decoder, or
        # a script without a __main__ guard re-running itself) Pool replaces it and waits
        # forever for its lost task; the executor raises instead.
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=silence_decoder_messages) as pool:
                arrays = list(pool.map(_load_one, jobs, chunksize=8))
        except BrokenProcessPool:
            raise DatasetError(f"{data_dir}: a decoding process died (try --workers 1)") from None
    else:
        arrays = [_load_one(job) for job in jobs]
    kept = [i for i, a in enumerate(arrays) if a is not None]
    if not kept:
        raise DatasetError(f"{data_dir}: none of the {len(items)} videos could be decoded")
    return ClipSet(np.stack([arrays[i] for i in kept]),
                   np.array([items[i][1] for i in kept], dtype=np.int64), names,
                   [str(items[i][0]) for i in kept],
                   [str(path) for (path, _), array in zip(items, arrays, strict=True) if array is None])


def augment(clips: torch.Tensor, labels: torch.Tensor, names: list[str], size: int,
            generator: torch.Generator) -> torch.Tensor:
    """Random scale and crop per clip, and a left-right flip where the label allows it.

    clips: (B, T, S, S, 3) uint8 -> (B, T, 3, size, size) float in [0, 1].
    """
    batch, frames, side = clips.shape[0], clips.shape[1], clips.shape[2]
    out = torch.empty(batch, frames, 3, size, size)
    for i in range(batch):
        scale = float(torch.empty(1).uniform_(0.7, 1.0, generator=generator))
        crop = max(size // 2, int(side * scale))
        top = int(torch.randint(0, side - crop + 1, (1,), generator=generator))
        left = int(torch.randint(0, side - crop + 1, (1,), generator=generator))
        clip = clips[i, :, top:top + crop, left:left + crop].permute(0, 3, 1, 2).float()
        clip = F.interpolate(clip, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False) / 255.0
        if not mirror_sensitive(names[int(labels[i])]) and bool(
                torch.rand(1, generator=generator) < 0.5):
            clip = clip.flip(-1)
        out[i] = clip
    return out


def whole(clips: torch.Tensor, size: int) -> torch.Tensor:
    """Evaluation view: the whole square scaled to the training size, as classify sees it
    (short side resized to the crop size, centre crop)."""
    batch, frames, side = clips.shape[0], clips.shape[1], clips.shape[2]
    flat = clips.reshape(batch * frames, side, side, 3).permute(0, 3, 1, 2).float()
    flat = F.interpolate(flat, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False) / 255.0
    return flat.reshape(batch, frames, 3, size, size)


def reverse_in_time(clips: torch.Tensor, labels: torch.Tensor, opposites: dict[int, int],
                    generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Play half of the clips that have an opposite class backwards, labelled as it.

    Why: the same scene then appears under both labels of a pair, so what the clip looks
    like no longer tells them apart and only the direction of time does; a small model
    trained from scratch otherwise memorises backgrounds and shapes first.
    clips: (B, T, 3, S, S).
    """
    clips, labels = clips.clone(), labels.clone()
    flips = torch.rand(len(labels), generator=generator) < 0.5
    for i in flips.nonzero().flatten().tolist():
        opposite = opposites.get(int(labels[i]))
        if opposite is not None:
            clips[i] = clips[i].flip(0)
            labels[i] = opposite
    return clips, labels


def shuffle_colours(clips: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Permute each clip's RGB channels at random, for labels that do not depend on colour.

    clips: (B, T, 3, S, S).
    """
    return torch.stack([clip[:, torch.randperm(3, generator=generator)] for clip in clips])
