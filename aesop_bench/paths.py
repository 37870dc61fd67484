"""Where things live: data root, caches and the weights store.

* Benchmark data: ``--data-root``, else ``$AESOP_BENCH_DATA``, else
  ``$AESOP_BENCH_HOME/data``.
* ``$AESOP_BENCH_HOME`` (default ``~/.cache/aesop-bench``): the cache root
  holding downloaded weights, cached SR images and other derived files.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("AESOP_BENCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "aesop-bench"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("AESOP_BENCH_DATA")
    if env:
        return Path(env).expanduser()
    return home() / "data"


def sr_cache_dir() -> Path:
    return home() / "sr"


def weights_dir() -> Path:
    return home() / "weights"
