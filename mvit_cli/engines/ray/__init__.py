"""The Ray engine: Ray plumbing (`engine`), and without Ray the rows of a batch
(`batch_rows`) and how work is cut into calls over the nodes (`scheduling`)."""

from .engine import RayEngine

__all__ = ["RayEngine"]
