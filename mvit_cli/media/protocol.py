"""A checkpoint's test protocol: how its publisher sampled and preprocessed inputs.

The registry records each source's own protocol; classification follows it so the numbers
mean what the published accuracy means. Everything has a default for weights that do not
say (the Kinetics recipe of the MViT papers for video, the ImageNet one for images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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

    def resize_target(self) -> int:
        """Short side to resize to: the crop size itself for the 3-crop protocol."""
        return self.crop if self.crops == 3 else self.short_side


def protocol_for(cfg: MViTConfig, recorded: dict[str, Any] | None = None,
                 clips: int | str | None = None, crops: int | None = None) -> Protocol:
    """The protocol of a checkpoint (`recorded`, from its registry entry or metadata).

    `clips`: a number, None for 1, or "protocol" for the recorded number of clips.
    """
    recorded = recorded or {}
    video = cfg.is_video
    frames = cfg.frames if video else 1
    if recorded.get("uniform"):
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
    return Protocol(
        frames=frames, frame_interval=interval, clips=n_clips if video else 1,
        crops=int(crops or 1), short_side=int(recorded.get("short_side", 256)),
        crop=int(recorded.get("crop", cfg.size)), mean=mean, std=std,  # type: ignore[arg-type]
        interpolation=str(recorded.get("interpolation", "bilinear")))
