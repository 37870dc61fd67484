"""Pinned, verified, resumable downloads and safe archive extraction.

``fetch(url, dest, sha256)``:

* a finished file already at ``dest`` with the right hash is kept as is;
* bytes arrive in ``dest + '.part'``; an interrupted download resumes from
  there with an HTTP ``Range`` request (a server that ignores it restarts
  the file);
* the hash is checked before ``dest`` appears (``os.replace``: atomic), so a
  file at ``dest`` is always complete and verified;
* ``http(s)://`` and ``file://`` URLs are accepted.

``$AESOP_BENCH_GITHUB_RAW`` replaces ``https://raw.githubusercontent.com``
(a mirror, or a local server in tests).

Besides ``http(s)://`` and ``file://``, ``gdrive://FILE_ID`` (a Google Drive file) and
``gdrive-folder://FOLDER_ID/[SUB/]FILE`` (a file of a public Drive folder, found by name) are fetched with gdown
(:func:`fetch_any`); with a mirror of Drive's URLs, :func:`http_url` turns them into URLs of the mirror. ``$AESOP_BENCH_GDRIVE_LIST`` and
``$AESOP_BENCH_GDRIVE_FILE`` replace the two Drive URL templates (``{id}`` stands for the folder or file ID),
e.g. for a mirror.

Files with no published hash are trusted on first download: :func:`record_first_hash` keeps the hash of the
first complete download in a JSON record, and later downloads must match it.

Length: every transport (HTTP with resume, file URLs, GitHub raw files, Google Drive through gdown) ends in one
verify-and-extract path.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from .errors import AesopBenchError
from .fileutil import atomic_write_json, sha256_file

GITHUB_RAW = "https://raw.githubusercontent.com"
USER_AGENT = "aesop-bench (+https://pypi.org/project/aesop-bench)"
GDRIVE = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
GDRIVE_LIST = "https://drive.google.com/embeddedfolderview?id={id}"


def _template(var: str, default: str, drive_id: str) -> str:
    """A Drive URL from ``$var`` (a mirror's template) or ``default``: ``{id}`` replaced by ``drive_id``."""
    raw = os.environ.get(var, default)
    try:
        return raw.format(id=drive_id)
    except (IndexError, KeyError, ValueError):
        raise AesopBenchError(f"${var}={raw!r}: give a URL with {{id}} where the Drive id goes, and no other braces") \
            from None


def github_raw_url(repo: str, commit: str, path: str) -> str:
    base = os.environ.get("AESOP_BENCH_GITHUB_RAW", GITHUB_RAW).rstrip("/")
    return f"{base}/{repo}/{commit}/{path}"


def _open(url: str, offset: int, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset and not url.startswith("file:"):
        req.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(req, timeout=timeout)


def read_text(url: str, timeout: float = 60.0, limit: int = 4 << 20) -> str:
    """A (small) web page or listing as text."""
    try:
        with _open(url, 0, timeout) as r:
            return r.read(limit).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise AesopBenchError(f"cannot read {url} ({getattr(exc, 'reason', exc)}). Check the network.") from None


def _stream(url: str, part: Path, timeout: float, progress) -> None:
    offset = part.stat().st_size if part.exists() else 0
    with _open(url, offset, timeout) as resp:
        status = getattr(resp, "status", None) or resp.getcode() or 200
        if offset and status != 206:
            offset = 0  # the server sent the whole file: start again
        total = resp.headers.get("Content-Length")
        total = int(total) + offset if total and total.isdigit() else None
        mode = "ab" if offset else "wb"
        with open(part, mode) as f:
            done = offset
            while True:
                block = resp.read(1 << 16)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
            f.flush()
            os.fsync(f.fileno())
    if total is not None and part.stat().st_size != total:
        raise OSError(f"connection closed after {part.stat().st_size} of {total} bytes")


def fetch(url: str, dest: str | os.PathLike, sha256: str | None = None, *, retries: int = 3,
          timeout: float = 60.0, progress=None) -> str:
    """Download ``url`` to ``dest`` and return the file's sha256.

    With ``sha256`` given, a mismatch deletes the partial file and raises an
    error naming the URL and both hashes; without it the caller decides what
    to do with the returned hash (record it, say it was unpinned).
    """
    dest = Path(dest)
    if dest.exists() and sha256 and sha256_file(dest) == sha256:
        return sha256
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries):
        try:
            _stream(url, part, timeout, progress)
            last_error = None
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and part.exists():  # range past the end: the part is complete
                last_error = None
                break
            last_error = exc
            if 400 <= exc.code < 500:
                break
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            last_error = exc
        time.sleep(min(2 ** attempt, 5) * 0.2)
    if last_error is not None:
        raise AesopBenchError(
            f"download failed: {url} -> {dest} ({last_error}). Check the network and run the command again: "
            f"it resumes from {part.name}. Or fetch the file by hand and place it at {dest}."
        )
    got = sha256_file(part)
    if sha256 and got != sha256:
        part.unlink(missing_ok=True)
        raise AesopBenchError(
            f"sha256 mismatch for {url}: expected {sha256}, got {got}. The partial file was deleted; "
            "the source may have changed or the transfer was corrupted. Run the command again, or use a mirror."
        )
    os.replace(part, dest)
    return got


def folder_md5(folder: str | os.PathLike) -> str:
    """deepinv's ``calculate_md5_for_folder``: the MD5 of the concatenated hex MD5s of the folder's files in name
    order (the MD5 of nothing when the folder holds anything but files), the checksum deepinv publishes for
    DIV2K and LSDIR."""
    import hashlib

    folder = Path(folder)
    h = hashlib.md5()
    entries = sorted(os.listdir(folder)) if folder.is_dir() else []
    if entries and all((folder / e).is_file() for e in entries):
        for e in entries:
            m = hashlib.md5()
            with open(folder / e, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    m.update(block)
            h.update(m.hexdigest().encode())
    return h.hexdigest()


class ProgressBar:
    """A download's progress (bytes, size, rate) on stderr, for :func:`fetch`'s ``progress``."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar = desc, enabled, None

    def __call__(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            import sys

            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=0, desc=self.desc, unit="B", unit_scale=True, unit_divisor=1024,
                            file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _safe_target(root: Path, name: str) -> Path:
    target = (root / name).resolve()
    root_resolved = root.resolve()
    if target != root_resolved and root_resolved not in target.parents:
        raise AesopBenchError(f"archive member {name!r} would be written outside {root}; refusing to extract it")
    return target


def extract(archive: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract a zip or tar archive into ``dest``, refusing members that escape it and links."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                target = _safe_target(dest, info.filename)
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise AesopBenchError(f"{archive}: member {info.filename!r} is a symbolic link; refusing it")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                written.append(target)
        return written
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                target = _safe_target(dest, member.name)
                if member.issym() or member.islnk() or member.isdev():
                    raise AesopBenchError(f"{archive}: member {member.name!r} is a link or device; refusing it")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(member)
                if src is None:
                    continue
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                written.append(target)
        return written
    raise AesopBenchError(f"{archive}: not a zip or tar archive")


def recorded_hashes(record: Path) -> dict[str, str]:
    """The hashes recorded at first download in ``record`` (a JSON object ``{key: sha256}``)."""
    try:
        known = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        if not isinstance(known, dict) or not all(isinstance(v, str) for v in known.values()):
            raise ValueError("not a JSON object of hashes")
        return known
    except (OSError, ValueError) as exc:  # ValueError: JSON and UTF-8 errors
        raise AesopBenchError(f"{record}: cannot read the recorded hashes ({exc}); delete the file to record them "
                              "again at the next download") from None


def record_first_hash(record: Path, key: str, digest: str, log=print) -> None:
    """Record ``digest`` as the hash of ``key`` (a URL or a weights name) where none is published: the first
    download is trusted, and a later one that differs is refused with the way out."""
    known = recorded_hashes(record)
    if known.get(key) == digest:
        return
    if key in known:
        raise AesopBenchError(
            f"{key}: sha256 {digest} differs from the one recorded at its first download ({known[key]}) in "
            f"{record}. If the change is expected (a new upstream file), forget the record and download again.")
    known[key] = digest
    atomic_write_json(record, known)
    if log is not None:
        log(f"note: no sha256 is published for {key}; recorded {digest} in {record}")


def forget_hash(record: Path, key: str) -> bool:
    """Remove the recorded hash of ``key``; True if there was one."""
    known = recorded_hashes(record)
    if key not in known:
        return False
    del known[key]
    atomic_write_json(record, known)
    return True


_FLIP_ENTRY = re.compile(r'<div class="flip-entry" id="entry-([A-Za-z0-9_-]+)"[\s\S]*?<a href="([^"]*)"'
                         r'[\s\S]*?class="flip-entry-title">([^<]*)<')


def gdrive_folder_entries(folder_id: str) -> list[tuple[str, str, bool]]:
    """``(id, name, is_folder)`` of each item of a public Google Drive folder, from its embedded folder view."""
    url = _template("AESOP_BENCH_GDRIVE_LIST", GDRIVE_LIST, folder_id)
    page = read_text(url)
    return [(i, html.unescape(name).strip(), "/folders/" in href) for i, href, name in _FLIP_ENTRY.findall(page)]


def resolve_gdrive_folder(url: str, max_depth: int = 3) -> str:
    """``gdrive-folder://FOLDER_ID/[SUB/...]FILE`` -> ``gdrive://FILE_ID``.

    The authors of AESOP, LDL and SPSR publish folders, not file links. The named subfolders are followed;
    the file is then looked for in that folder and, breadth-first, in its subfolders (``max_depth`` levels)."""
    folder, *path = url[len("gdrive-folder://"):].strip("/").split("/")
    if not folder or not path:
        raise AesopBenchError(f"{url}: expected gdrive-folder://FOLDER_ID/FILE_NAME")
    *subdirs, name = path
    for sub in subdirs:
        match = [i for i, n, is_dir in gdrive_folder_entries(folder) if is_dir and n == sub]
        if not match:
            raise AesopBenchError(f"{url}: no folder {sub!r} in Google Drive folder {folder}")
        folder = match[0]
    level, seen = [folder], set()
    for _ in range(max_depth + 1):
        below = []
        for f in level:
            if f in seen:
                continue
            seen.add(f)
            items = gdrive_folder_entries(f)
            hit = [i for i, n, is_dir in items if not is_dir and n == name]
            if hit:
                return f"gdrive://{hit[0]}"
            below += [i for i, _, is_dir in items if is_dir]
        level = below
    raise AesopBenchError(f"{url}: {name} is not in the Google Drive folder (or its subfolders); the folder may "
                          "have changed: fetch the file by hand")


def http_url(url: str) -> str:
    """The URL to fetch for ``url``: Google Drive forms resolved, others as they are."""
    if url.startswith("gdrive-folder://"):
        url = resolve_gdrive_folder(url)
    if url.startswith("gdrive://"):
        return _template("AESOP_BENCH_GDRIVE_FILE", GDRIVE, url[len("gdrive://"):])
    return url


def _mirrored() -> bool:
    """Whether the Drive URL templates are replaced (a mirror, or a local server in tests)."""
    return bool(os.environ.get("AESOP_BENCH_GDRIVE_LIST") or os.environ.get("AESOP_BENCH_GDRIVE_FILE"))


def fetch_any(url: str, dest: str | os.PathLike, sha256: str | None = None, log=print) -> str:
    """:func:`fetch` for every URL form: Google Drive files and folder entries go through gdown (it follows Drive's
    pages and confirmation steps as they change), the others through :func:`fetch`. The hand-written Drive
    listing above is used only where gdown cannot go: a mirror of Drive's URLs ($AESOP_BENCH_GDRIVE_LIST /
    $AESOP_BENCH_GDRIVE_FILE), since gdown has no setting for another host."""
    if url.startswith(("gdrive://", "gdrive-folder://")) and not _mirrored():
        return _gdown_fetch(url, Path(dest), sha256, log)
    return fetch(http_url(url), dest, sha256)


def _gdown_fetch(url: str, dest: Path, sha256: str | None, log) -> str:
    try:
        import gdown
    except ImportError:
        raise AesopBenchError("gdown is needed for Google Drive downloads: pip install 'gdown>=6'") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        if url.startswith("gdrive-folder://"):
            folder, *path = url[len("gdrive-folder://"):].strip("/").split("/")
            *subdirs, name = path
            listing = gdown.download_folder(id=folder, output=str(dest.parent / ".listing"), quiet=True,
                                            skip_download=True) or []
            hits = [f for f in listing if Path(f.path).name == name
                    and tuple(Path(f.path).parts[:-1][-len(subdirs):] if subdirs else ()) == tuple(subdirs)]
            if not hits:
                raise AesopBenchError(f"{url}: {name} is not in the Google Drive folder (or its subfolders); the "
                                      "folder may have changed: fetch the file by hand")
            file_id = hits[0].id
        else:
            file_id = url[len("gdrive://"):]
        if gdown.download(id=file_id, output=str(part), quiet=log is None, resume=True) is None:
            raise OSError("gdown returned nothing")
    except AesopBenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - gdown raises its own and requests' errors
        raise AesopBenchError(f"download failed: {browsable(url)} -> {dest} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}). Check the network and run the "
                              "command again: it resumes") from None
    got = sha256_file(part)
    if sha256 and got != sha256:
        part.unlink(missing_ok=True)
        raise AesopBenchError(f"sha256 mismatch for {browsable(url)}: expected {sha256}, got {got}. The partial file "
                              "was deleted; the source may have changed. Run the command again, or use a mirror.")
    os.replace(part, dest)
    return got


def browsable(url: str) -> str:
    """A URL a person can open in a browser."""
    if url.startswith("gdrive-folder://"):
        return "https://drive.google.com/drive/folders/" + url[len("gdrive-folder://"):].split("/")[0]
    if url.startswith("gdrive://"):
        return f"https://drive.google.com/file/d/{url[len('gdrive://'):]}/view"
    return url


def refuse_html(path: Path, url: str, hint: str = "") -> None:
    """Delete ``path`` and refuse it if the server sent a web page instead of the file."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        path.unlink()
        raise AesopBenchError(f"{url} returned a web page, not the file (a download quota or a changed link)" +
                              (f"; {hint}" if hint else ""))
