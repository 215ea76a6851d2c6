"""A checkpoint's test protocol: how its publisher sampled and preprocessed inputs.

The registry records each source's own protocol; classification follows it so the numbers
mean what the published accuracy means. Everything has a default for weights that do not
say (the Kinetics recipe of the MViT papers for video, the ImageNet one for images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MvitError, UsageError
from ..models.config import MViTConfig

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Kinetics protocols count sampling rates in frames of ~30 fps source video.
REFERENCE_FPS = 30.0


@dataclass(frozen=True)
class Protocol:
    frames: int
    frame_interval: float  # seconds between sampled frames; 0: spread over the whole video
    clips: int
    crops: int
    short_side: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    @property
    def clip_duration(self) -> float:
        return self.frames * self.frame_interval

    @property
    def views(self) -> int:
        return self.clips * self.crops

    def describe(self) -> str:
        """The protocol in a few words, as outputs record it ("5 clips x 1 crop, 16 frames at
        7.5 fps, short side 256, crop 224")."""
        def count(n: int, word: str) -> str:
            return f"{n} {word}{'s' if n != 1 else ''}"

        if self.frames == 1:
            sampling = "one frame"
        elif self.frame_interval == 0:
            sampling = f"{self.frames} frames spread over each clip's share of the video"
        else:
            sampling = f"{self.frames} frames at {1 / self.frame_interval:.4g} fps"
        text = (f"{count(self.clips, 'clip')} x {count(self.crops, 'crop')}, {sampling}, "
                f"short side {self.short_side}, crop {self.crop}")
        return text if self.interpolation == "bilinear" else f"{text}, {self.interpolation}"

    def resize_target(self) -> int:
        """Short side to resize to: the crop size itself for the 3-crop protocol."""
        return self.crop if self.crops == 3 else self.short_side


# Fields a recorded protocol may hold: a check per field, and what it must be.
_NUMBER = (int, float)
_FIELDS: dict[str, tuple[Any, str]] = {
    "frames": (lambda v: isinstance(v, int) and v >= 1, "a whole number of at least 1"),
    "rate": (lambda v: isinstance(v, _NUMBER) and v > 0, "a positive number"),
    "fps": (lambda v: isinstance(v, _NUMBER) and v > 0, "a positive number"),
    "clips": (lambda v: isinstance(v, int) and v >= 1, "a whole number of at least 1"),
    "crops": (lambda v: v in (1, 3), "1 or 3"),
    "short_side": (lambda v: isinstance(v, int) and v >= 1, "a whole number of pixels"),
    "crop": (lambda v: isinstance(v, int) and v >= 1, "a whole number of pixels"),
    "mean": (lambda v: _triple(v, 0.0), "three numbers"),
    "std": (lambda v: _triple(v, 1e-12), "three positive numbers"),
    "interpolation": (lambda v: v in ("bilinear", "bicubic"), "bilinear or bicubic"),
    "uniform": (lambda v: isinstance(v, bool), "true or false"),
}


def _triple(value: Any, least: float) -> bool:
    return (isinstance(value, list | tuple) and len(value) == 3
            and all(isinstance(x, _NUMBER) and not isinstance(x, bool) and x >= least
                    for x in value))


class ProtocolError(MvitError):
    """A recorded protocol that cannot be followed; one line naming the field."""


def check_recorded(recorded: dict[str, Any] | None, source: str) -> dict[str, Any] | None:
    """A recorded protocol (registry entry or file metadata), every field checked: a bad
    one is one error naming it, never a traceback at the first file classified."""
    if recorded is None:
        return None
    for key, value in recorded.items():
        rule = _FIELDS.get(key)
        if rule is None:
            raise ProtocolError(f"{source}: its protocol has an unknown field {key!r}")
        ok, what = rule
        if isinstance(value, bool) and key != "uniform" or not ok(value):
            raise ProtocolError(f"{source}: its protocol's {key} must be {what}, not {value!r}")
    return recorded


# Views a file may ask for at once: all of them are decoded into memory together.
MAX_VIEW_BYTES = 2 * 1024**3


def protocol_for(cfg: MViTConfig, recorded: dict[str, Any] | None = None,
                 clips: int | str | None = None, crops: int | None = None,
                 frames: int | None = None, fps: float | None = None) -> Protocol:
    """The protocol of a checkpoint (`recorded`, from its registry entry or metadata).

    `clips`: a number, None for 1, or "protocol" for the recorded number of clips.
    `frames` and `fps` override the frames a clip has and the rate they are sampled at (as
    Hugging Face's `num_frames` and `frame_sampling_rate`): video models run on other frame
    counts by resampling their positions.
    """
    recorded = recorded or {}
    if (frames is not None or fps is not None) and not cfg.is_video:
        raise UsageError(f"{cfg.name} is an image model: frames and fps are for video models")
    if frames is not None and (not isinstance(frames, int) or frames < 1):
        raise UsageError(f"frames: a number of at least 1, not {frames!r}")
    if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps < 10_000):
        raise UsageError(f"fps: a rate above 0, not {fps!r}")
    if clips not in (None, "protocol") and (not isinstance(clips, int) or clips < 1):
        raise UsageError(f"clips: a number of at least 1, or 'protocol' (not {clips!r})")
    if crops not in (None, 1, 3):
        raise UsageError(f"crops: 1 (the centre) or 3 (along the long side), not {crops!r}")
    video = cfg.is_video
    frames = frames or (cfg.frames if video else 1)
    if fps is not None:
        interval = 1.0 / float(fps)
    elif recorded.get("uniform"):
        interval = 0.0  # the T frames are spread over each whole video (short clips)
    elif "fps" in recorded:
        interval = 1.0 / float(recorded["fps"])
    else:
        interval = float(recorded.get("rate", cfg.sampling_rate)) / REFERENCE_FPS
    if clips == "protocol":
        n_clips = int(recorded.get("clips", 1))
    else:
        n_clips = int(clips or 1)
    mean = tuple(recorded.get("mean", KINETICS_MEAN if video else IMAGENET_MEAN))
    std = tuple(recorded.get("std", KINETICS_STD if video else IMAGENET_STD))
    protocol = Protocol(
        frames=frames, frame_interval=interval, clips=n_clips if video else 1,
        crops=int(crops or 1), short_side=int(recorded.get("short_side", 256)),
        crop=int(recorded.get("crop", cfg.size)), mean=mean, std=std,  # type: ignore[arg-type]
        interpolation=str(recorded.get("interpolation", "bilinear")))
    view_bytes = protocol.frames * protocol.crop ** 2 * 3
    if protocol.views * view_bytes > MAX_VIEW_BYTES:
        most = MAX_VIEW_BYTES // (view_bytes * protocol.crops)
        raise UsageError(f"{protocol.clips} clips x {protocol.crops} crops of {frames} frames "
                         f"at {protocol.crop} px would hold "
                         f"{protocol.views * view_bytes / 1024**3:.0f} GB of frames at once; at "
                         f"most {most} clips")
    return protocol
