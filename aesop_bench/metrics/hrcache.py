"""The HR side of a full-reference network metric, computed once per image and kept on disk.

A benchmark evaluates many models on the same HR images, and LPIPS, DISTS and AE-PSNR would otherwise
recompute the HR's features (or AE(HR)) for every model. :class:`HRCache` keeps them under
``$AESOP_BENCH_HOME/hr_features/<metric and weights>/<torch version and device>/``, keyed by the HR's
bytes, so that every model after the first pays only its SR side. The tensors are stored exactly as the
network returned them (float32, ``torch.save``), so a value is bit-identical with and without the cache.

The folder grows by the size of the feature maps: about 10 MB (LPIPS), 130 MB (DISTS) and 3 MB (AE-PSNR)
per 512x512 image. ``$AESOP_BENCH_HR_CACHE_GB`` bounds it (default 20; 0 turns the cache off): once full,
new entries are not written (the images already kept stay useful to every later model, where evicting the
oldest would make a model-by-model sweep miss every time). ``aesop-bench cache`` shows its size and
``aesop-bench cache clear hr_features`` empties it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ..errors import AesopBenchError
from ..fileutil import atomic_file, cache_file, tensor_key
from ..paths import folder_size, hr_features_dir

BUDGET_ENV = "AESOP_BENCH_HR_CACHE_GB"
DEFAULT_GB = 20.0
_used: dict[Path, int] = {}  # bytes under each cache root, counted once per process and kept up to date


def budget_bytes() -> int:
    raw = os.environ.get(BUDGET_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_GB
    except ValueError:
        raise AesopBenchError(f"${BUDGET_ENV}={raw!r} is not a number; give the HR feature cache's size in GB "
                              "(0 turns it off)") from None
    return int(max(gb, 0.0) * 1e9)


def device_tag(dev: torch.device | str) -> str:
    """What of the machine can change a network's float32 output: torch's version and the device model."""
    dev = torch.device(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return f"torch{torch.__version__}-{name}".replace(" ", "_").replace("/", "_")


class HRCache:
    """HR-side tensors of one metric definition (``name``: the metric, its version and its weights' hashes)
    computed on ``device``."""

    def __init__(self, name: str, device: torch.device | str, base: Path | None = None):
        self.base = Path(base) if base is not None else hr_features_dir()
        self.folder = self.base / name.replace(":", "_").replace("=", "_").replace("/", "_") / device_tag(device)

    def get(self, hr: torch.Tensor, compute: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
        """The tensors ``compute()`` returns for ``hr`` (one entry, whatever its batch size), read from the disk
        when an earlier run kept them (on the CPU; move them where they are needed)."""
        return self.get_batch(hr, lambda _: compute(), per_image=False)

    def get_batch(self, hr: torch.Tensor, compute: Callable[[torch.Tensor], list[torch.Tensor]],
                  per_image: bool = True) -> list[torch.Tensor]:
        """The tensors ``compute(hr)`` returns for a ``(N, C, H, W)`` batch, kept image by image: the images an
        earlier run kept are read from the disk and ``compute`` runs once, on the batch of the others (its
        tensors have one row per image of that batch). ``per_image=False`` keeps the batch as one entry."""
        budget = budget_bytes()
        if budget == 0:
            return [t.cpu() for t in compute(hr)]
        items = [hr[i:i + 1] for i in range(len(hr))] if per_image else [hr]
        paths = [cache_file(self.folder, tensor_key(x), ".pt") for x in items]
        parts = [self._read(p) for p in paths]
        miss = [i for i, p in enumerate(parts) if p is None]
        if miss:
            sub = hr if len(miss) == len(items) else hr[miss]
            out = [t.detach().cpu() for t in compute(sub)]
            for j, i in enumerate(miss):  # each image's own rows, copied out of the batch's storage
                parts[i] = out if len(miss) == 1 else [t[j:j + 1].clone() for t in out]
                self._write(paths[i], parts[i], budget)
        if len(parts) == 1:
            return parts[0]
        return [torch.cat(level) for level in zip(*parts)]

    @staticmethod
    def _read(path: Path) -> list[torch.Tensor] | None:
        if not path.is_file():
            return None
        try:  # mapped, not read: the pages are read as the metric uses them
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # a damaged entry is computed again and replaced
            return None

    def _write(self, path: Path, tensors: list[torch.Tensor], budget: int) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors)
        if self.base not in _used:
            _used[self.base] = folder_size(self.base)[0]
        if _used[self.base] + size <= budget:
            try:
                with atomic_file(path, durable=False) as f:  # a lost entry is computed again
                    torch.save(tensors, f)
                _used[self.base] += size
            except OSError:  # a full or read-only disk: the value is computed all the same; stop trying
                _used[self.base] = budget

__all__ = ["HRCache", "budget_bytes", "device_tag", "BUDGET_ENV"]
