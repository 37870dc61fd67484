"""The verified cache of weight files: checks, downloads, files added by hand, hashes recorded at first use.

Files are cached in :func:`aesop_bench.paths.weights_dir` (a checkout's ``weights/``, else
``$AESOP_BENCH_HOME/weights``). Where no hash is published, the hash of the first complete download (or of
a file added by hand) is recorded in ``recorded.json`` there, and every later use is checked against it; ``forget`` removes a record. A file is recorded only after it loads as what its entry says it is
(``validate``; by default: a readable file of tensors), so a truncated or wrong file never becomes the trusted
one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..download import browsable, fetch_any, forget_hash, record_first_hash, recorded_hashes, refuse_html
from ..errors import AesopBenchError
from ..fileutil import sha256_cached
from ..paths import weights_dir
from .manifest import WeightsEntry, cache_path, entry
from .reader import load_state_dict

Validator = Callable[[Path], None]


def recorded_path() -> Path:
    return weights_dir() / "recorded.json"


def expected_hash(e: WeightsEntry) -> tuple[str | None, str]:
    """The full sha256 a file must have and where it comes from: published, recorded, or none yet."""
    if e.sha256:
        return e.sha256, "published"
    rec = recorded_hashes(recorded_path()).get(e.name)
    if rec:
        return rec, "recorded at first download"
    return None, "unpinned"


def hash_status(e: WeightsEntry) -> str:
    """How an entry's file is verified: a published sha256 (pinned), a published hash prefix (the file-name
    prefix of torchvision and BasicSR), a hash recorded at its first download, or none yet (recorded at the
    first download)."""
    if e.sha256:
        return "pinned"
    if recorded_hashes(recorded_path()).get(e.name):
        return "recorded" + ("+prefix" if e.sha256_prefix else "")
    return "prefix" if e.sha256_prefix else "first-download"


@dataclass
class Check:
    name: str
    status: str  # verified | recorded | unpinned | mismatch | missing
    detail: str = ""
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def check(e: WeightsEntry, path: Path | None = None) -> Check:
    """Whether the file of ``e`` (the cached one, or ``path``) is the one its manifest entry or its record names."""
    path = path or cache_path(e)
    if not path.is_file():
        return Check(e.name, "missing", path=path)
    digest = sha256_cached(path)
    if e.size is not None and path.stat().st_size != e.size:
        return Check(e.name, "mismatch", f"size {path.stat().st_size}, expected {e.size}", path)
    if e.sha256_prefix and not digest.startswith(e.sha256_prefix):
        return Check(e.name, "mismatch", f"sha256 {digest} does not start with {e.sha256_prefix}", path)
    want, source = expected_hash(e)
    if want is None:
        return Check(e.name, "unpinned", f"sha256 {digest}; no published hash", path, {"sha256": digest})
    if digest != want:
        hint = f"; `aesop-bench weights forget {e.name}` if the recorded file was the wrong one" \
            if source != "published" else ""
        return Check(e.name, "mismatch", f"sha256 {digest}, expected {want} ({source}){hint}", path)
    return Check(e.name, "verified" if source == "published" else "recorded", source, path)


def _changed(e: WeightsEntry, c: Check) -> str:
    """Why the cached file of ``e`` is refused (``c``: its mismatch): the file, the sha256 it has against the one
    published or recorded, and what to do."""
    want, source = expected_hash(e)
    if want is None:  # its size or its hash prefix is not the published one
        what = f"is not the {e.name} weights: {c.detail}"
    else:
        known = "published in its manifest entry" if source == "published" else \
            f"recorded at its first download ({recorded_path()})"
        what = f"differs from the {e.name} weights {known}: sha256 {sha256_cached(c.path)}, expected {want}"
    forget = f"; `aesop-bench weights forget {e.name}` if the recorded file was the wrong one" \
        if source.startswith("recorded") else ""
    return (f"{c.path}: the file's content {what}. It was replaced or changed after it was checked: delete it and "
            f"run `aesop-bench weights download {e.name}`, or `aesop-bench weights add {e.name} FILE` with the right "
            f"file{forget}")


def readable_tensors(path: Path) -> None:
    """The default validation: the file is a checkpoint of tensors that loads completely (a MATLAB ``.mat`` file:
    it loads and holds at least one array)."""
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        try:
            data = loadmat(str(path))
        except Exception as exc:  # scipy raises several types for truncated or foreign files
            raise AesopBenchError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
        if not any(not k.startswith("__") for k in data):
            raise AesopBenchError(f"{path}: the MATLAB file holds no arrays")
        return
    sd = load_state_dict(path)
    if not isinstance(sd, dict) or not sd:
        raise AesopBenchError(f"{path}: holds no tensors")


def _validate(e: WeightsEntry, path: Path, validate: Validator | None) -> str | None:
    """None if the file is what ``e`` says it is, else why not."""
    try:
        (validate or readable_tensors)(path)
    except AesopBenchError as exc:
        return str(exc)
    except Exception as exc:  # a truncated or foreign file fails in the reader in many ways
        return f"{path}: cannot be loaded ({type(exc).__name__}: {exc})"
    return None


def download(name: str, log=print, validate: Validator | None = None) -> Path:
    """Fetch a weights file into the cache (resumable, atomic) and verify it."""
    e = entry(name)
    dest = cache_path(e)
    c = check(e)
    if c.status in ("verified", "recorded"):
        return dest
    if c.status == "mismatch":
        raise AesopBenchError(_changed(e, c))
    if not e.urls:
        raise AesopBenchError(f"{name}: no download URL is known. {e.manual}")
    want, _ = expected_hash(e)
    errors = []
    for url in e.urls:
        try:
            digest = fetch_any(url, dest, want, log)
            refuse_html(dest, url, "download it in a browser and use `aesop-bench weights add`")
        except AesopBenchError as exc:
            errors.append(str(exc))
            continue
        c = check(e)
        if c.status == "unpinned":
            why = _validate(e, dest, validate)
            if why:
                c = Check(name, "mismatch", f"not a complete {name} file: {why}")
        if c.status == "mismatch":
            dest.unlink()
            errors.append(f"{url}: {c.detail}")
            continue
        if c.status == "unpinned":
            record_first_hash(recorded_path(), name, digest, log)
        return dest
    raise AesopBenchError(f"{name}: every source failed:\n  " + "\n  ".join(errors) + _add_hint(e))


def _add_hint(e: WeightsEntry) -> str:
    where = ", ".join(browsable(u) for u in e.urls) or e.manual
    return f"\nFetch {e.file} by hand ({where}) and run `aesop-bench weights add {e.name} PATH/TO/{e.file}`."


def add(name: str, file: str | os.PathLike, validate: Validator | None = None) -> Path:
    """Import a file fetched by hand, after checking it against the manifest (and, where no hash is published,
    that it loads as what the entry says it is)."""
    e = entry(name)
    src = Path(file)
    if not src.is_file():
        raise AesopBenchError(f"{src}: no such file")
    c = check(e, src)
    if c.status == "mismatch":
        raise AesopBenchError(f"{src} is not {e.file}: {c.detail}")
    if c.status == "unpinned":
        why = _validate(e, src, validate)
        if why:
            raise AesopBenchError(f"{src} is not a {name} file, so it is not added: {why}")
    dest = cache_path(e)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".adding")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    if c.status == "unpinned":
        record_first_hash(recorded_path(), name, c.extra["sha256"], log=None)
    return dest


def forget(name: str) -> bool:
    """Drop the hash recorded for ``name`` (and the cached file it was recorded for): the next download or
    ``add`` records a new one. True if there was a record."""
    e = entry(name)
    if e.sha256:
        raise AesopBenchError(f"{name}: its sha256 is published, not recorded; there is nothing to forget")
    had = forget_hash(recorded_path(), name)
    cache_path(e).unlink(missing_ok=True)
    return had


def require(name: str, validate: Validator | None = None) -> Path:
    """The cached, verified path of a weights file; never downloads (offline-safe)."""
    e = entry(name)
    c = check(e)
    if c.status == "unpinned":
        why = _validate(e, c.path, validate)
        if why:
            raise AesopBenchError(f"{c.path} is not a {name} file: {why}. Delete it and run `aesop-bench weights "
                                  f"download {name}`")
        record_first_hash(recorded_path(), name, c.extra["sha256"], log=None)
        return c.path
    if c.status in ("verified", "recorded"):
        return c.path
    if c.status == "missing":
        raise AesopBenchError(
            f"weights {name!r} ({e.file}) are not in the cache {weights_dir()}. Run `aesop-bench weights download "
            f"{name}`" + (f" (from {e.urls[0]})" if e.urls else "") + "." + _add_hint(e))
    raise AesopBenchError(_changed(e, c))


def get(name: str, download_missing: bool = True, log=print, validate: Validator | None = None) -> Path:
    """``require``, downloading first when allowed."""
    if check(entry(name)).status == "missing":
        if download_missing:
            return download(name, log=log, validate=validate)
    return require(name, validate)


def digest(name: str, path_ok: bool = False) -> str | None:
    """The sha256 of the file the weights entry ``name`` caches, or (``path_ok``) of the checkpoint file ``name``
    names, taken first as :func:`aesop_bench.models.ae.ae_path` loads it; None where the file is absent or the
    name is no entry. What a metric's version and its caches' folders name weights by; not a verification
    (:func:`check` is), so the hash is memoised on disk and a rerun names a version without reading a large file
    again."""
    if path_ok and os.path.isfile(name):
        path = Path(name)
    else:
        try:
            path = cache_path(entry(name))
        except AesopBenchError:
            return None
    return sha256_cached(path, persist=True) if path.is_file() else None
