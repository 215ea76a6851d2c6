"""`mvit train`: learning happens, and what it saves classifies and imports like any weights."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mvit_cli import build_model
from mvit_cli.models.architectures import get_config
from mvit_cli.synth import LABELS, write_dataset
from mvit_cli.training.data import (ClipSet, augment, load, mirror_sensitive, reverse_in_time,
                                     shuffle_colours, time_opposites, whole)
from mvit_cli.training.trainer import (EpochReport, TrainResult, TrainSettings, model_input,
                                       save_trained, train)

from conftest import INTERRUPTIBLE, TINY_V1, TINY_V2, register_tiny_architectures, run_cli, save_tiny
from media import write_video

TINY = replace(TINY_V2, name="tiny-train", frames=4, size=32, head_dropout=0.0, drop_path=0.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion")
    write_dataset(root, per_class=3, seed=101)
    return root


@pytest.fixture(scope="module")
def clips(dataset):
    return load(dataset, TINY.frames, TINY.size, workers=1)


def noise(per_class: int = 3, names=("a", "b"), seed: int = 0) -> ClipSet:
    """Clips of random pixels, decoded size for TINY: what training does, fast (no decoding)."""
    rng = np.random.default_rng(seed)
    count = per_class * len(names)
    return ClipSet(rng.integers(0, 256, (count, TINY.frames, 37, 37, 3), dtype=np.uint8),
                   np.repeat(np.arange(len(names)), per_class), list(names),
                   [f"clip{i}.mp4" for i in range(count)])


def _loss(model, clips) -> float:
    model.eval()
    with torch.inference_mode():
        x = model_input(whole(torch.from_numpy(clips.clips), TINY.size))
        return torch.nn.functional.cross_entropy(model(x), torch.from_numpy(clips.labels)).item()


def test_dataset_folders_and_labels(clips):
    assert len(clips.names) == 8 and clips.names[0] == "moving left"
    assert clips.clips.shape[1:] == (4, 37, 37, 3)  # 15% margin for random crops
    assert sorted(set(clips.labels.tolist())) == list(range(8))


def test_decoding_in_worker_processes_gives_the_same_clips(dataset, clips):
    parallel = load(dataset, TINY.frames, TINY.size, workers=2)
    assert parallel.paths == clips.paths and (parallel.clips == clips.clips).all()


def test_mirror_sensitive_labels_are_never_flipped():
    assert mirror_sensitive("moving left") and mirror_sensitive("rotating clockwise")
    assert not mirror_sensitive("moving up") and not mirror_sensitive("growing")
    # A clip whose left half is bright stays so through augmentation when its label says left.
    clip = torch.zeros(1, 2, 40, 40, 3, dtype=torch.uint8)
    clip[..., :20, :] = 255
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        out = augment(clip, torch.tensor([0]), ["moving left"], 32, generator)
        assert out[0, 0, :, :, :8].mean() > out[0, 0, :, :, -8:].mean()


def test_each_clip_is_flipped_by_its_own_label_and_only_left_right():
    """Two clips, the first of a label that may be mirrored, the second of one that may not;
    both bright in the top left quadrant."""
    clips = torch.zeros(2, 2, 40, 40, 3, dtype=torch.uint8)
    clips[:, :, :20, :20] = 255
    labels = torch.tensor([1, 0])
    generator = torch.Generator().manual_seed(0)
    mirrored = 0
    for _ in range(40):
        out = augment(clips, labels, ["moving left", "growing"], 32, generator)
        left, right = out[..., :8].mean(dim=(1, 2, 3, 4)), out[..., -8:].mean(dim=(1, 2, 3, 4))
        top, bottom = out[..., :8, :].mean(dim=(1, 2, 3, 4)), out[..., -8:, :].mean(
            dim=(1, 2, 3, 4))
        assert (top > bottom).all()  # never upside down
        assert left[1] > right[1]  # "moving left" is never mirrored
        mirrored += bool(left[0] < right[0])
    assert 8 <= mirrored <= 32  # "growing" is, about half the time


def test_time_opposites_pair_labels_that_read_backwards_as_each_other():
    assert time_opposites(list(LABELS)) == {0: 1, 1: 0, 2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6}
    assert time_opposites(["opening door", "closing door", "jumping", "turning left"]) == {
        0: 1, 1: 0}
    assert time_opposites(["jumping", "moving left"]) == {}
    assert time_opposites(["turning anticlockwise", "turning clockwise"]) == {0: 1, 1: 0}


def test_reversed_clips_play_backwards_under_the_opposite_label():
    frames = torch.arange(6, dtype=torch.float32).view(1, 6, 1, 1, 1)
    clips = frames.expand(64, 6, 3, 4, 4).clone()
    labels = torch.tensor([0, 2] * 32)  # 0 <-> 1 are opposites; 2 has none
    out, new_labels = reverse_in_time(clips, labels, {0: 1, 1: 0}, torch.Generator().manual_seed(0))
    reversed_ = new_labels == 1
    assert 10 < int(reversed_.sum()) < 25  # about half of the 32 that can be
    assert torch.equal(out[reversed_][:, :, 0, 0, 0], torch.arange(5, -1, -1.0).expand(
        int(reversed_.sum()), 6))
    kept = ~reversed_
    assert torch.equal(out[kept], clips[kept]) and set(new_labels[kept].tolist()) == {0, 2}
    assert torch.equal(clips[:, :, 0, 0, 0], torch.arange(6.0).expand(64, 6))  # input untouched


def test_colour_shuffle_permutes_channels_and_nothing_else():
    clips = torch.stack([torch.full((2, 4, 4), float(c)) for c in range(3)], 1)  # (T, 3, 4, 4)
    out = shuffle_colours(clips.expand(16, 2, 3, 4, 4), torch.Generator().manual_seed(0))
    orders = {tuple(clip[0, :, 0, 0].tolist()) for clip in out}
    assert all(sorted(order) == [0.0, 1.0, 2.0] for order in orders) and len(orders) > 1


def test_a_few_steps_lower_the_loss(clips):
    settings = TrainSettings(epochs=30, batch_size=8, lr=3e-3, val_split=0.0, seed=0,
                             warmup_epochs=1)
    torch.manual_seed(0)
    before = _loss(build_model(replace(TINY, num_classes=8)), clips)
    result = train(clips, TINY, settings, max_steps=30)
    after = _loss(result.model, clips)
    assert after < before - 0.2, (before, after)


@pytest.mark.slow
def test_saved_model_reloads_with_the_same_logits_and_classifies(clips, dataset, tmp_path):
    settings = TrainSettings(epochs=1, batch_size=8, val_split=0.25, seed=0)
    result = train(clips, TINY, settings, max_steps=2)
    path = tmp_path / "trained.safetensors"
    save_trained(result, clips, path, settings)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["mvit.labels"]) == clips.names
    assert json.loads(meta["mvit.protocol"])["uniform"] is True
    again = build_model(result.model.cfg, weights=path)
    x = model_input(whole(torch.from_numpy(clips.clips[:4]), TINY.size))
    with torch.inference_mode():
        assert torch.equal(again(x), result.model(x))
    assert again.labels == clips.names

    video = next((dataset / "moving_up").iterdir())
    done = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "classify", str(video),
                           "--weights", str(path), "-k", "2"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert any(name in done.stdout for name in clips.names)


@pytest.mark.slow
def test_train_command_end_to_end(dataset, tmp_path):
    out = tmp_path / "cli.safetensors"
    done = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "train", str(dataset),
                           "--model", "v2-XS-8", "--frames", "4", "--size", "48", "-o", str(out),
                           "--epochs", "1", "--batch-size", "8", "--workers", "1", "--half",
                           "--time-reversal", "--colour-shuffle"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "validation accuracy" in done.stderr and out.exists()
    assert "growing <-> shrinking" in " ".join(done.stdout.split())
    bad = subprocess.run([sys.executable, "-m", "mvit_cli.cli", "train", str(tmp_path / "none"),
                          "--model", "v2-XS-8", "-o", str(out)], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def _interrupt_after(command: list[str], line_start: str) -> str:
    """Run `mvit train`, press Ctrl-C once stderr shows a line starting `line_start` (not a
    terminal: one line per finished epoch); what it printed after, having exited 130."""
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           text=True, **INTERRUPTIBLE)
    try:
        for line in run.stderr:
            if line.startswith(line_start):
                break
        run.send_signal(signal.SIGINT)
        rest = run.stderr.read()
        assert run.wait(timeout=120) == 130
    finally:
        run.kill()
    return rest


@pytest.mark.slow
def test_ctrl_c_keeps_the_epochs_already_trained(dataset, tmp_path):
    out = tmp_path / "stopped.safetensors"
    rest = _interrupt_after([sys.executable, "-m", "mvit_cli.cli", "train", str(dataset),
                             "--model", "v2-XS-8", "--frames", "4", "--size", "48", "-o",
                             str(out), "--epochs", "1000", "--batch-size", "8", "--workers",
                             "1"], "epoch 2/")
    assert "Traceback" not in rest and "error" not in rest, rest  # work kept: not a failure
    assert rest.strip().splitlines()[-1].startswith("interrupted after epoch "), rest
    with safe_open(str(out), "pt") as stored:
        training = json.loads(stored.metadata()["mvit.training"])
    assert training["epochs"] >= 2 and training["epochs_planned"] == 1000
    small = replace(get_config("v2-XS-8"), frames=4, size=48)
    assert build_model(small, weights=str(out)).num_classes == 8


def test_videos_that_cannot_be_decoded_are_skipped_and_listed(dataset, tmp_path):
    for name in ("moving_left", "moving_right"):
        (tmp_path / name).mkdir()
        good = sorted((dataset / name).iterdir())[0]
        shutil.copy(good, tmp_path / name / good.name)
    (tmp_path / "moving_left" / "text.mp4").write_text("not a video")
    (tmp_path / "moving_right" / "empty.mp4").write_bytes(b"")
    data = load(tmp_path, TINY.frames, TINY.size, workers=2)
    assert len(data.paths) == 2 and data.names == ["moving left", "moving right"]
    assert sorted(Path(p).name for p in data.skipped) == ["empty.mp4", "text.mp4"]


class _StopAfter:
    """on_epoch that presses Ctrl-C once `epochs` epochs are done."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, report) -> None:
        if report.epoch == self.epochs:
            raise KeyboardInterrupt


