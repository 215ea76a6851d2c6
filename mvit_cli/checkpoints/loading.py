"""Fitting converted weights to an architecture and building the model, strictly, with
one-line errors.

Our own safetensors say their architecture in their metadata. Files of other publishers
(torchvision, SlowFast, pytorchvideo, timm) say nothing, but their tensors' names and shapes
decide it: the depth, widths, kernels, position tables and relative-position tables of each
architecture are distinct. So each known architecture of the same depth is tried as a
shape-only model on the meta device (no memory, no arithmetic), and the one whose every
tensor fits is the answer. (Which names the head's outputs carry: `mvit_cli.labels`.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from ..fileio import atomic_path
from ..models.architectures import ARCHITECTURES, BUILTIN, get_config, same_architecture
from ..models.config import MViTConfig, config_from_json, config_to_json
from ..models.model import model_from_config
from .metadata import (FORMAT_NAME, META_ARCHITECTURE, META_CONFIG, META_FORMAT, META_LABELS,
                       META_POOL_NORM_EPS, META_PROTOCOL)
from .layouts import Layout
from .reader import CheckpointError


def _json_field(source: str, metadata: dict[str, str], key: str, kind: type) -> Any:
    """A JSON value of our metadata, checked to be of `kind`; absent gives None.

    Hand-edited or foreign files can hold anything under our keys: a broken value is one
    clear error naming the key, never a traceback at the first frame classified.
    """
    raw = metadata.get(key)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise CheckpointError(f"{source}: its {key} metadata is not valid JSON") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{source}: its {key} metadata is not a JSON {kind.__name__}")
    return value


@dataclass
class Checkpoint:
    """Weights in native names, with what the file said about itself."""

    state: dict[str, Tensor]
    layout: Layout
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = "checkpoint"

    @property
    def num_classes(self) -> int | None:
        head = self.state.get("head.weight")
        return int(head.shape[0]) if head is not None else None

    @property
    def architecture(self) -> str | None:
        return self.metadata.get(META_ARCHITECTURE)

    @property
    def labels(self) -> list[str] | None:
        return file_labels(self.source, self.metadata)

    @property
    def protocol(self) -> dict[str, Any] | None:
        return file_protocol(self.source, self.metadata)

    def fit_config(self, cfg: MViTConfig) -> MViTConfig:
        """The config these weights were trained under: head size and pool-norm eps."""
        changes: dict[str, object] = {}
        if self.num_classes and self.num_classes != cfg.num_classes:
            changes["num_classes"] = self.num_classes
        if META_POOL_NORM_EPS in self.metadata:
            try:
                changes["pool_norm_eps"] = float(self.metadata[META_POOL_NORM_EPS])
            except ValueError:
                raise CheckpointError(f"{self.source}: its {META_POOL_NORM_EPS} metadata is "
                                      "not a number") from None
        elif cfg.generation == 1 and self.layout.v1_pool_norm_eps is not None:
            changes["pool_norm_eps"] = self.layout.v1_pool_norm_eps
        return replace(cfg, **changes) if changes else cfg


def file_labels(source: str, metadata: dict[str, str]) -> list[str] | None:
    """Class names a file of ours carries (`mvit.labels`), checked to be a list of strings."""
    labels = _json_field(source, metadata, META_LABELS, list)
    if labels is not None and not all(isinstance(label, str) for label in labels):
        raise CheckpointError(f"{source}: its {META_LABELS} metadata is not a list of names")
    return labels


def file_protocol(source: str, metadata: dict[str, str]) -> dict[str, Any] | None:
    """The test protocol a file of ours records (`mvit.protocol`), or None."""
    return _json_field(source, metadata, META_PROTOCOL, dict)


def file_config(source: str, metadata: dict[str, str]) -> MViTConfig | None:
    """The whole architecture a file of ours records (`mvit.config`), or None."""
    raw = _json_field(source, metadata, META_CONFIG, dict)
    if raw is None:
        return None
    try:
        return config_from_json(json.dumps(raw))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: its {META_CONFIG} metadata does not describe an "
                              f"architecture ({exc})") from None


@dataclass
class FitReport:
    """How a state dict fits the tensors a model expects."""

    state: dict[str, Tensor]  # singleton dims fitted where that is all that differs
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def fit_to_shape(tensor: Tensor, shape: torch.Size) -> Tensor:
    """Add or drop singleton dims so `tensor` fits `shape`; leave it alone if that cannot work.

    Covers [1, 1, C] vs [C] tokens, [1, N, C] vs [N, C] positions and 2D vs 3D (kT = 1) kernels,
    without ever reshaping a genuinely different tensor into place.
    """
    if tensor.shape == shape:
        return tensor
    if [d for d in tensor.shape if d != 1] != [d for d in shape if d != 1]:
        return tensor
    return tensor.reshape(shape)


def fit_report(state: dict[str, Tensor], expected: dict[str, torch.Size]) -> FitReport:
    fitted = {k: fit_to_shape(v, expected[k]) if k in expected else v for k, v in state.items()}
    return FitReport(
        fitted,
        missing=[k for k in expected if k not in fitted],
        unexpected=[k for k in fitted if k not in expected],
        mismatched=[f"{k} {tuple(fitted[k].shape)} vs {tuple(expected[k])}"
                    for k in expected if k in fitted and fitted[k].shape != expected[k]])


def _listing(keys: list[str], limit: int = 3) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _misfit(report: FitReport, checkpoint: Checkpoint, source: str, arch_name: str
            ) -> CheckpointError:
    problems = []
    if report.missing:
        problems.append(f"{len(report.missing)} missing ({_listing(report.missing)})")
    if report.unexpected:
        problems.append(f"{len(report.unexpected)} unexpected ({_listing(report.unexpected)})")
    if report.mismatched:
        problems.append(f"{len(report.mismatched)} with other shapes "
                        f"({_listing(report.mismatched, 2)})")
    return CheckpointError(f"{source}: {checkpoint.layout.name} checkpoint does not fit "
                           f"{arch_name}: " + "; ".join(problems))


def load_into(model: nn.Module, checkpoint: Checkpoint, source: str, arch_name: str) -> None:
    """Copy weights into `model`; any missing, unexpected or mis-shaped key is one clear error."""
    expected = model.state_dict()
    report = fit_report(checkpoint.state, {k: v.shape for k, v in expected.items()})
    if not report.fits:
        raise _misfit(report, checkpoint, source, arch_name)
    _assign(model, report.state, expected)


def _assign(model: nn.Module, state: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    """Fitted weights into `model`, strictly.

    A model on the meta device (built without memory or random init) takes copies as its
    tensors: contiguous memory of its own, never the checkpoint's, which maps the file
    itself (safetensors, torch.load's mmap: a change to the file could show through) and
    may be shared between keys."""
    # A model with memory of its own copies into it; only a meta one takes the copies.
    assign = any(t.is_meta for t in expected.values())
    model.load_state_dict({k: v.to(expected[k].dtype, memory_format=torch.contiguous_format,
                                   copy=assign)
                           for k, v in state.items()},
                          strict=True, assign=assign)


@lru_cache(maxsize=64)
def expected_shapes(cfg: MViTConfig) -> dict[str, torch.Size]:
    """Every tensor's shape in a model of `cfg`, from a model on the meta device (no memory)."""
    with torch.device("meta"):
        model = model_from_config(cfg)
    return {key: value.shape for key, value in model.state_dict().items()}


def _check_finite(checkpoint: Checkpoint) -> None:
    for key, tensor in checkpoint.state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{checkpoint.source}: {key} holds NaN or infinite values; "
                                  "these are not usable weights")


