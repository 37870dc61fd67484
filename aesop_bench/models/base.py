"""The interface every super-resolution model of the evaluator follows."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class SRModel(Protocol):
    """A callable LR -> SR.

    ``__call__`` takes a float32 ``(N, C, h, w)`` batch in ``[0, 1]`` (8-bit
    values, C = 3, or 1 for grayscale under the ``matlab`` protocol) and
    returns ``(N, C, h * scale, w * scale)`` in ``[0, 1]`` (values outside are
    clamped by the evaluator's quantisation). ``identity`` is a stable string
    that changes whenever the outputs could change (architecture, weights
    hash, precision); SR images are cached under it.
    """

    name: str
    scale: int
    identity: str

    def __call__(self, lr: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str) -> "SRModel": ...