def test_a_resumed_run_ends_where_an_unbroken_one_does(clips, tmp_path):
    settings = TrainSettings(epochs=3, batch_size=8, lr=3e-3, val_split=0.34, seed=0,
                             warmup_epochs=1)
    whole_run = train(clips, TINY, settings, state_path=tmp_path / "a.pt")
    stopped = train(clips, TINY, settings, state_path=tmp_path / "b.pt",
                    on_epoch=_StopAfter(2))
    assert stopped.interrupted and len(stopped.history) == 2
    resumed = train(clips, TINY, settings, state_path=tmp_path / "b.pt", resume=True)
    assert resumed.resumed_from == 2 and not resumed.interrupted
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert [r.loss for r in resumed.history] == [r.loss for r in whole_run.history]
    assert resumed.best_epoch == whole_run.best_epoch
    ours, theirs = resumed.model.state_dict(), whole_run.model.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_resume_refuses_a_state_of_other_settings(clips, tmp_path):
    from mvit_cli.errors import UsageError

    settings = TrainSettings(epochs=1, batch_size=8, val_split=0.0, seed=0)
    train(clips, TINY, settings, state_path=tmp_path / "s.pt", max_steps=1)
    with pytest.raises(UsageError, match="other settings"):
        train(clips, TINY, replace(settings, lr=0.5), state_path=tmp_path / "s.pt",
              resume=True)
    with pytest.raises(UsageError, match="nothing to resume"):
        train(clips, TINY, settings, state_path=tmp_path / "none.pt", resume=True)


