"""A model of the tests' own under the evaluator's model interface (``name``, ``scale``, ``identity``, ``cache``,
``to``, ``__call__``): MATLAB bicubic that records the batch shape of each call, and fails from a given call on,
so tests observe what the evaluator asks of a model without patching its code."""

from __future__ import annotations

from aesop_bench.models.bicubic import Bicubic


class ModelFailed(Exception):
    """What :class:`RecordingBicubic` raises from its ``fail_at``-th call on (a network failing midway)."""


class RecordingBicubic:
    def __init__(self, scale: int = 4, cache: bool = False, fail_at: int | None = None):
        self.inner = Bicubic(scale)
        self.name, self.scale, self.identity = "recording-bicubic", scale, f"recording-bicubic-x{scale}"
        self.cache = cache  # False: every image is run again (nothing read from the SR cache)
        self.fail_at = fail_at
        self.calls: list[tuple] = []  # the input shape of each call

    def to(self, device):
        return self

    def __call__(self, lr):
        if self.fail_at is not None and len(self.calls) + 1 >= self.fail_at:
            raise ModelFailed(f"call {len(self.calls) + 1}")
        self.calls.append(tuple(lr.shape))
        return self.inner(lr)
