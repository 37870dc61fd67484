"""The content-addressed caches, one layer for all: SR images (PNG), the HR side of the full-reference network
metrics (tensors) and FID/pFID features (arrays).

A :class:`Store` keeps values of one cache under a folder whose path names everything that made them (model
identity or metric version, weights hash, torch version and device); an entry's file is named by its key, the
sha256 of the input it was computed from (:func:`aesop_bench.fileutil.tensor_key`), fanned out by the key's first
two characters. Entries are written atomically without fsync (a lost entry is computed again; a killed write
leaves a temporary file that is swept later) and read back, or None where absent or damaged (then computed
again). The metrics' math knows nothing of this: the code around it asks a store.

Every entry checks itself: its file is the value as its codec writes it (a PNG, ``torch.save``, ``np.save``),
then a trailer of :data:`MAGIC` and the sha256 of the key and those bytes. A read hashes the file before
decoding it: an entry whose bytes differ by one bit (a disk that rots, a copy cut short, an entry moved to another
key) reads as absent, is deleted and is computed again. Hashing costs about 25 ms per 33 MB (the AE(HR) of a
2040x1356 image; sha256 runs at 1.1-1.4 GB/s on a CPU with SHA extensions), where computing it takes two
minutes on two CPU cores.
Entries of the earlier format (no trailer) are named ``KEY.png``, and are never read: entries are now
``KEY.v2.png`` (:data:`FORMAT`), and an earlier entry is deleted when its key is written again.

One table, :data:`CACHES`, names every cache: what it holds, its folder and its size budget in GB (from its
environment variable; 0 turns it off). A cache's folder for a key's parts comes from :func:`folder` (each part
made a safe folder name by :func:`safe_name`; the machine's part by :func:`device_tag`). A full cache writes no
new entries and keeps what it has: the entries kept stay useful to every later model, where evicting the oldest
would make a model-by-model sweep miss every time. ``aesop-bench cache`` shows each one's size and budget, and
``aesop-bench cache clear NAME`` evicts it (every cache holds what is computed again when missing). Torch-free
until a tensor is read or written or a device named.

Length: the caches' namespace (table, folder names) sits beside the store that writes in it.

>>> import tempfile
>>> store = Store("features", Path(tempfile.mkdtemp()) / "demo", ARRAY)
>>> import numpy as np
>>> key = "ab" * 32
>>> store.get(key) is None, store.put(key, np.zeros((1, 4))), store.get(key).shape
(True, True, (1, 4))
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError
from .fileutil import atomic_file, cache_file
from .paths import features_dir, folder_size, hashes_dir, hr_features_dir, sr_cache_dir


@dataclass(frozen=True)
class Cache:
    """One cache: its name, what it holds (and by what key), its folder, and its size budget: an environment
    variable and a default in GB (``budget_env`` None: not a :class:`Store`, no budget)."""

    name: str
    holds: str
    root: Callable[[], Path]
    budget_env: str | None = None
    budget_gb: float = 0.0


CACHES: dict[str, Cache] = {c.name: c for c in [
    Cache("sr", "SR images, by model identity and LR", sr_cache_dir, "AESOP_BENCH_SR_CACHE_GB", 50.0),
    Cache("features", "FID/pFID Inception features, by image", features_dir, "AESOP_BENCH_FEATURES_CACHE_GB", 10.0),
    Cache("hr_features", "the HR side of LPIPS, DISTS and AE-PSNR, by HR image", hr_features_dir,
          "AESOP_BENCH_HR_CACHE_GB", 20.0),
    Cache("hashes", "sha256 of large files, by path, size, inode and change times", hashes_dir),
]}
# the caches with a budget: name -> (environment variable, default GB)
BUDGETS = {c.name: (c.budget_env, c.budget_gb) for c in CACHES.values() if c.budget_env}
MAX_GB = "1e9"  # the largest budget taken, in GB: no disk holds it, so it means "no limit"
_used: dict[Path, int] = {}  # bytes under each cache's folder, counted once per process and kept up to date

FORMAT = "v2"  # in every entry's file name: entries of another format are never read
MAGIC = b"\x89aesop2\n"  # opens an entry's trailer; the sha256 of the key and the value's bytes follows it
TRAILER = len(MAGIC) + hashlib.sha256().digest_size


@dataclass(frozen=True)
class Codec:
    """How values of one type are files: ``write(file, value)`` (a file that has ``write`` and ``flush`` only) and
    ``read(path) -> value`` (raising on a damaged file; it reads the value's bytes and stops before the trailer
    that follows them)."""

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

    # mapped, not copied: the pages the digest was just checked on are shared with the page cache
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


class Tag(str):
    """A folder name that :func:`device_tag` made, which :func:`folder` keeps as it is."""


def safe_name(part: str) -> str:
    """``part`` as one folder name: letters, digits, ``-``, ``_`` and ``.`` kept, any other character ``_``.

    >>> safe_name("rrdb[num_feat=64]-x4-0123"), safe_name("ae_psnr-ae=aesop_ae:0123")
    ('rrdb_num_feat_64_-x4-0123', 'ae_psnr-ae_aesop_ae_0123')
    """
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in part)


def device_tag(dev, threads: bool = False) -> Tag:
    """What of the machine can change a network's float32 output: torch's version and the device model; with
    ``threads``, on the CPU also torch's thread count (for a network not known to give the same outputs at any)."""
    import torch

    dev = torch.device(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    tag = f"torch{torch.__version__}-{name}".replace(" ", "_").replace("/", "_")
    return Tag(tag + (f"-t{torch.get_num_threads()}" if threads and dev.type == "cpu" else ""))


def folder(name: str, *parts: str) -> Path:
    """The folder of the cache ``name`` (a key of :data:`CACHES`) for a key's parts, one folder each, under the
    cache's root: every part made a folder name by :func:`safe_name`, a :func:`device_tag` kept as it is.

    >>> folder("sr", "rrdb[]-x4-0123", "x4").relative_to(CACHES["sr"].root()).as_posix()
    'rrdb__-x4-0123/x4'
    """
    if name not in CACHES:
        raise ConfigError(f"cache {name!r} unknown; one of {', '.join(CACHES)}")
    return CACHES[name].root().joinpath(*(p if isinstance(p, Tag) else safe_name(p) for p in parts))


def budget_bytes(name: str) -> int:
    """The size budget of a cache (a key of :data:`BUDGETS`) in bytes, from its environment variable (GB; 0: off).
    A value that is not a number from 0 to :data:`MAX_GB` (``-1``, ``nan``, ``inf``, ``1e400``) is refused, naming
    the variable."""
    env, default = BUDGETS[name]
    raw = os.environ.get(env, "").strip()
    try:
        gb = float(raw) if raw else default
    except ValueError:
        gb = math.nan
    if not 0.0 <= gb <= float(MAX_GB):  # also false for nan
        raise ConfigError(f"${env}={raw!r}: give the {name} cache's size in GB, a number from 0 (off) to "
                              f"{MAX_GB} (no limit)")
    return int(gb * 1e9)


def check_budgets() -> None:
    """Refuse a budget variable that is not a size (:func:`budget_bytes`), before a command does any work."""
    for name in BUDGETS:
        budget_bytes(name)


class _Digesting:
    """A file that passes what is written on and hashes it, after the entry's key: the trailer's digest."""

    def __init__(self, f, key: str):
        self.f, self.hash = f, hashlib.sha256(key.encode())

    def write(self, data) -> int:
        self.hash.update(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def trailer(self) -> bytes:
        return MAGIC + self.hash.digest()


def _intact(path: Path, key: str, chunk: int = 1 << 20) -> bool:
    """Whether the entry file ``path`` ends with the trailer of ``key`` and of the bytes before it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size - TRAILER
        if size < 0:
            return False
        f.seek(size)
        tail = f.read(TRAILER)
        if not tail.startswith(MAGIC):
            return False
        f.seek(0)
        digest = hashlib.sha256(key.encode())
        while size > 0:
            block = f.read(min(chunk, size))
            if not block:  # cut short meanwhile
                return False
            digest.update(block)
            size -= len(block)
    return digest.digest() == tail[len(MAGIC):]


class Store:
    """Values of the cache ``name`` (a key of :data:`BUDGETS`) under ``folder``, in ``codec``; see the module
    docstring. ``valid(value)``: a check of what is read back (a value failing it is computed again).

    ``write_on_second_put``: an entry is written the second time its key is put, not the first (the first leaves an
    empty marker): for values that are large to write and quick to compute, a run that sees an input once (one
    model) pays nothing for the cache, and the runs after it read what the second one wrote."""

    def __init__(self, name: str, folder: Path, codec: Codec, valid: Callable[[Any], bool] | None = None,
                 write_on_second_put: bool = False):
        if name not in BUDGETS:
            raise ConfigError(f"cache {name!r} unknown or without a budget; one of {', '.join(BUDGETS)}")
        self.name, self.folder, self.codec = name, Path(folder), codec
        self.valid = valid or (lambda value: True)
        self.write_on_second_put = write_on_second_put
        self.budget = budget_bytes(name)

    @property
    def enabled(self) -> bool:
        """Whether the cache is on (a budget above 0, and no failed write)."""
        return self.budget > 0

    @property
    def full(self) -> bool:
        """Whether the cache is on and has no room left in its budget: :meth:`put` keeps no new entry."""
        return self.enabled and _used.get(self._root(), 0) >= self.budget

    def path(self, key: str) -> Path:
        """The file of ``key``'s entry."""
        return cache_file(self.folder, key, f".{FORMAT}{self.codec.suffix}")

    def get(self, key: str):
        """The value kept under ``key``, or None (absent, damaged, or the cache turned off). A damaged entry is
        deleted."""
        path = self.path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            # the codecs read a value's own bytes and stop before the trailer
            value = self.codec.read(path) if _intact(path, key) else None
        except Exception:  # noqa: BLE001 - a damaged entry of any kind is computed again and replaced
            value = None
        if value is not None and self.valid(value):
            return value
        self._remove(path)
        return None

    def put(self, key: str, value) -> bool:
        """Keep ``value`` under ``key`` unless the cache is full or off (or, with ``write_on_second_put``, this is the
        key's first put); whether it was kept. A full or read-only disk stops this store's writes: the values are
        computed all the same."""
        if not self.enabled:
            return False
        path = self.path(key)
        root = self._root()
        self._remove(cache_file(self.folder, key, self.codec.suffix))  # the key's entry of the earlier format
        if _used[root] >= self.budget:
            return False
        try:
            if self.write_on_second_put:
                seen = path.with_suffix(".seen")
                if not seen.is_file():
                    seen.parent.mkdir(parents=True, exist_ok=True)
                    seen.touch()
                    return False
            with atomic_file(path, durable=False) as f:
                out = _Digesting(f, key)
                self.codec.write(out, value)
                f.write(out.trailer())
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

    def _root(self) -> Path:
        """The folder of this kind of cache, its bytes counted in :data:`_used`."""
        root = CACHES[self.name].root()
        if root not in _used:
            _used[root] = folder_size(root)[0]
        return root

    def _remove(self, path: Path) -> None:
        """Delete an entry that is not to be read (damaged, or of the earlier format), where it exists."""
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:  # absent, or a read-only cache: it stays unread
            return
        root = self._root()
        _used[root] = max(0, _used[root] - size)