def test_the_best_validation_epoch_is_the_one_kept(clips):
    from mvit_cli.training.trainer import accuracy, split

    settings = TrainSettings(epochs=6, batch_size=8, lr=1e-2, val_split=0.34, seed=3,
                             warmup_epochs=1)
    result = train(clips, TINY, settings)
    scores = [r.val_accuracy for r in result.history]
    best = scores.index(max(scores)) + 1
    assert result.best_epoch == best and result.val_accuracy == max(scores)
    assert scores[-1] < max(scores), scores  # else this test could not tell best from last
    _, val_idx = split(clips, settings.val_split, settings.seed)
    assert accuracy(result.model, clips, val_idx, TINY.size, 8) == max(scores)


def test_skipped_validation_says_why(clips):
    off = train(clips, TINY, TrainSettings(epochs=1, batch_size=8, val_split=0.0), max_steps=1)
    assert off.no_validation == "--val-split is 0" and off.best_epoch == 1
    few = train(clips, TINY, TrainSettings(epochs=1, batch_size=8, val_split=0.1), max_steps=1)
    assert few.no_validation.startswith("too few clips to hold any out: the smallest class "
                                        "has 3")


@pytest.mark.slow
def test_train_resume_on_the_command_line(dataset, tmp_path):
    out = tmp_path / "run.safetensors"
    command = [sys.executable, "-m", "mvit_cli.cli", "train", str(dataset), "--model",
               "v2-XS-8", "--frames", "4", "--size", "48", "-o", str(out), "--epochs", "4",
               "--batch-size", "8", "--workers", "1", "--val-split", "0.34"]
    missing = subprocess.run(command + ["--resume"], capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 2 and "nothing to resume" in missing.stderr
    rest = _interrupt_after(command, "epoch 1/4")
    assert "--resume continues the run" in rest, rest
    state = tmp_path / ".run.train-state.pt"
    assert state.exists()
    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "resumed after epoch" in done.stderr and "of 4" in done.stderr
    assert "the best validation accuracy" in " ".join(done.stdout.split())
    assert not state.exists()  # a finished run leaves nothing to resume
    with safe_open(str(out), "pt") as stored:
        training = json.loads(stored.metadata()["mvit.training"])
    assert training["epochs"] == 4 and 1 <= training["best_epoch"] <= 4


def test_the_validation_split_is_stratified_disjoint_and_rounded():
    from mvit_cli.training.trainer import split

    data = ClipSet(np.zeros((10, 1, 1, 1, 3), np.uint8), np.array([0] * 4 + [1] * 6),
                   ["a", "b"], [str(i) for i in range(10)])
    train_idx, val_idx = split(data, 0.4, seed=1)
    assert sorted([*train_idx, *val_idx]) == list(range(10))  # each clip once: no leak
    assert np.bincount(data.labels[val_idx]).tolist() == [2, 2]  # 0.4 of 4 and of 6, rounded
    again = split(data, 0.4, seed=1)
    assert (again[0] == train_idx).all() and (again[1] == val_idx).all()
    assert len(split(data, 0.0, seed=1)[1]) == 0


def test_the_learning_rate_warms_up_then_follows_a_cosine_and_the_last_epoch_is_kept(tmp_path):
    """One step an epoch (a batch holds every clip): two of warm-up, two of cosine decay; the
    rate each step used is in the state saved after its epoch. Without validation the last
    epoch's weights are the ones kept."""
    settings = TrainSettings(epochs=4, batch_size=8, lr=1e-3, val_split=0.0, warmup_epochs=2)
    state_path = tmp_path / "state.pt"
    rates = []

    def read(report) -> None:  # the state is saved just before on_epoch is called
        state = torch.load(state_path, weights_only=True)
        rates.append(state["optimizer"]["param_groups"][0]["lr"])

    result = train(noise(), TINY, settings, on_epoch=read, state_path=state_path)
    assert rates == pytest.approx([0.5e-3, 1e-3, 1e-3, 0.5e-3])
    assert result.best_epoch == 4 and result.val_accuracy is None
    last = torch.load(state_path, weights_only=True)["model"]
    assert all(torch.equal(v, last[k]) for k, v in result.model.state_dict().items())


def test_weight_decay_shrinks_weight_matrices_only_and_label_smoothing_reaches_the_loss():
    """One step from the same start, with and without each: AdamW's decay is decoupled from
    the gradient, so biases, norms and position tables (no decay) come out equal."""
    base = TrainSettings(epochs=1, batch_size=8, lr=1e-2, val_split=0.0, weight_decay=0.0,
                         label_smoothing=0.0)
    plain = train(noise(), TINY, base, max_steps=1)
    decayed = train(noise(), TINY, replace(base, weight_decay=0.5), max_steps=1)
    smoothed = train(noise(), TINY, replace(base, label_smoothing=0.3), max_steps=1)
    ours, theirs = plain.model.state_dict(), decayed.model.state_dict()
    decayable = {name for name, param in plain.model.named_parameters()
                 if not (param.ndim <= 1 or "rel_pos" in name or "pos_embed" in name
                         or name == "cls_token")}
    changed = {name for name in ours if not torch.equal(ours[name], theirs[name])}
    # (a parameter the step gave no gradient, such as a pooling the last block skips, is
    # left alone by AdamW, decay included)
    assert changed <= decayable and len(changed) > len(decayable) / 2, changed ^ decayable
    assert smoothed.history[0].loss != plain.history[0].loss
    assert decayed.history[0].loss == plain.history[0].loss


def test_of_equally_good_epochs_the_earliest_is_kept():
    """At learning rate 0 nothing changes, so every epoch validates the same."""
    settings = TrainSettings(epochs=2, batch_size=8, lr=0.0, val_split=0.34)
    result = train(noise(), TINY, settings)
    assert len({r.val_accuracy for r in result.history}) == 1
    assert result.best_epoch == 1 and result.val_accuracy == result.history[0].val_accuracy


def test_fine_tuning_for_other_classes_gets_a_new_head_and_keeps_the_body(tmp_path):
    from mvit_cli.training.trainer import build_for_training

    start = save_tiny(tmp_path / "start.safetensors", cfg=TINY_V1)
    stored = build_model(TINY_V1, weights=str(start)).state_dict()
    same = build_for_training(TINY_V1, 10, str(start))
    assert all(torch.equal(v, stored[k]) for k, v in same.state_dict().items())
    other = build_for_training(TINY_V1, 3, str(start))
    assert other.head.out_features == 3 and other.num_classes == 3 and other.training
    assert all(torch.equal(v, stored[k]) for k, v in other.state_dict().items()
               if not k.startswith("head."))


def test_saved_weights_say_how_they_were_trained(tmp_path):
    model = build_model(replace(TINY, num_classes=2)).eval()
    history = [EpochReport(1, 1.5, 0.5), EpochReport(2, 1.0, 0.25)]
    result = TrainResult(model, history, val_accuracy=0.5, best_epoch=1)
    settings = TrainSettings(epochs=5, batch_size=4, lr=2e-3, seed=3)
    path = tmp_path / "trained.safetensors"
    save_trained(result, noise(per_class=1), path, settings)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    assert json.loads(meta["mvit.labels"]) == ["a", "b"]
    protocol = json.loads(meta["mvit.protocol"])
    assert (protocol["uniform"], protocol["frames"], protocol["crop"], protocol["short_side"]) == (
        True, TINY.frames, TINY.size, TINY.size)
    training = json.loads(meta["mvit.training"])
    assert {k: training[k] for k in ("epochs", "epochs_planned", "best_epoch", "val_accuracy",
                                     "batch_size", "lr", "seed", "clips")} == {
        "epochs": 2, "epochs_planned": 5, "best_epoch": 1, "val_accuracy": 0.5,
        "batch_size": 4, "lr": 2e-3, "seed": 3, "clips": 2}


def test_train_command_takes_its_options(tmp_path):
    register_tiny_architectures()
    data = tmp_path / "data"
    for name in ("turning", "waving"):
        (data / name).mkdir(parents=True)
        for i in range(3):
            write_video(data / name / f"{i}.mp4", frames=8, width=48, height=48)
    out = tmp_path / "model.safetensors"
    options = ("-m", "tiny-v2", "-o", out, "--epochs", "1", "--batch-size", "4", "--lr", "0.002",
               "--val-split", "0.34", "--seed", "5", "--workers", "1")
    missing = run_cli("train", data, *options, "--resume")
    assert missing.exit_code == 2 and "nothing to resume" in missing.stderr
    result = run_cli("train", data, *options, "--half")
    assert result.exit_code == 0, result.output
    assert "the best validation accuracy" in result.stdout
    with safe_open(str(out), "pt") as handle:
        training = json.loads(handle.metadata()["mvit.training"])
        assert {handle.get_tensor(k).dtype for k in handle.keys()} >= {torch.float16}
        assert torch.float32 not in {handle.get_tensor(k).dtype for k in handle.keys()}
    assert {k: training[k] for k in ("epochs", "batch_size", "lr", "seed", "clips")} == {
        "epochs": 1, "batch_size": 4, "lr": 0.002, "seed": 5, "clips": 6}
    assert training["val_accuracy"] is not None
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no state left


def test_an_imported_trained_file_runs_the_protocol_it_records(tmp_path, monkeypatch):
    """`mvit weights import` of what `mvit train` saved: the entry keeps the file's protocol
    and labels, so `--weights NAME` classifies exactly as `--weights FILE` does."""
    import csv

    import mvit_cli

    register_tiny_architectures()
    monkeypatch.setenv("MVIT_HOME", str(tmp_path / "home"))
    cfg = replace(TINY_V2, frames=4, size=32, num_classes=2)  # registered as tiny-v2
    settings = TrainSettings(epochs=1, batch_size=6, val_split=0.0, seed=0)
    result = train(noise(per_class=3), cfg, settings, max_steps=1)
    trained = tmp_path / "trained.safetensors"
    save_trained(result, noise(per_class=3), trained, settings)
    imported = run_cli("weights", "import", trained, "--name", "mine")
    assert imported.exit_code == 0, imported.output

    by_file, by_name = mvit_cli.load(str(trained)), mvit_cli.load("mine")
    assert by_file.recorded_protocol is not None
    assert by_name.recorded_protocol == by_file.recorded_protocol
    assert by_name.protocol == by_file.protocol and by_name.labels == by_file.labels == ["a", "b"]

    video = write_video(tmp_path / "clip.mp4", frames=8, width=48, height=48)
    rows = {}
    for weights in (trained, "mine"):
        out = tmp_path / f"{Path(str(weights)).stem}.csv"
        done = run_cli("classify", video, "--weights", weights, "-o", out, "-q")
        assert done.exit_code == 0, done.output
        with open(out, newline="") as handle:
            rows[str(weights)] = next(csv.DictReader(handle))
    assert rows["mine"]["protocol"] == rows[str(trained)]["protocol"]
    assert rows["mine"]["label_1"] == rows[str(trained)]["label_1"]
    assert rows["mine"]["score_1"] == rows[str(trained)]["score_1"]
