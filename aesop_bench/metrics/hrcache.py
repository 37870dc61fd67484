"""The HR side of a full-reference network metric, computed once per image and kept on disk.

A benchmark evaluates many models on the same HR images, and LPIPS, DISTS and AE-PSNR would otherwise
recompute the HR's features (or AE(HR)) for every model. :class:`HRCache` keeps them under
``$AESOP_BENCH_HOME/hr_features/<metric and weights>/<torch version and device>/``, keyed by the HR's
bytes, so that later models pay only their SR side. ``write_on_second_put`` (LPIPS, DISTS: large feature maps from
cheap networks) writes an HR's tensors when a second model asks for them, the first leaving a marker: writing them
costs a run that evaluates one model about as much as computing them (``benchmarks/bench_metrics.py``), so a
one-model run pays nothing, and every model after the second reads them. AE(HR) (a few MB from an expensive
network) is written at once. The tensors are stored exactly as the
network returned them (float32, ``torch.save``), so a value is bit-identical with and without the cache; each
entry carries the sha256 of its bytes, checked when it is read, so a damaged one is computed again, never used.

The folder grows by the size of the feature maps: about 10 MB (LPIPS), 130 MB (DISTS) and 3 MB (AE-PSNR)
per 512x512 image. It is the ``hr_features`` kind of :mod:`aesop_bench.cache` (budget
``$AESOP_BENCH_HR_CACHE_GB``, default 20; 0 turns it off); ``aesop-bench cache`` shows its size and
``aesop-bench cache clear hr_features`` empties it.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..cache import TENSORS, Store, device_tag, folder
from ..fileutil import tensor_key


class HRCache:
    """HR-side tensors of one metric definition (``name``: the metric, its version and its weights' hashes)
    computed on ``device``, in the ``hr_features`` cache's folder for ``name`` and the device."""

    def __init__(self, name: str, device: torch.device | str, write_on_second_put: bool = False):
        self.folder = folder("hr_features", name, device_tag(device))
        self.store = Store("hr_features", self.folder, TENSORS, write_on_second_put=write_on_second_put)

    def around(self, hr_side: Callable[[torch.Tensor], list[torch.Tensor]],
               from_hr_side: Callable[[torch.Tensor, list[torch.Tensor]], torch.Tensor]):
        """A scorer ``(sr, hr) -> values`` of a metric given as two pure functions, its HR side (``hr_side(hr)``)
        and its comparison (``from_hr_side(sr, hr_side)``), with the HR side kept here image by image.

        >>> import os, tempfile
        >>> from unittest import mock
        >>> seen = []
        >>> def double(hr):
        ...     seen.append(len(hr))
        ...     return [hr.float() * 2]
        >>> x = torch.ones(2, 1, 2, 2)
        >>> with mock.patch.dict(os.environ, {"AESOP_BENCH_HOME": tempfile.mkdtemp()}):
        ...     score = HRCache("demo", "cpu").around(double, lambda sr, f: (sr - f[0]).sum((1, 2, 3)))
        ...     score(x, x).tolist(), score(x, x).tolist(), seen   # the HR side computed once, then read
        ([-4.0, -4.0], [-4.0, -4.0], [2])
        """
        return lambda sr, hr: from_hr_side(sr, self.get_batch(hr, hr_side))

    def get_batch(self, hr: torch.Tensor, compute: Callable[[torch.Tensor], list[torch.Tensor]]) -> list[torch.Tensor]:
        """The tensors ``compute(hr)`` returns for a ``(N, C, H, W)`` batch, kept image by image: the images an
        earlier run kept are read from the disk and ``compute`` runs once, on the batch of the others (its
        tensors have one row per image of that batch)."""
        if not self.store.enabled:
            return [t.cpu() for t in compute(hr)]
        items = [hr[i:i + 1] for i in range(len(hr))]
        keys = [tensor_key(x) for x in items]
        parts = [self.store.get(k) for k in keys]
        miss = [i for i, p in enumerate(parts) if p is None]
        if miss:
            sub = hr if len(miss) == len(items) else hr[miss]
            out = [t.detach().cpu() for t in compute(sub)]
            for j, i in enumerate(miss):  # each image's own rows, copied out of the batch's storage
                parts[i] = out if len(miss) == 1 else [t[j:j + 1].clone() for t in out]
                self.store.put(keys[i], parts[i])
        if len(parts) == 1:
            return parts[0]
        return [torch.cat(level) for level in zip(*parts)]


__all__ = ["HRCache"]
