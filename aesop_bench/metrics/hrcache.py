"""The HR side of a full-reference network metric, computed once per image and kept on disk.

A benchmark evaluates many models on the same HR images, and LPIPS, DISTS and AE-PSNR would otherwise
recompute the HR's features (or AE(HR)) for every model. :class:`HRCache` keeps them under
``$AESOP_BENCH_HOME/hr_features/<metric and weights>/<torch version and device>/``, keyed by the HR's
bytes, so that later models pay only their SR side. ``write_on_second_put`` (LPIPS, DISTS: large feature maps from
cheap networks) writes an HR's tensors when a second model asks for them, the first leaving a marker: writing them
costs a run that evaluates one model about as much as computing them (``benchmarks/bench_metrics.py``), so a
one-model run pays nothing, and every model after the second reads them. AE(HR) (a few MB from an expensive
network) is written at once. What is read back is the tensors exactly as the network returned them (float32,
``torch.save``), so a value is bit-identical with and without the cache; each entry carries the sha256 of its
bytes, checked when it is read, so a damaged one is computed again, never used.

DISTS's entries are written in :data:`SPARSE_TENSORS`: its five VGG16 levels end in a ReLU, and a level's zeros
take one bit each (its other values and their places are kept exactly, so what is read back is the same bits).

The folder grows by the size of the feature maps: about 10 MB (LPIPS), 70 MB (DISTS: 0.27 GB per HR megapixel
with stand-in VGG16 weights, whose levels are half zeros; 0.5 GB unpacked) and 3 MB (AE-PSNR) per 512x512 image.
It is the ``hr_features`` kind of :mod:`aesop_bench.cache` (budget ``$AESOP_BENCH_HR_CACHE_GB``, default 20; 0
turns it off); ``aesop-bench cache`` shows its size and ``aesop-bench cache clear hr_features`` empties it. A
full cache keeps what it has and writes nothing more: the images it does not hold are computed again for every
model, and the first time that happens to a metric, a process says so (:class:`HRCacheFull`, a warning).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..cache import BUDGETS, TENSORS, Codec, Store, device_tag, folder
from ..fileutil import tensor_key


class HRCacheFull(UserWarning):
    """The HR cache has no room left: the HR side of the images it does not hold is computed for every model."""


def _pack(t: torch.Tensor):
    """A float32 tensor as the bitmask of its nonzero values and those values, where that takes fewer bytes; any
    other tensor as it is. Zeros are told apart by their bits: a -0.0 is kept as a value."""
    if t.dtype != torch.float32 or t.numel() < 64:
        return t
    a = t.detach().contiguous().reshape(-1).numpy()
    nonzero = a.view(np.int32) != 0
    count = int(np.count_nonzero(nonzero))
    if 4 * count + (a.size + 7) // 8 >= 4 * a.size:
        return t
    return {"shape": list(t.shape), "mask": torch.from_numpy(np.packbits(nonzero)),
            "values": torch.from_numpy(np.compress(nonzero, a))}


def _unpack(item) -> torch.Tensor:
    """What :func:`_pack` was given, the same bits."""
    if isinstance(item, torch.Tensor):
        return item
    size = math.prod(item["shape"])
    out = np.zeros(size, dtype=np.float32)
    values = item["values"].numpy()
    if values.size:
        np.place(out, np.unpackbits(item["mask"].numpy(), count=size).view(np.bool_), values)
    return torch.from_numpy(out).reshape(item["shape"])


def _write_sparse(f, tensors) -> None:
    torch.save([_pack(t) for t in tensors], f)


def _read_sparse(path: Path):
    return [_unpack(item) for item in torch.load(path, map_location="cpu", weights_only=True, mmap=True)]


# lists of tensors, a float32 tensor that is more than 1/32 zeros (a ReLU's output) as its nonzero values and a
# bitmask of their places: what is read back is what was written, bit for bit
SPARSE_TENSORS = Codec(".pt", _write_sparse, _read_sparse)

_told_full: set[Path] = set()  # the HR caches whose fullness this process has told of


class HRCache:
    """HR-side tensors of one metric definition (``name``: the metric, its version and its weights' hashes)
    computed on ``device``, in the ``hr_features`` cache's folder for ``name`` and the device."""

    def __init__(self, name: str, device: torch.device | str, write_on_second_put: bool = False,
                 codec: Codec = TENSORS):
        self.name = name
        self.folder = folder("hr_features", name, device_tag(device))
        self.store = Store("hr_features", self.folder, codec, write_on_second_put=write_on_second_put)

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
                if not self.store.put(keys[i], parts[i]) and self._full():
                    self._tell_full()
        if len(parts) == 1:
            return parts[0]
        return [torch.cat(level) for level in zip(*parts)]

    def _full(self) -> bool:
        """Whether the cache has no room left in its budget (what :meth:`Store.put` refuses new entries for)."""
        return self.store.full

    def _tell_full(self) -> None:
        """Say, once per process and metric, that the cache is full and what that costs."""
        if self.folder in _told_full:
            return
        _told_full.add(self.folder)
        env = BUDGETS["hr_features"][0]
        warnings.warn(f"the hr_features cache has no room left in its budget of {self.store.budget / 1e9:g} GB "
                      f"(${env}) and keeps no more: the HR side of {self.name} is computed again for every model "
                      f"on the images it does not hold. Raise ${env}, or empty it with `aesop-bench cache clear "
                      "hr_features` (entries of earlier layouts and weights included)", HRCacheFull, stacklevel=2)


__all__ = ["HRCache", "HRCacheFull", "SPARSE_TENSORS"]
