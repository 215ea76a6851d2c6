"""Decoding media files into sampled frames: videos with decord, images with Pillow.

Video frames are chosen by timestamp, not index, so variable frame rates sample the right
moments; a clip longer than the video repeats its last frames (a one-frame video still
gives a full clip). Sources much larger than needed are downscaled while decoding.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MvitError, first_line
from .protocol import Protocol

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".3gp", ".ts", ".mts", ".m2ts", ".ogv"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
# Decode-time downscaling kicks in when the short side exceeds this multiple of the target,
# and decodes to twice the target, leaving the final resize its antialiasing to do.
DOWNSCALE_ABOVE = 3


class MediaError(MvitError):
    """A file we cannot classify; the message is one line for the output's error column."""


@dataclass
class Sampled:
    frames: np.ndarray  # (clips * T, H, W, 3) uint8
    duration: float  # seconds (0 for images)
    source_frames: int  # frames in the file, as far as we could tell


def media_kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    return None


def clip_times(duration: float, protocol: Protocol) -> np.ndarray:
    """Sample times (clips, T): clips centred on equal parts of the video, T frames each.

    With no frame interval (the "uniform" protocol) each clip's T frames are spread evenly
    over its share of the video, at the centres of T equal slices.
    """
    if protocol.frame_interval == 0:
        share = duration / protocol.clips
        offsets = (np.arange(protocol.frames) + 0.5) * share / protocol.frames
        return (np.arange(protocol.clips) * share)[:, None] + offsets[None, :]
    span = protocol.clip_duration
    offsets = np.arange(protocol.frames) * protocol.frame_interval
    slack = max(duration - span, 0.0)
    starts = slack * (np.arange(protocol.clips) + 0.5) / protocol.clips
    return starts[:, None] + offsets[None, :]


def frames_at(timestamps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each time (the last frame that started by then).

    Timestamps come as float32, so a frame starting exactly at a sample time can appear a
    hair late; a tolerance of 1 ms (at most a quarter of a frame) keeps it chosen.
    """
    gaps = np.diff(timestamps)
    tolerance = min(1e-3, 0.25 * float(np.median(gaps))) if len(gaps) else 0.0
    index = np.searchsorted(timestamps, times + tolerance, side="right") - 1
    return np.clip(index, 0, len(timestamps) - 1)


def silence_decoder_messages() -> None:
    """Send this process's fd 2 to /dev/null: for decoding worker processes only.

    decord and FFmpeg write complaints about damaged files straight to fd 2, past Python and
    past decord's own log level; the caller reports such files itself, in one line.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def _decord():
    import decord  # imported late: after torch, as decord needs

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _last_decodable(reader, count: int) -> int:
    """Containers can overstate their frame count: find the last frame that really decodes."""
    low, high = 0, count - 1
    while low < high:
        mid = (low + high + 1) // 2
        try:
            reader[mid]
            low = mid
        except Exception:  # noqa: BLE001 - decord raises its own error types
            high = mid - 1
    return low


def decode_size(width: int, height: int, channels: int, target: int) -> tuple[int, int] | None:
    """(width, height) to have decord resize to while decoding, or None to decode as is.

    Two reasons to: a source much larger than needed (decoded at twice the target's short
    side), and frame widths decord mis-sizes (seen at 48 and 72 pixels: it returns 4
    "channels" of garbage). Widths that are multiples of 64 are always read right, so a
    resize always lands on one, the height following the aspect ratio (even, for YUV).
    """
    if min(width, height) > DOWNSCALE_ABOVE * target:
        scale = 2 * target / min(width, height)
        new_width = max(64, int(round(width * scale / 64)) * 64)
    elif channels != 3:
        new_width = int(math.ceil(width / 64)) * 64
    else:
        return None
    return new_width, max(2, int(round(height * new_width / width / 2)) * 2)


def decode_video(path: Path, protocol: Protocol) -> Sampled:
    decord = _decord()
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        count = len(reader)
        if count == 0:
            raise MediaError("the video has no frames")
        height, width, channels = reader[0].shape
        resize = decode_size(width, height, channels, protocol.resize_target())
        if resize is not None:
            del reader
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1,
                                        width=resize[0], height=resize[1])
        stamps = reader.get_frame_timestamp(range(count))
        starts = np.asarray(stamps[:, 0], dtype=np.float64)
        duration = float(stamps[-1, 1]) if stamps[-1, 1] > 0 else float(starts[-1])
        index = frames_at(starts, clip_times(duration, protocol)).reshape(-1)
        try:
            batch = reader.get_batch(sorted(set(index.tolist()))).asnumpy()
        except Exception:  # noqa: BLE001 - fewer frames than the container says
            last = _last_decodable(reader, count)
            starts = starts[:last + 1]
            duration = float(stamps[last, 1])
            count = last + 1
            index = frames_at(starts, clip_times(duration, protocol)).reshape(-1)
            batch = reader.get_batch(sorted(set(index.tolist()))).asnumpy()
    except MediaError:
        raise
    except Exception as exc:  # noqa: BLE001 - decord/FFmpeg failures, one line each
        raise MediaError(_video_error(exc)) from None
    if batch.ndim != 4 or batch.shape[-1] != 3:
        # Even after decode_size's workaround: refuse rather than classify garbage.
        raise MediaError(f"the decoder returned malformed frames {tuple(batch.shape[1:])} "
                         f"for this {width}x{height} video")
    position = {frame: i for i, frame in enumerate(sorted(set(index.tolist())))}
    frames = batch[[position[i] for i in index.tolist()]]
    return Sampled(frames, duration, count)


def _video_error(exc: BaseException) -> str:
    first = first_line(exc, 160)
    lowered = str(exc).lower()
    if "video stream" in lowered or "stream" in lowered and "find" in lowered:
        return "no video stream in the file (audio only?)"
    if "error reading" in lowered or "invalid data" in lowered or "moov atom" in lowered:
        return "not a readable video (damaged, cut off or another format)"
    return f"cannot decode: {first}"


def decode_image(path: Path) -> Sampled:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MediaError(f"not a readable image ({first_line(exc, 120)})") from None
    return Sampled(rgb[None], 0.0, 1)


def decode(path: Path, kind: str, protocol: Protocol) -> Sampled:
    try:
        info = path.stat()
    except OSError as exc:
        raise MediaError(f"cannot read the file ({exc.strerror or exc})") from None
    # Pipes and devices report size 0 but may still deliver (or hang: the timeout's job).
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise MediaError("the file is empty")
    return decode_video(path, protocol) if kind == "video" else decode_image(path)
