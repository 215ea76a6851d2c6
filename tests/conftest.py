"""Shared test helpers: the reduced networks of the reference fixtures, and file makers."""

from __future__ import annotations

import os
import tempfile

# huggingface-hub reads its cache location when imported: point it away from the user's
# cache before anything imports it.
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="mvit-test-hf-"))
os.environ.pop("HF_HUB_OFFLINE", None)
# huggingface-hub also reads HF_HUB_OFFLINE once, when imported: import it now, online, so a
# test that turns offline mode on for itself cannot leave the library offline for the rest.
import huggingface_hub.constants  # noqa: E402, F401

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mvit_cli.models.architectures import get_config
from mvit_cli.models.config import MViTConfig

FIXTURES = Path(__file__).parent / "fixtures"

# The reduced networks of scripts/make_reference_fixture.py, as stage schedules. The fixture
# script writes torchvision's per-block tables out by hand; these must expand to the same.
TINY_V1 = replace(get_config("B-16x4"), name="tiny-v1", depths=(1, 2, 1), embed_dim=16,
                  frames=4, size=32, num_classes=10, kv_stride=(1, 4, 4))
TINY_V2 = replace(get_config("v2-S-16x4"), name="tiny-v2", depths=(1, 2, 1), embed_dim=16,
                  frames=4, size=32, num_classes=10, kv_stride=(1, 4, 4))
# An image MViTv2 in timm's style (no class token, mean-pooled head, 2D kernels).
TINY_V2_IMAGE = replace(get_config("v2-T"), name="tiny-v2-image", depths=(1, 2, 1),
                        embed_dim=16, size=32, num_classes=7)
TINY_V1_IMAGE = replace(get_config("B-16"), name="tiny-v1-image", depths=(1, 2, 1),
                        embed_dim=16, size=32, num_classes=7)

# The tiny video model takes 4 frames of 32x32. Short side 40 keeps both halves of the
# numbered frames (tests/media.py) inside the centre crop.
PROTOCOL = {"frames": 4, "rate": 2, "short_side": 40, "crop": 32}

REFERENCES = {"tv_v1_tiny": TINY_V1, "tv_v2_tiny": TINY_V2}
TINY = (TINY_V1, TINY_V2, TINY_V2_IMAGE, TINY_V1_IMAGE)


def register_tiny_architectures() -> None:
    """Make the reduced networks usable by name (registry entries name architectures)."""
    from mvit_cli import register_architecture

    for cfg in TINY:
        register_architecture(cfg)


def reference(name: str) -> tuple[MViTConfig, Path, torch.Tensor, torch.Tensor]:
    """(config, torchvision-layout weights file, input, torchvision's logits) of a fixture."""
    io = load_file(str(FIXTURES / f"{name}.io.safetensors"))
    return REFERENCES[name], FIXTURES / f"{name}.weights.safetensors", io["input"], io["logits"]


def max_rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture(autouse=True, scope="session")
def _isolated_mvit_home(tmp_path_factory: pytest.TempPathFactory):
    """Tests never write into the user's real cache."""
    import os

    home = tmp_path_factory.mktemp("mvit-home")
    previous = os.environ.get("MVIT_HOME")
    os.environ["MVIT_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("MVIT_HOME", None)
    else:
        os.environ["MVIT_HOME"] = previous


@pytest.fixture
def force_gates(monkeypatch):
    """`force_gates(amx=True, ...)`: take the CPU paths as if this CPU answered so, for the
    rest of the test (cpu_gates), so that any CPU runs every path."""
    from mvit_cli import cpu_gates

    def force(**values: bool) -> None:
        monkeypatch.setattr(cpu_gates, "_GATES", replace(cpu_gates.gates(), **values))

    return force


@pytest.fixture
def shrink_tuning(monkeypatch):
    """`shrink_tuning(kind=None, bf16_query_chunk=64, ...)`: the fast paths' tuned constants
    (models/fast/tuning.py) replaced in the row of CPU kind `kind` (every row: None), for
    the rest of the test, so that small test inputs cross the chunk sizes and thresholds."""
    from mvit_cli.models.fast import tuning

    def shrink(kind: str | None = None, **values: int | None) -> None:
        for row in [kind] if kind is not None else list(tuning.TUNING):
            monkeypatch.setitem(tuning.TUNING, row, replace(tuning.TUNING[row], **values))

    return shrink


@pytest.fixture(params=sorted(REFERENCES))
def reference_name(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(*args) -> CliResult:
    """`mvit ARGS...` in this process, through the real entry point (`cli.main`), so expected
    failures are reported as users see them; stdout and stderr captured apart."""
    import contextlib
    import io

    from mvit_cli.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def save_tiny(path: Path, seed: int = 0, labels: list[str] | None = None,
              cfg: MViTConfig = TINY_V1) -> Path:
    """A tiny video model in our own safetensors: architecture, labels and protocol inside."""
    import json

    from mvit_cli import build_model
    from mvit_cli.checkpoints import save_native

    torch.manual_seed(seed)
    save_native(build_model(cfg), path, extra={"mvit.protocol": json.dumps(PROTOCOL)},
                labels=labels or [f"action {i}" for i in range(cfg.num_classes)])
    return path


@pytest.fixture
def tiny_weights(tmp_path) -> Path:
    return save_tiny(tmp_path / "tiny.safetensors")


def _default_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# For subprocesses a test interrupts with SIGINT: a shell's background job (`cmd &` without
# job control) starts with SIGINT ignored, which its children inherit, and Python then
# installs no KeyboardInterrupt; the child gets the default back, as in a terminal.
INTERRUPTIBLE = {"preexec_fn": _default_sigint}


# Peak resident memory of the process that evaluates it, in kB, as an expression for child
# processes. Why not getrusage's ru_maxrss: on Linux it survives exec, so a child started by
# a pytest process of 1.7 GB reported 1.7 GB whatever it did itself; /proc's VmHWM belongs to
# the child's own address space.
PEAK_KB = ("next(int(line.split()[1]) for line in open('/proc/self/status') "
           "if line.startswith('VmHWM:'))")
