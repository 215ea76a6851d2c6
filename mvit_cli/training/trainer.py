"""The training loop: AdamW with warm-up and cosine decay, label smoothing, validation.

Kept deliberately plain (one process, the model's own forward, float32) so that training
a small model on a CPU is easy to follow and to reproduce from a seed.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoints.loading import save_native
from ..checkpoints.metadata import META_PROTOCOL, META_TRAINING
from ..factory import build_model
from ..models.model import model_from_config
from ..media.protocol import KINETICS_MEAN, KINETICS_STD
from ..media.transform import standardise
from ..models.config import MViTConfig
from ..models.model import MultiscaleTransformer
from ..errors import UsageError
from ..fileio import atomic_path
from .data import ClipSet, augment, reverse_in_time, shuffle_colours, time_opposites, whole

STATE_VERSION = 1


@dataclass
class TrainSettings:
    epochs: int = 30
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    val_split: float = 0.15
    seed: int = 0
    # Opt-in augmentations that only suit some label sets (see data.py).
    time_reversal: bool = False
    colour_shuffle: bool = False


@dataclass
class EpochReport:
    epoch: int
    loss: float
    val_accuracy: float | None


@dataclass
class TrainResult:
    """`model` holds the weights of `best_epoch`: the epoch of the best validation accuracy
    (the earliest of equals), or the last epoch when validation is skipped (`no_validation`
    says why)."""

    model: MultiscaleTransformer
    history: list[EpochReport] = field(default_factory=list)
    val_accuracy: float | None = None  # of best_epoch
    best_epoch: int | None = None
    no_validation: str = ""
    # Set when Ctrl-C stopped training: `model` then holds the completed epochs' best.
    interrupted: bool = False
    resumed_from: int = 0  # epochs a --resume found done


def model_input(clips: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, S, S) in [0, 1] -> normalised (B, 3, T, S, S)."""
    return standardise(clips.permute(0, 2, 1, 3, 4), KINETICS_MEAN, KINETICS_STD)


def why_no_validation(data: ClipSet, fraction: float, val_idx: np.ndarray) -> str:
    if len(val_idx):
        return ""
    if fraction <= 0:
        return "--val-split is 0"
    smallest = int(np.bincount(data.labels).min()) if len(data.labels) else 0
    return (f"too few clips to hold any out: the smallest class has {smallest}, and "
            f"{fraction:g} of it rounds to none")


