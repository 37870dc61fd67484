"""Small file helpers: atomic writes and hashing."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


_HASHES: dict[tuple, str] = {}


def sha256_cached(path: str | os.PathLike, persist: bool = False) -> str:
    """``sha256_file``, memoised by the file's path, size, inode, modification time and status-change time
    (ctime: set by the kernel on every write, rename or chmod, and unlike the modification time never set back
    by a program, so a file rewritten in place is hashed again): in memory (a weights file used by several parts
    of one run is read once) and, with ``persist`` for files over 1 MB, on disk in
    ``$AESOP_BENCH_HOME/hashes/hashes.json`` (a rerun does not read a 60 MB checkpoint again to name its
    version; ``aesop-bench cache clear hashes`` empties it). Verification never uses the on-disk memo."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    digest = _HASHES.get(key)
    if digest is not None:
        return digest
    big = persist and st.st_size > 1 << 20
    if big:
        from .paths import hashes_dir

        store = hashes_dir() / "hashes.json"
        try:
            known = json.loads(store.read_text(encoding="utf-8")) if store.is_file() else {}
        except (OSError, ValueError):  # damaged (JSON or UTF-8): the memo starts again
            known = {}
        if not isinstance(known, dict):
            known = {}
        digest = known.get("|".join(map(str, key)))
        if not isinstance(digest, str):
            digest = None
    if digest is None:
        digest = sha256_file(path)
        if big:
            known["|".join(map(str, key))] = digest
            try:
                atomic_write_json(store, known)
            except OSError:
                pass  # a read-only cache only costs the hashing again
    _HASHES[key] = digest
    return digest


def tensor_key(t) -> str:
    """The sha256 of a tensor's shape and bytes: the key of every content-addressed cache (SR images by their
    LR, features by their image)."""
    h = hashlib.sha256(str(tuple(t.shape)).encode())
    h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def cache_file(root: Path, key: str, suffix: str) -> Path:
    """``root/KE/KEY.suffix``: a content-addressed cache file, fanned out by the key's first two characters."""
    return Path(root) / key[:2] / f"{key}{suffix}"


def remove_stale_temps(folder: Path, patterns=(".*.tmp",), min_age: float = 0.0) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in ``folder`` (``.NAME.XXXX.tmp``), those
    older than ``min_age`` seconds (a writer may still own a younger one in a shared cache)."""
    import time

    gone = []
    now = time.time()
    for pattern in patterns:
        for p in Path(folder).glob(pattern):
            try:
                if now - p.stat().st_mtime >= min_age:
                    p.unlink()
                    gone.append(p)
            except FileNotFoundError:
                pass
    return gone


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike, durable: bool = True):
    """A binary file to write that appears at ``path`` whole when the block ends (readers see the old file or the
    new one, never a part) and is removed if the block fails. ``durable=False`` skips the fsync: for caches,
    whose entries are recomputed when they are lost."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for sharing, like any new file
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """:func:`atomic_write_bytes` of indented JSON with a final newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