def load_model(cfg: MViTConfig, checkpoint: Checkpoint, num_classes: int | None = None) -> nn.Module:
    """Architecture `cfg` with the checkpoint's weights, in eval mode.

    The head takes the checkpoint's size (fine-tuned files load as they are) unless
    `num_classes` asks for another, which is then a mismatch error. Every tensor's shape is
    checked against the architecture before the model is built, so memory follows what the
    file holds, not what its shapes claim (a head of shape (N, 0) costs no bytes on disk but
    would be N x width floats in the model). Weights with NaN or infinities are refused.
    Class names the file carries become `model.labels`.
    """
    fitted = checkpoint.fit_config(cfg)
    if num_classes is not None:
        fitted = replace(fitted, num_classes=num_classes)
    # Built on the meta device (no memory, no random init): its tensors give the shapes to
    # check, and every one is about to be replaced (the load is strict).
    with torch.device("meta"):
        model = model_from_config(fitted)
    expected = model.state_dict()
    report = fit_report(checkpoint.state, {k: v.shape for k, v in expected.items()})
    if not report.fits:
        raise _misfit(report, checkpoint, checkpoint.source, cfg.name)
    _check_finite(checkpoint)
    _assign(model, report.state, expected)
    if checkpoint.labels:
        model.labels = checkpoint.labels
    return model.eval()


def _depth(state: dict[str, Tensor]) -> int:
    """Blocks in a state dict of native names (numbered across the network)."""
    return len({m.group(1) for m in map(re.compile(r"^blocks\.(\d+)\.").match, state) if m})


# Config fields that name or describe a network without changing what it computes.
_NOT_THE_NETWORK = dict(name="", paper_params_m=None, paper_gflops=None, dataset="",
                        head_dropout=0.0, drop_path=0.0)


