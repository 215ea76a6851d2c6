"""Decoding media files into sampled frames: videos with decord (FFmpeg through PyAV for
files decord cannot read whole), images with Pillow.

Video frames are chosen by timestamp, not index, so variable frame rates sample the right
moments; a clip longer than the video repeats its last frames (a one-frame video still
gives a full clip). Sources much larger than needed are downscaled while decoding.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
    source_frames: int  # frames in the file that decode
    warning: str = ""  # e.g. a damaged file classified from the frames that decode


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


def decode_size(width: int, height: int, channels: int, target: int) -> tuple[int, int] | None:
    """(width, height) to have decord resize to while decoding, or None to decode as is.

    Two reasons to: a source much larger than needed (decoded at twice the target's short
    side), and frame widths decord mis-sizes: it returns rows padded into extra "channels"
    (in decord 0.6.0 and decord2 3.4.0 alike; for h264 at 64 rows, the widths 16, 24, 32, 48,
    96 and 144 of every even width up to 480; 72 at other heights). Widths that are
    multiples of 64 were always read right, so a resize always lands on one, the height
    following the aspect ratio (even, for YUV).
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
    """The protocol's frames of a video: with decord, or frame by frame with FFmpeg (PyAV)
    for a file decord cannot read whole (damaged, cut off), from the frames that decode."""
    with _openable(path) as name:
        try:
            return _decode_with_decord(name, protocol)
        except MediaError:
            raise
        except Exception:  # noqa: BLE001 - decord's errors: read it the slow, tolerant way
            pass
        return _decode_with_pyav(name, protocol)


@contextmanager
def _openable(path: Path) -> Iterator[str]:
    """A name of `path` the decoders can open. decord passes names to C as UTF-8, so a name
    that is not valid UTF-8 is reached through a symbolic link with a plain name."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        with tempfile.TemporaryDirectory(prefix="mvit-name-") as folder:
            link = Path(folder) / f"video{path.suffix.encode('ascii', 'ignore').decode()}"
            os.symlink(os.path.abspath(path), link)
            yield str(link)
        return
    yield str(path)


def _decode_with_decord(name: str, protocol: Protocol) -> Sampled:
    decord = _decord()
    reader = decord.VideoReader(name, ctx=decord.cpu(0), num_threads=1)
    count = claimed = len(reader)
    if count == 0:
        raise MediaError("the video has no frames")
    height, width, channels = reader[0].shape
    resize = decode_size(width, height, channels, protocol.resize_target())
    if resize is not None:
        del reader
        reader = decord.VideoReader(name, ctx=decord.cpu(0), num_threads=1,
                                    width=resize[0], height=resize[1])
    stamps = reader.get_frame_timestamp(range(count))
    starts = np.asarray(stamps[:, 0], dtype=np.float64)
    duration = float(stamps[-1, 1]) if stamps[-1, 1] > 0 else float(starts[-1])
    index = frames_at(starts, clip_times(duration, protocol)).reshape(-1)
    # A frame that does not decode raises here, and the caller decodes the file packet by
    # packet instead (a reader whose batch failed cannot be trusted for another read).
    distinct = sorted(set(index.tolist()))
    batch = _as_numpy(reader.get_batch(distinct))
    if batch.ndim != 4 or batch.shape[-1] != 3:
        # Even after decode_size's workaround: refuse rather than classify garbage.
        raise MediaError(f"the decoder returned malformed frames {tuple(batch.shape[1:])} "
                         f"for this {width}x{height} video")
    if bool(np.all(np.diff(index) > 0)):  # each frame once, in order: no copy of the clip
        frames = batch
    else:
        position = {frame: i for i, frame in enumerate(distinct)}
        frames = batch[[position[i] for i in index.tolist()]]
    return Sampled(frames, duration, count, _damage(count, max(claimed, _listed_frames(name))))


def _as_numpy(frames) -> np.ndarray:
    """A decord NDArray as numpy without copying it (asnumpy copies the whole batch, large
    at high resolutions): through DLPack, the array then owning decord's buffer."""
    from torch.utils.dlpack import from_dlpack  # torch is loaded already (see _decord)

    try:
        return from_dlpack(frames.to_dlpack()).numpy()
    except (AttributeError, RuntimeError, TypeError, BufferError):
        return frames.asnumpy()


def _listed_frames(name: str) -> int:
    """The frame count the container's header lists (0 if it lists none): decord counts
    only the frames it finds, so a cut file's header is what tells that frames are missing."""
    import av

    try:
        with av.open(name) as container:
            return int(container.streams.video[0].frames or 0) if container.streams.video else 0
    except av.error.FFmpegError:
        return 0


def _damage(decoded: int, claimed: int) -> str:
    """The note a partly decodable video's row carries."""
    if claimed > decoded:
        return f"damaged: {decoded} of the {claimed} frames its container lists decode"
    return ""


@contextmanager
def pyav_video(name: str):
    """(container, its first video stream) opened with PyAV; a file FFmpeg cannot open, or
    one without video, is a MediaError in our words."""
    import av

    try:
        container = av.open(name)
    except av.error.FFmpegError:
        raise MediaError(_unreadable(name)) from None
    with container:
        if not container.streams.video:
            raise MediaError("no video stream: the file holds only audio"
                             if container.streams.audio else "no video stream in the file")
        yield container, container.streams.video[0]


