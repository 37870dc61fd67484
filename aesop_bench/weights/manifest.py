"""The manifest of weight files: one entry per file (name, file name, URLs, sha256 or the hash prefix that
torchvision and BasicSR put in file names, size, licence, users).

The shipped manifest is ``aesop_bench/weights/manifest.json``. ``$AESOP_BENCH_WEIGHTS_MANIFEST`` names an
extra manifest whose entries are added (or replace same-named ones): private checkpoints, mirrors, test
stand-ins. An entry's file name is a plain name inside the cache, never a path.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import AesopBenchError
from ..paths import weights_dir


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file: its name, file name in the store, URLs, sha256 (or none published), licence and users."""

    name: str
    file: str
    urls: tuple[str, ...]
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    licence: str = ""
    used_by: tuple[str, ...] = ()
    manual: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> "WeightsEntry":
        """An entry from a manifest's JSON object; a field of the wrong type, a sha256 that is not 64 hex digits or
        a file name that is not a bare name is refused."""
        _check_fields(d)
        f = str(d.get("file", ""))
        if not f or f != Path(f).name or f in (".", "..") or "\\" in f:
            raise AesopBenchError(f"weights entry {d.get('name')!r}: file {f!r} must be a plain file name (it is "
                                  "stored in the weights cache; no folders, no absolute paths)")
        if f.lower() in RESERVED or f.startswith(".") or f.endswith(".tmp"):
            raise AesopBenchError(f"weights entry {d.get('name')!r}: file {f!r} is a name the weights cache keeps "
                                  f"for itself ({', '.join(sorted(RESERVED))}, hidden and .tmp files); name the "
                                  "weight file after what it holds")
        return cls(name=d["name"], file=d["file"], urls=tuple(d.get("urls", ())), sha256=d.get("sha256"),
                   sha256_prefix=d.get("sha256_prefix"), size=d.get("size"), licence=d.get("licence", ""),
                   used_by=tuple(d.get("used_by", ())), manual=d.get("manual", ""))


def _hex(value, length: int | None = None) -> bool:
    return isinstance(value, str) and bool(value) and len(value) == (length or len(value)) \
        and all(c in "0123456789abcdef" for c in value)


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# an entry's fields -> (the check of a value, what to write); name and file are required, the others optional
_FIELDS = {"name": (lambda v: isinstance(v, str) and bool(v), "a name"),
           "file": (lambda v: isinstance(v, str) and bool(v), "a file name"),
           "urls": (_strings, "a list of URLs"),
           "sha256": (lambda v: v is None or _hex(v, 64), "64 lowercase hex digits, or null"),
           "sha256_prefix": (lambda v: v is None or _hex(v), "lowercase hex digits, or null"),
           "size": (lambda v: v is None or type(v) is int and v >= 0, "a number of bytes, or null"),
           "licence": (lambda v: isinstance(v, str), "a string"), "manual": (lambda v: isinstance(v, str), "a string"),
           "used_by": (_strings, "a list of strings")}


def _check_fields(d) -> None:
    """Refuse a manifest entry that is not a JSON object of :data:`_FIELDS`, naming the entry and the field."""
    if not isinstance(d, dict):
        raise AesopBenchError(f"weights entry {d!r}: give a JSON object with \"name\" and \"file\"")
    for key, (ok, what) in _FIELDS.items():
        if (key in d or key in ("name", "file")) and not ok(d.get(key)):
            raise AesopBenchError(f"weights entry {d.get('name')!r}: {key} {d.get(key)!r} is not {what}")


RESERVED = {"recorded.json", ".lock"}  # the cache's own files


def _unique_files(entries: dict[str, "WeightsEntry"], source: str) -> None:
    owner: dict[str, str] = {}
    for e in entries.values():
        other = owner.setdefault(e.file.lower(), e.name)
        if other != e.name:
            raise AesopBenchError(f"{source}: weights entries {other!r} and {e.name!r} share the file {e.file!r}; "
                                  "each entry needs a file of its own in the weights cache")