def _fits(state: dict[str, Tensor], cfg: MViTConfig) -> bool:
    head = state.get("head.weight")
    if head is None or head.ndim != 2:
        return False
    return fit_report(state, expected_shapes(replace(cfg, num_classes=head.shape[0]))).fits


def architecture_of_state(checkpoint: Checkpoint) -> MViTConfig:
    """The known architecture whose every tensor fits the checkpoint's; one clear error
    otherwise."""
    state, layout, source = checkpoint.state, checkpoint.layout, checkpoint.source
    depth = _depth(state)
    matches = [cfg for cfg in ARCHITECTURES.values() if cfg.depth == depth and _fits(state, cfg)]
    # Entries that differ only in name and head size are one network: keep the one whose
    # head is the file's size, else the first.
    head = checkpoint.num_classes
    distinct: dict[MViTConfig, MViTConfig] = {}
    for cfg in sorted(matches, key=lambda c: c.num_classes != head):
        distinct.setdefault(replace(cfg, num_classes=0, **_NOT_THE_NETWORK), cfg)
    matches = list(distinct.values())
    builtin = [cfg for cfg in matches if cfg.name in BUILTIN]
    if len(matches) == 1:
        return matches[0]
    if len(builtin) == 1:  # a registered variant with the same shapes: the builtin wins
        return builtin[0]
    if not matches:
        raise CheckpointError(f"{source}: its tensors ({layout.name} layout, {depth} blocks) "
                              "fit none of the known architectures (mvit models); name one "
                              "with --model")
    names = ", ".join(cfg.name for cfg in matches)
    raise CheckpointError(f"{source}: its tensors fit several architectures ({names}); "
                          "choose one with --model")


def architecture_of(checkpoint: Checkpoint) -> tuple[MViTConfig, str]:
    """A file's architecture, as its metadata records it, else as its shapes decide; and
    which of the two said it."""
    metadata, source = checkpoint.metadata, checkpoint.source
    recorded = file_config(source, metadata)
    if recorded is not None:
        return recorded, "recorded in the file"
    if metadata.get(META_ARCHITECTURE):
        try:
            return get_config(metadata[META_ARCHITECTURE]), "recorded in the file"
        except ValueError:
            pass  # an architecture this installation does not know: let the shapes decide
    return architecture_of_state(checkpoint), "by its tensors' shapes"


@dataclass
class LoadedFile:
    model: nn.Module
    checkpoint: Checkpoint
    cfg: MViTConfig  # the architecture the file was loaded as (head size aside)
    architecture_from: str  # "as given", "recorded in the file" or "by its tensors' shapes"
    labels: list[str] | None = None  # the class names the file carries
    protocol: dict[str, Any] | None = None  # the test protocol the file records


def fit_file(checkpoint: Checkpoint, architecture: str | MViTConfig | None = None,
             num_classes: int | None = None) -> LoadedFile:
    """The model a converted file makes, its architecture decided once, with what the file
    says about its outputs (class names, test protocol).

    Without `architecture`, the file decides (its metadata, else its shapes). With a name,
    a file of ours that records another architecture is refused, and one that records the
    same name supplies its exact config (a model trained at other frames or sizes). An
    explicit `MViTConfig` is used as given.
    """
    how = "as given"
    if architecture is None:
        cfg, how = architecture_of(checkpoint)
    else:
        source, metadata = checkpoint.source, checkpoint.metadata
        cfg = architecture if isinstance(architecture, MViTConfig) else get_config(architecture)
        recorded_name = metadata.get(META_ARCHITECTURE)
        if recorded_name and not same_architecture(recorded_name, cfg.name):
            raise CheckpointError(f"{source}: holds weights for {recorded_name}, not {cfg.name}")
        recorded = file_config(source, metadata)
        if (recorded is not None and not isinstance(architecture, MViTConfig)
                and same_architecture(recorded.name, cfg.name)):
            cfg = recorded
    model = load_model(cfg, checkpoint, num_classes)
    return LoadedFile(model, checkpoint, cfg, how, checkpoint.labels, checkpoint.protocol)


def save_native(model: nn.Module, path: str | Path, labels: list[str] | None = None,
                extra: dict[str, str] | None = None, half: bool = False) -> None:
    """Write a model as this project's own safetensors, with its architecture and labels inside.

    The file appears whole or not at all (written under a temporary name, then renamed).
    """
    cfg: MViTConfig = model.cfg
    metadata = {META_FORMAT: FORMAT_NAME, META_ARCHITECTURE: cfg.name,
                META_CONFIG: config_to_json(cfg)}
    if cfg.pool_norm_eps is not None:
        metadata[META_POOL_NORM_EPS] = repr(cfg.pool_norm_eps)
    if labels is not None:
        metadata[META_LABELS] = json.dumps(list(labels))
    metadata.update(extra or {})
    # half=True stores floats as float16 (half the file; loading casts back to float32).
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().contiguous()
             for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
