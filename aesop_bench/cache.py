"""The content-addressed caches, one layer for all: SR images (PNG), the HR side of the full-reference network
metrics (tensors) and FID/pFID features (arrays).

A :class:`Store` keeps values of one cache under a folder whose path names everything that made them (model
identity or metric version, weights hash, torch version and device); an entry's file is named by its key, the
sha256 of the input it was computed from (:func:`aesop_bench.fileutil.tensor_key`), fanned out by the key's first
two characters. Entries are written atomically without fsync (a lost entry is computed again; a killed write
leaves a temporary file that is swept later) and read back, or None where absent or damaged (then computed
again). The metrics' math knows nothing of this: the code around it asks a store.

Each cache has a size budget in GB (:data:`BUDGETS`, from its environment variable; 0 turns it off). A full cache
writes no new entries and keeps what it has: the entries kept stay useful to every later model, where evicting
the oldest would make a model-by-model sweep miss every time. ``aesop-bench cache`` shows each one's size and
budget, and ``aesop-bench cache clear NAME`` evicts it. Torch-free until a tensor is read or written.

>>> import tempfile
>>> store = Store("features", Path(tempfile.mkdtemp()) / "demo", ARRAY)
>>> import numpy as np
>>> key = "ab" * 32
>>> store.get(key) is None, store.put(key, np.zeros((1, 4))), store.get(key).shape
(True, True, (1, 4))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import AesopBenchError
from .fileutil import atomic_file, cache_file
from .paths import DERIVED, folder_size

# cache name -> (environment variable, default GB)
BUDGETS = {"sr": ("AESOP_BENCH_SR_CACHE_GB", 50.0), "features": ("AESOP_BENCH_FEATURES_CACHE_GB", 10.0),
           "hr_features": ("AESOP_BENCH_HR_CACHE_GB", 20.0)}
_used: dict[Path, int] = {}  # bytes under each cache's folder, counted once per process and kept up to date


@dataclass(frozen=True)
class Codec:
    """How values of one type are files: ``write(file, value)`` and ``read(path) -> value`` (raising on a damaged
    file)."""

    suffix: str
    write: Callable[[Any, Any], None]
    read: Callable[[Path], Any]


def _write_png(f, img) -> None:
    from .imageio import encode_png

    f.write(encode_png(img))


def _read_png(path: Path):
    from .imageio import read_image

    return read_image(path)


def _write_tensors(f, tensors) -> None:
    import torch

    torch.save(tensors, f)


def _read_tensors(path: Path):
    import torch

    # mapped, not read: the pages are read as the metric uses them
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _write_array(f, arr) -> None:
    import numpy as np

    np.save(f, arr)


def _read_array(path: Path):
    import numpy as np

    return np.load(path, allow_pickle=False)


PNG = Codec(".png", _write_png, _read_png)  # uint8 (C, H, W) images, lossless
TENSORS = Codec(".pt", _write_tensors, _read_tensors)  # lists of tensors, exactly as computed
ARRAY = Codec(".npy", _write_array, _read_array)  # NumPy arrays


def budget_bytes(name: str) -> int:
    """The size budget of a cache (a key of :data:`BUDGETS`) in bytes, from its environment variable (GB; 0: off)."""
    env, default = BUDGETS[name]
    raw = os.environ.get(env, "").strip()
    try:
        gb = float(raw) if raw else default
    except ValueError:
        raise AesopBenchError(f"${env}={raw!r} is not a number; give the {name} cache's size in GB (0 turns it "
                              "off)") from None
    return int(max(gb, 0.0) * 1e9)


class Store:
    """Values of the cache ``name`` (a key of :data:`BUDGETS`) under ``folder``, in ``codec``; see the module
    docstring. ``valid(value)``: a check of what is read back (a value failing it is computed again).

    ``second_sight``: an entry is written the second time its key is put, not the first (the first leaves an
    empty marker): for values that are large to write and quick to compute, a run that sees an input once (one
    model) pays nothing for the cache, and the runs after it read what the second one wrote."""

    def __init__(self, name: str, folder: Path, codec: Codec, valid: Callable[[Any], bool] | None = None,
                 second_sight: bool = False):
        if name not in BUDGETS:
            raise AesopBenchError(f"cache {name!r} unknown; one of {', '.join(BUDGETS)}")
        self.name, self.folder, self.codec = name, Path(folder), codec
        self.valid = valid or (lambda value: True)
        self.second_sight = second_sight
        self.budget = budget_bytes(name)

    @property
    def enabled(self) -> bool:
        """Whether the cache is on (a budget above 0, and no failed write)."""
        return self.budget > 0

    def path(self, key: str) -> Path:
        """The file of ``key``'s entry."""
        return cache_file(self.folder, key, self.codec.suffix)

    def get(self, key: str):
        """The value kept under ``key``, or None (absent, damaged, or the cache turned off)."""
        path = self.path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            value = self.codec.read(path)
        except Exception:  # noqa: BLE001 - a damaged entry of any kind is computed again and replaced
            return None
        return value if self.valid(value) else None

    def put(self, key: str, value) -> bool:
        """Keep ``value`` under ``key`` unless the cache is full or off (or, with ``second_sight``, this is the
        key's first put); whether it was kept. A full or read-only disk stops this store's writes: the values are
        computed all the same."""
        if not self.enabled:
            return False
        path = self.path(key)
        root = DERIVED[self.name][1]()
        if root not in _used:
            _used[root] = folder_size(root)[0]
        if _used[root] >= self.budget:
            return False
        try:
            if self.second_sight:
                seen = path.with_suffix(".seen")
                if not seen.is_file():
                    seen.parent.mkdir(parents=True, exist_ok=True)
                    seen.touch()
                    return False
            with atomic_file(path, durable=False) as f:
                self.codec.write(f, value)
                size = f.tell()
            if _used[root] + size > self.budget:  # the entry that would overflow the budget is not kept
                path.unlink()
                _used[root] = self.budget
                return False
        except OSError:
            self.budget = 0
            return False
        _used[root] += size
        return True
