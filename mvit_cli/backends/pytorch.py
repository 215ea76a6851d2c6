"""`backend="torch"`: the model itself, on its device, at its precision.

The CPU policy lives here, where it concerns every engine alike: glibc keeps freed
activations for the next forward where the process asked for it (allocator.py); bf16
weights are cast once and inputs cast to match (models/precision.py), while fp16 keeps
autocast (its softmax in fp32: fp16 attention logits can overflow); and on the CPU a batch runs clip by clip, side by side in
lanes on 2+ threads (models/fast/clip_batches), each clip made float in its own lane, so one
clip's input is alive per lane rather than the batch's. A compiled model keeps its one batch
shape instead.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

import torch

from ..media.transform import normalise
from ..models.fast.clip_batches import map_clips

if TYPE_CHECKING:
    from ..media.protocol import Protocol
    from ..models.model import MultiscaleTransformer


class TorchBackend:
    name = "torch"

    @classmethod
    def check(cls, device: torch.device, compile: bool) -> None:
        """Refuse a combination this backend cannot run, before any weights are fetched."""

    def __init__(self, model: MultiscaleTransformer, device: torch.device,
                 dtype: torch.dtype = torch.float32, compile: bool = False,
                 exportable=None, cast: bool = True) -> None:
        if device.type == "cpu":
            from ..allocator import before_cpu_run

            before_cpu_run()
        self.model = model.to(device).eval()
        self.device, self.dtype = device, dtype
        self.cast = cast and dtype == torch.bfloat16
        if self.cast:
            from ..models.precision import cast_for_inference

            cast_for_inference(self.model, dtype)
        self.input_dtype = dtype if self.cast else torch.float32
        self.compiled = compile
        self.graph = self.model  # what turns normalised clips into logits
        if compile:
            from ..models.model import compile_for_inference

            self.graph = compile_for_inference(self.model)

    @property
    def lanes(self) -> bool:
        """Clips side by side on the CPU's threads (the fast paths' batching)."""
        return self.model.fast_paths

    @property
    def precision_note(self) -> str:
        """bf16 on a CPU without it in hardware is emulated, and slower than fp32."""
        from ..cpu_gates import gates

        if self.dtype != torch.bfloat16 or self.device.type != "cpu" or gates().native_bf16:
            return ""
        return ("this CPU has no native bf16 (AVX512-BF16 or AMX): torch emulates it, "
                "several times slower than fp32")

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype,
                              enabled=self.dtype != torch.float32 and not self.cast)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self.autocast():
            return self.graph(x.to(self.device, self.input_dtype)).float().cpu()

    def score(self, views: torch.Tensor, protocol: Protocol, features: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.device.type == "cuda":
            views = views.pin_memory().to(self.device, non_blocking=True)
        else:
            views = views.to(self.device)
        clip_by_clip = self.device.type == "cpu" and not self.compiled
        parts = views.split(1) if clip_by_clip else [views]
        run = self.model.forward_features if features else self.graph
        video = self.model.cfg.is_video

        def one_part(part: torch.Tensor) -> torch.Tensor:
            return run(normalise(part, protocol, video).to(self.input_dtype))

        with torch.inference_mode(), self.autocast():
            outputs = torch.cat(map_clips(one_part, parts, lanes=self.lanes))
            if features:  # the head's input, then the head (compiled graphs end in logits)
                logits, pooled = self.model.classify_features(outputs), outputs.float().cpu()
            else:
                logits, pooled = outputs, None
            return logits.float().softmax(dim=-1).cpu(), pooled