def split(data: ClipSet, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of training and validation clips, stratified by class."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(data.labels):
        members = rng.permutation(np.flatnonzero(data.labels == label))
        cut = int(round(len(members) * fraction)) if fraction > 0 else 0
        val += members[:cut].tolist()
        train += members[cut:].tolist()
    return np.array(sorted(train)), np.array(sorted(val))


def build_for_training(cfg: MViTConfig, classes: int, start: str | None) -> MultiscaleTransformer:
    """From scratch, or from `start` weights with a new head when the classes differ."""
    if start is None:
        return model_from_config(replace(cfg, num_classes=classes)).train()
    model = build_model(cfg, weights=start)
    if model.num_classes != classes:
        head = torch.nn.Linear(model.head.in_features, classes)
        torch.nn.init.trunc_normal_(head.weight, std=0.02)
        torch.nn.init.zeros_(head.bias)
        model.head = head
        model.cfg = replace(model.cfg, num_classes=classes)
    return model.train()


def accuracy(model: MultiscaleTransformer, data: ClipSet, indices: np.ndarray, size: int,
             batch_size: int) -> float:
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            chosen = indices[start:start + batch_size]
            clips = whole(torch.from_numpy(data.clips[chosen]), size)
            predicted = model(model_input(clips)).argmax(dim=-1).numpy()
            correct += int((predicted == data.labels[chosen]).sum())
    model.train()
    return correct / max(len(indices), 1)


def train(data: ClipSet, cfg: MViTConfig, settings: TrainSettings, start: str | None = None,
          on_step: Callable[[int, int, float, int], None] | None = None,
          on_epoch: Callable[[EpochReport], None] | None = None,
          max_steps: int | None = None, state_path: Path | None = None,
          resume: bool = False) -> TrainResult:
    """Train on `data`; `cfg` gives the architecture, frames and size.

    `on_step(step, total, loss, epoch)` after each step. With `state_path`, the whole
    training state (weights, optimizer, step, random generators, history, best epoch) is
    saved there after every epoch, and `resume` continues from it: the same settings and
    data give the same weights as a run that was never stopped.
    """
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    model = build_for_training(cfg, len(data.names), start)
    train_idx, val_idx = split(data, settings.val_split, settings.seed)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / settings.batch_size))
    total = steps_per_epoch * settings.epochs
    warmup = int(settings.warmup_epochs * steps_per_epoch)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim <= 1 or "rel_pos" in name or "pos_embed" in name
         or name == "cls_token" else decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr)

    def learning_rate(step: int) -> float:
        if step < warmup:
            return settings.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return settings.lr * 0.5 * (1 + math.cos(math.pi * progress))

    result = TrainResult(model, no_validation=why_no_validation(data, settings.val_split,
                                                                val_idx))
    step = 0
    first_epoch = 0
    labels_all = torch.from_numpy(data.labels)
    opposites = time_opposites(data.names) if settings.time_reversal else {}
    fingerprint = _fingerprint(data, cfg, settings, start)
    best_state = None
    if resume:
        if state_path is None or not state_path.exists():
            raise UsageError(f"nothing to resume: {state_path} does not exist")
        state = _load_state(state_path, fingerprint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step, first_epoch = int(state["step"]), int(state["epoch"])
        result.history = [EpochReport(int(e), float(loss), None if v < 0 else float(v))
                          for e, loss, v in state["history"].tolist()]
        best_state = state.get("best_model")
        result.best_epoch = int(state["best_epoch"]) or None
        result.resumed_from = first_epoch
    finished = copy.deepcopy(model.state_dict())  # weights as of the last whole epoch
    try:
        for epoch in range(first_epoch, settings.epochs):
            order = train_idx[torch.randperm(len(train_idx), generator=generator).numpy()]
            losses = []
            for start_index in range(0, len(order), settings.batch_size):
                chosen = order[start_index:start_index + settings.batch_size]
                labels = labels_all[chosen]
                clips = augment(torch.from_numpy(data.clips[chosen]), labels, data.names,
                                cfg.size, generator)
                if opposites:
                    clips, labels = reverse_in_time(clips, labels, opposites, generator)
                if settings.colour_shuffle:
                    clips = shuffle_colours(clips, generator)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step)
                loss = F.cross_entropy(model(model_input(clips)), labels,
                                       label_smoothing=settings.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                losses.append(loss.item())
                step += 1
                if on_step:
                    on_step(step, total, loss.item(), epoch + 1)
                if max_steps is not None and step >= max_steps:
                    break
            val = (accuracy(model, data, val_idx, cfg.size, settings.batch_size)
                   if len(val_idx) else None)
            report = EpochReport(epoch + 1, float(np.mean(losses)), val)
            result.history.append(report)
            finished = copy.deepcopy(model.state_dict())
            if val is not None and (best_state is None or val > _best_val(result)):
                best_state, result.best_epoch = finished, epoch + 1
            if state_path is not None:
                _save_state(state_path, fingerprint, model, optimizer, generator, step,
                            epoch + 1, result, best_state)
            if on_epoch:
                on_epoch(report)
            if max_steps is not None and step >= max_steps:
                break
    except KeyboardInterrupt:
        # Why: a long run stopped by Ctrl-C keeps what its completed epochs learned, rather
        # than a step cut in half or nothing at all.
        model.load_state_dict(finished)
        result.interrupted = True
    if best_state is not None:
        model.load_state_dict(best_state)
    elif result.history:
        result.best_epoch = result.history[-1].epoch
    result.val_accuracy = _best_val(result)
    result.model = model.eval()
    return result


def _best_val(result: TrainResult) -> float | None:
    for report in result.history:
        if report.epoch == result.best_epoch:
            return report.val_accuracy
    return None


def state_path_for(output: Path) -> Path:
    """Where `mvit train -o OUT` keeps what `--resume` needs: beside OUT, a dot file."""
    return output.with_name(f".{output.stem}.train-state.pt")


def _fingerprint(data: ClipSet, cfg: MViTConfig, settings: TrainSettings,
                 start: str | None) -> str:
    """What must not change between a run and its resumption."""
    return json.dumps({"architecture": cfg.name, "frames": cfg.frames, "size": cfg.size,
                       "settings": settings.__dict__, "start": start, "names": data.names,
                       "clips": len(data.labels), "version": STATE_VERSION}, sort_keys=True)


def _save_state(path: Path, fingerprint: str, model, optimizer, generator, step: int,
                epoch: int, result: TrainResult, best_state) -> None:
    history = torch.tensor([[r.epoch, r.loss, -1.0 if r.val_accuracy is None else r.val_accuracy]
                            for r in result.history], dtype=torch.float64)
    state = {"fingerprint": fingerprint, "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
             "torch_rng": torch.get_rng_state(), "step": step, "epoch": epoch,
             "history": history, "best_epoch": result.best_epoch or 0}
    if best_state is not None:
        state["best_model"] = best_state
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, fingerprint: str) -> dict:
    try:
        # weights_only: a state file is tensors, numbers and strings; no code runs from it.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file is one line, not a traceback
        raise UsageError(f"{path}: not a readable training state ({type(exc).__name__})") from None
    if state.get("fingerprint") != fingerprint:
        raise UsageError(f"{path} was saved by a run with other settings or data; resume "
                         "with the same command, or start afresh without --resume")
    return state


def save_trained(result: TrainResult, data: ClipSet, path: Path, settings: TrainSettings,
                 half: bool = False) -> None:
    """Our safetensors, with labels, architecture and the sampling protocol inside."""
    cfg = result.model.cfg
    protocol = {"uniform": True, "frames": cfg.frames, "clips": 1, "crops": 1,
                "short_side": cfg.size, "crop": cfg.size, "mean": list(KINETICS_MEAN),
                "std": list(KINETICS_STD)}
    extra = {META_PROTOCOL: json.dumps(protocol),
             META_TRAINING: json.dumps({"epochs": len(result.history),
                                          "epochs_planned": settings.epochs, "lr": settings.lr,
                                          "batch_size": settings.batch_size,
                                          "seed": settings.seed, "clips": len(data.labels),
                                          "time_reversal": settings.time_reversal,
                                          "colour_shuffle": settings.colour_shuffle,
                                          "val_accuracy": result.val_accuracy,
                                          "best_epoch": result.best_epoch})}
    save_native(result.model, path, labels=data.names, extra=extra, half=half)
