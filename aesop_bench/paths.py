"""Where things live: data root, caches and the weights store.

* Benchmark data: ``--data-root``, else ``$AESOP_BENCH_DATA``, else
  ``$AESOP_BENCH_HOME/data``.
* ``$AESOP_BENCH_HOME`` (default ``~/.cache/aesop-bench``): the cache root
  holding downloaded weights, cached SR images and other derived files.
* Weights: ``$AESOP_BENCH_WEIGHTS``, else the checkout's ``weights/`` folder when aesop-bench runs from a
  source checkout and ``$AESOP_BENCH_HOME`` is not set, else ``$AESOP_BENCH_HOME/weights``.

The caches' folders (:func:`sr_cache_dir`, :func:`features_dir`, :func:`hr_features_dir`, :func:`hashes_dir`) are
the roots of :data:`aesop_bench.cache.CACHES`, the one table of caches; a cache's folder for a key comes from
:func:`aesop_bench.cache.folder`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import AesopBenchError


def env_path(var: str) -> Path | None:
    """The folder an environment variable names (``~`` and ``~user`` expanded), or None where it is unset or empty;
    a ``~user`` of no known user is refused, naming the variable."""
    raw = os.environ.get(var)
    if not raw:
        return None
    try:
        return Path(raw).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory"
        user = raw.split("/", 1)[0]
        raise AesopBenchError(f"${var}={raw!r}: {user} names no home folder known here (no such user, or $HOME "
                              "unset); give the folder's full path") from None


def home() -> Path:
    """The cache root: ``$AESOP_BENCH_HOME``, else ``$XDG_CACHE_HOME/aesop-bench``, else
    ``~/.cache/aesop-bench``."""
    env = env_path("AESOP_BENCH_HOME")
    if env:
        return env
    xdg = env_path("XDG_CACHE_HOME")
    try:
        base = xdg or Path.home() / ".cache"
    except RuntimeError:  # no $HOME, and the user has no entry in the password database
        raise AesopBenchError("no home folder is known ($HOME is unset): set $AESOP_BENCH_HOME to the folder for "
                              "caches and weights") from None
    return base / "aesop-bench"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """Where benchmark sets live: ``explicit`` (``--data-root``), else ``$AESOP_BENCH_DATA``, else ``home()/data``.

    >>> str(data_root("~/sets")).endswith("/sets")
    True
    """
    if explicit:
        return Path(explicit).expanduser()
    return env_path("AESOP_BENCH_DATA") or home() / "data"


def sr_cache_dir() -> Path:
    """The SR image cache (``home()/sr``)."""
    return home() / "sr"


def checkout_weights() -> Path | None:
    """The ``weights/`` folder of the source checkout aesop-bench runs from (it holds the generated
    ``README.md``), or None for an installed package."""
    repo = Path(__file__).resolve().parents[1]
    folder = repo / "weights"
    return folder if (folder / "README.md").is_file() and (repo / "pyproject.toml").is_file() else None


def weights_dir() -> Path:
    """The weights store: ``$AESOP_BENCH_WEIGHTS``, else a source checkout's ``weights/`` when
    ``$AESOP_BENCH_HOME`` is unset, else ``home()/weights``."""
    env = env_path("AESOP_BENCH_WEIGHTS")
    if env:
        return env
    checkout = None if os.environ.get("AESOP_BENCH_HOME") else checkout_weights()
    return checkout or home() / "weights"


def features_dir() -> Path:
    """The FID/pFID feature cache (``home()/features``)."""
    return home() / "features"


def hr_features_dir() -> Path:
    """The HR-side cache of LPIPS, DISTS and AE-PSNR (``home()/hr_features``)."""
    return home() / "hr_features"


def hashes_dir() -> Path:
    """The memoised sha256 of large files (``home()/hashes``)."""
    return home() / "hashes"


def folder_size(folder: str | os.PathLike) -> tuple[int, int]:
    """Bytes and files under ``folder`` (0, 0 where it does not exist)."""
    total = files = 0
    for dirpath, _, names in os.walk(folder):
        for n in names:
            try:
                total += os.path.getsize(os.path.join(dirpath, n))
                files += 1
            except OSError:  # removed meanwhile
                pass
    return total, files


def installed_version() -> str:
    """The installed package's version (``unknown`` when run from a tree that was not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("aesop-bench")
    except PackageNotFoundError:
        return "unknown"
