"""Other projects' MViT implementations, imported for the tests that compare against them.

timm imports torchvision, and the torchvision wheel from PyPI cannot be imported next to the
CPU-only torch build: at import it registers fake (meta) kernels for its compiled operators
(`torchvision::nms` and others), which that torch does not know, and
`torch.library.register_fake` raises RuntimeError. timm's MViTv2 never calls those
operators (it is plain Python over torch), so the failed registrations are harmless to us:
`timm_mvitv2` imports torchvision with a registration that skips what it cannot register,
then puts torch's own back.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch.library


def _tolerant(register_fake: Callable[..., Any]) -> Callable[..., Any]:
    """`register_fake` that leaves the function undecorated where registering it fails.

    It is used both ways torch allows: `register_fake(op, func)` registers at once, and
    `register_fake(op)` returns a decorator that registers when applied.
    """

    def register_or_skip(func: Callable[..., Any], op: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return register_fake(op, func, *args, **kwargs)
        except RuntimeError:
            return func

    @functools.wraps(register_fake)
    def wrapper(op: Any, func: Callable[..., Any] | None = None, /, *args: Any,
                **kwargs: Any) -> Any:
        if func is not None:
            return register_or_skip(func, op, *args, **kwargs)
        return lambda decorated: register_or_skip(decorated, op, *args, **kwargs)

    return wrapper


@contextmanager
def _fake_registration_failures_ignored() -> Iterator[None]:
    original = torch.library.register_fake
    torch.library.register_fake = _tolerant(original)
    try:
        yield
    finally:
        torch.library.register_fake = original


def timm_mvitv2() -> ModuleType:
    """timm's `timm.models.mvitv2` module; ModuleNotFoundError where timm or torchvision is
    not installed (checked first: importing timm is what imports torchvision)."""
    for name in ("timm", "torchvision"):
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"{name} is not installed", name=name)
    with _fake_registration_failures_ignored():
        importlib.import_module("torchvision")
    return importlib.import_module("timm.models.mvitv2")