@lru_cache(maxsize=1)
def shipped() -> dict[str, WeightsEntry]:
    """The entries packaged with aesop-bench, without the extra manifest: what is published."""
    return {e["name"]: WeightsEntry.from_dict(e)
            for e in json.loads(resources.files(__package__).joinpath("manifest.json").read_text())["entries"]}


def is_published(name: str, digest: str) -> bool:
    """Whether a file of sha256 ``digest`` is the published file of the packaged entry ``name``."""
    e = shipped().get(name)
    if e is None:
        return False
    return digest == e.sha256 if e.sha256 else bool(e.sha256_prefix and digest.startswith(e.sha256_prefix))


@lru_cache(maxsize=8)
def _manifest(extra: str | None, stamp: tuple = ()) -> dict[str, WeightsEntry]:
    shipped = resources.files(__package__).joinpath("manifest.json").read_text()
    entries = {e["name"]: WeightsEntry.from_dict(e) for e in json.loads(shipped)["entries"]}
    if extra:
        try:
            data = json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
            raise AesopBenchError(f"AESOP_BENCH_WEIGHTS_MANIFEST={extra}: cannot read it ({exc})") from None
        listed = data.get("entries", []) if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise AesopBenchError(f"AESOP_BENCH_WEIGHTS_MANIFEST={extra}: expected a JSON object "
                                  '{"entries": [{"name": ..., "file": ..., "urls": [...], "sha256": ...}, ...]}')
        for e in listed:
            try:
                entries[e["name"]] = WeightsEntry.from_dict(e)
            except AesopBenchError as exc:
                raise AesopBenchError(f"AESOP_BENCH_WEIGHTS_MANIFEST={extra}: {exc}") from None
        _unique_files(entries, f"AESOP_BENCH_WEIGHTS_MANIFEST={extra}")
    return entries


def manifest() -> dict[str, WeightsEntry]:
    """Every entry by name: the packaged manifest, with ``$AESOP_BENCH_WEIGHTS_MANIFEST``'s entries over it."""
    extra = os.environ.get("AESOP_BENCH_WEIGHTS_MANIFEST")
    stamp = ()
    if extra and os.path.isfile(extra):
        st = os.stat(extra)
        stamp = (st.st_mtime_ns, st.st_size)
    return _manifest(extra, stamp)


def entry(name: str) -> WeightsEntry:
    """The manifest entry ``name``; an unknown name is an error pointing to `aesop-bench weights list`."""
    try:
        return manifest()[name]
    except KeyError:
        raise AesopBenchError(f"no weights entry {name!r}; `aesop-bench weights list` shows the known ones") from None


def cache_path(e: WeightsEntry) -> Path:
    """Where the entry's file lives in the weights store (present or not)."""
    return weights_dir() / e.file


def readme() -> str:
    """The checkout's ``weights/README.md``: every shipped entry with its source, licence and hash status, from the
    manifest (a test keeps the file equal to it)."""
    from ..download import browsable

    def status(e: WeightsEntry) -> str:
        if e.sha256:
            return f"pinned sha256 `{e.sha256[:16]}...`"
        if e.sha256_prefix:
            return f"published sha256 prefix `{e.sha256_prefix}` (file name)"
        return "none published: recorded at the first download"

    lines = ["# Weights", "",
             "The weight files aesop-bench downloads, from its manifest (`aesop_bench/weights/manifest.json`). Files "
             "are downloaded on first use into this folder when aesop-bench runs from a checkout (else into "
             "`$AESOP_BENCH_HOME/weights`; `$AESOP_BENCH_WEIGHTS` names another folder), by `aesop-bench weights "
             "download NAME` or the command that needs them, verified against the hash below, and never committed "
             "(`.gitignore`); `aesop-bench weights list` shows which are present. This file is generated from the manifest: `python -c \"from aesop_bench.weights.manifest "
             "import readme; print(readme(), end='')\" > weights/README.md`.", "",
             "| name | file | source | licence | hash | used by |", "|---|---|---|---|---|---|"]
    for e in shipped().values():
        source = ", ".join(browsable(u) for u in e.urls) or f"by hand: {e.manual}"
        lines.append(f"| {e.name} | `{e.file}` | {source} | {e.licence} | {status(e)} | {', '.join(e.used_by)} |")
    return "\n".join(lines) + "\n"