def _decode_with_pyav(name: str, protocol: Protocol) -> Sampled:
    """Decode packet by packet, skipping packets FFmpeg rejects: a cut or damaged file gives
    the frames it still holds. Two passes (times, then the chosen frames), so memory holds
    only the sampled frames whatever the length."""
    import av

    with pyav_video(name) as (container, stream):
        claimed = int(stream.frames or 0)
        rate = float(stream.average_rate or 30)
        times = [t for t, _ in _frames(container, stream, rate)]
    if not times:
        raise MediaError("not a readable video: no frame of it decodes (damaged or cut off)")
    order = np.argsort(np.asarray(times), kind="stable")
    starts = np.asarray(times)[order]
    gap = float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0 / rate
    duration = float(starts[-1]) + gap
    index = frames_at(starts, clip_times(duration, protocol)).reshape(-1)
    wanted = {int(order[i]) for i in index.tolist()}  # positions in decoding order
    kept: dict[int, np.ndarray] = {}
    with av.open(name) as container:
        stream = container.streams.video[0]
        for ordinal, frame in _frames(container, stream, rate, keep=wanted,
                                      target=protocol.resize_target()):
            kept[ordinal] = frame
    missing = wanted - set(kept)
    if missing:  # a second pass that decoded less than the first: the file changed
        raise MediaError("the video changed while it was read")
    frames = np.stack([kept[int(order[i])] for i in index.tolist()])
    return Sampled(frames, duration, len(times),
                   _damage(len(times), claimed) or "damaged: decoded frame by frame, as its "
                   "decoder could not read it whole")


def _frames(container, stream, rate: float, keep: set[int] | None = None,
            target: int = 10**9):
    """(time, None) per decodable frame, or (ordinal, RGB array) for the ordinals in `keep`."""
    for ordinal, frame in enumerate(decoded_frames(container, stream)):
        if keep is None:
            yield (frame.time if frame.time is not None else ordinal / rate), None
        elif ordinal in keep:
            yield ordinal, rgb_array(frame, target)


def decoded_frames(container, stream):
    """Every frame of `stream` that decodes, in order, skipping packets FFmpeg rejects (as
    its own tools do); a container that ends early ends the frames, what came before stands."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.FFmpegError:
                continue
            yield from decoded
    except av.error.FFmpegError:
        pass
    try:
        yield from stream.codec_context.decode(None)  # frames still in the decoder
    except av.error.FFmpegError:
        pass


def rgb_array(frame, target: int) -> np.ndarray:
    """A PyAV frame as (H, W, 3) uint8, downscaled while converting when the source is much
    larger than `target` (as decord decodes it, see decode_size)."""
    size = decode_size(frame.width, frame.height, 3, target) or (frame.width, frame.height)
    return frame.to_ndarray(format="rgb24", width=size[0], height=size[1])


def _unreadable(name: str) -> str:
    """Why FFmpeg cannot open a file, in our words (its own are about internals)."""
    try:
        with open(name, "rb") as handle:
            head = handle.read(12)
            if head[4:8] == b"ftyp":  # the MP4 family: is the index (moov) there at all?
                handle.seek(0)
                while block := handle.read(1 << 20):
                    if b"moov" in block:
                        break
                else:
                    return ("not a readable video: cut off or damaged before its index "
                            "(the mp4 'moov' box is missing)")
    except OSError:
        pass
    return "not a readable video (damaged, cut off or another format)"


def decode_image(path: Path) -> Sampled:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = _rgb8(ImageOps.exif_transpose(image))  # as a camera held upright saw it
    except UnidentifiedImageError:
        raise MediaError("not a readable image (damaged, or a format Pillow does not "
                         "know)") from None
    except Image.DecompressionBombError:
        raise MediaError("the image is too large to decode safely (more than "
                         f"{2 * Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(f"not a readable image ({first_line(exc, 120)})") from None
    return Sampled(np.array(rgb)[None], 0.0, 1)  # a writable copy, as torch wants


def _rgb8(image) -> np.ndarray:
    """8-bit RGB of any Pillow image: 16-bit and float images scaled to 0..255 (Pillow's own
    conversion clips them, turning a 16-bit picture nearly all white), palettes expanded,
    transparency laid over white."""
    mode = image.mode
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and values.max(initial=0) > 255):
            values = values * (255.0 / 65535.0)
        elif mode == "F" and values.max(initial=0) <= 1.0:
            values = values * 255.0
        grey = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        from PIL import Image

        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))


def check_readable(path: Path) -> None:
    """A file that cannot hold media at all, said before any decoder is asked."""
    try:
        info = path.stat()
    except OSError as exc:
        raise MediaError(f"cannot read the file ({exc.strerror or exc})") from None
    # Pipes and devices report size 0 but may still deliver (or hang: the timeout's job).
    if stat.S_ISREG(info.st_mode) and info.st_size == 0:
        raise MediaError("the file is empty")


def decode(path: Path, kind: str, protocol: Protocol) -> Sampled:
    check_readable(path)
    return decode_video(path, protocol) if kind == "video" else decode_image(path)
