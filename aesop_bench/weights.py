"""The weights manager: a manifest of every weight file, a verified cache, safe loading.

The manifest (``weights/manifest.json`` in the source tree, installed as
package data) has one entry per file: name, file name, URLs, sha256 (or the
hash prefix that torchvision and BasicSR put in file names), size, licence
and users. ``$AESOP_BENCH_WEIGHTS_MANIFEST`` names an extra manifest whose
entries are added (or replace same-named ones): private checkpoints, mirrors,
test stand-ins.

Files are cached in ``$AESOP_BENCH_HOME/weights``. Where no hash is
published, the hash of the first download is recorded in ``recorded.json``
there and every later use is checked against it; the listing says so.

URLs may be ``https://``, ``file://``, ``gdrive://FILE_ID`` (Google Drive,
including the confirmation step of large files) or
``gdrive-folder://FOLDER_ID/[SUB/]FILE`` (a file of a public Drive folder,
found by name in the folder's embedded listing). ``$AESOP_BENCH_GDRIVE_LIST``
and ``$AESOP_BENCH_GDRIVE_FILE`` replace the two Drive URL templates
(``{id}`` stands for the folder or file ID), e.g. for a mirror.

Loading never unpickles code: ``.safetensors`` files are read with
safetensors, TorchScript archives by a loader that knows only tensors,
anything else with ``torch.load(weights_only=True)``; a file that needs
pickled objects is refused with an explanation.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .data.download import fetch, read_text
from .errors import AesopBenchError
from .fileutil import atomic_write_json, sha256_file
from .paths import weights_dir

GDRIVE = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
GDRIVE_LIST = "https://drive.google.com/embeddedfolderview?id={id}"


@dataclass(frozen=True)
class WeightsEntry:
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
        f = str(d.get("file", ""))
        if not f or f != Path(f).name or f in (".", "..") or "\\" in f:
            raise AesopBenchError(f"weights entry {d.get('name')!r}: file {f!r} must be a plain file name (it is "
                                  "stored in the weights cache; no folders, no absolute paths)")
        return cls(name=d["name"], file=d["file"], urls=tuple(d.get("urls", ())), sha256=d.get("sha256"),
                   sha256_prefix=d.get("sha256_prefix"), size=d.get("size"), licence=d.get("licence", ""),
                   used_by=tuple(d.get("used_by", ())), manual=d.get("manual", ""))


def _read_manifest_text() -> str:
    src = Path(__file__).resolve().parents[1] / "weights" / "manifest.json"
    if src.is_file():  # a source checkout or editable install
        return src.read_text()
    return resources.files("aesop_bench").joinpath("weights_manifest.json").read_text()


@lru_cache(maxsize=8)
def _manifest(extra: str | None, stamp: tuple = ()) -> dict[str, WeightsEntry]:
    entries = {e["name"]: WeightsEntry.from_dict(e) for e in json.loads(_read_manifest_text())["entries"]}
    if extra:
        try:
            data = json.loads(Path(extra).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AesopBenchError(f"AESOP_BENCH_WEIGHTS_MANIFEST={extra}: cannot read it ({exc})") from None
        for e in data.get("entries", []):
            entries[e["name"]] = WeightsEntry.from_dict(e)
    return entries


def manifest() -> dict[str, WeightsEntry]:
    extra = os.environ.get("AESOP_BENCH_WEIGHTS_MANIFEST")
    stamp = ()
    if extra and os.path.isfile(extra):
        st = os.stat(extra)
        stamp = (st.st_mtime_ns, st.st_size)
    return _manifest(extra, stamp)


def entry(name: str) -> WeightsEntry:
    try:
        return manifest()[name]
    except KeyError:
        raise AesopBenchError(f"no weights entry {name!r}; `aesop-bench weights list` shows the known ones") from None


def cache_path(e: WeightsEntry) -> Path:
    return weights_dir() / e.file


def _recorded_path() -> Path:
    return weights_dir() / "recorded.json"


def _recorded() -> dict[str, str]:
    p = _recorded_path()
    return json.loads(p.read_text()) if p.is_file() else {}


def _record(name: str, digest: str) -> None:
    known = _recorded()
    known[name] = digest
    atomic_write_json(_recorded_path(), known)


def expected_hash(e: WeightsEntry) -> tuple[str | None, str]:
    """The full sha256 a file must have and where it comes from: published, recorded, or none yet."""
    if e.sha256:
        return e.sha256, "published"
    rec = _recorded().get(e.name)
    if rec:
        return rec, "recorded at first download"
    return None, "unpinned"


@dataclass
class Check:
    name: str
    status: str  # verified | recorded | unpinned | mismatch | missing
    detail: str = ""
    path: Path | None = None
    extra: dict = field(default_factory=dict)


def check(e: WeightsEntry, path: Path | None = None) -> Check:
    path = path or cache_path(e)
    if not path.is_file():
        return Check(e.name, "missing", path=path)
    digest = sha256_file(path)
    if e.size is not None and path.stat().st_size != e.size:
        return Check(e.name, "mismatch", f"size {path.stat().st_size}, expected {e.size}", path)
    if e.sha256_prefix and not digest.startswith(e.sha256_prefix):
        return Check(e.name, "mismatch", f"sha256 {digest} does not start with {e.sha256_prefix}", path)
    want, source = expected_hash(e)
    if want is None:
        return Check(e.name, "unpinned", f"sha256 {digest}; no published hash", path, {"sha256": digest})
    if digest != want:
        return Check(e.name, "mismatch", f"sha256 {digest}, expected {want} ({source})", path)
    return Check(e.name, "verified" if source == "published" else "recorded", source, path)


_FLIP_ENTRY = re.compile(r'<div class="flip-entry" id="entry-([A-Za-z0-9_-]+)"[\s\S]*?<a href="([^"]*)"'
                         r'[\s\S]*?class="flip-entry-title">([^<]*)<')


def gdrive_folder_entries(folder_id: str) -> list[tuple[str, str, bool]]:
    """``(id, name, is_folder)`` of each item of a public Google Drive folder, from its embedded folder view."""
    url = os.environ.get("AESOP_BENCH_GDRIVE_LIST", GDRIVE_LIST).format(id=folder_id)
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


def _http_url(url: str) -> str:
    if url.startswith("gdrive-folder://"):
        url = resolve_gdrive_folder(url)
    if url.startswith("gdrive://"):
        return os.environ.get("AESOP_BENCH_GDRIVE_FILE", GDRIVE).format(id=url[len("gdrive://"):])
    return url


def download(name: str, log=print) -> Path:
    """Fetch a weights file into the cache (resumable, atomic) and verify it."""
    e = entry(name)
    dest = cache_path(e)
    c = check(e)
    if c.status in ("verified", "recorded"):
        return dest
    if c.status == "mismatch":
        raise AesopBenchError(f"{dest}: {c.detail}; delete it and download again")
    if not e.urls:
        raise AesopBenchError(f"{name}: no download URL is known. {e.manual}")
    want, _ = expected_hash(e)
    errors = []
    for url in e.urls:
        try:
            digest = fetch(_http_url(url), dest, want)
        except AesopBenchError as exc:
            errors.append(str(exc))
            continue
        _refuse_html(dest, url)
        c = check(e)
        if c.status == "mismatch":
            dest.unlink()
            errors.append(f"{url}: {c.detail}")
            continue
        if c.status == "unpinned":
            _record(name, digest)
            if log:
                log(f"note: no sha256 is published for {name}; recorded {digest} in {_recorded_path()}")
        return dest
    raise AesopBenchError(f"{name}: every source failed:\n  " + "\n  ".join(errors) + _add_hint(e))


def _refuse_html(path: Path, url: str) -> None:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith(b"<!doctype html") or head.startswith(b"<html"):
        path.unlink()
        raise AesopBenchError(f"{url} returned a web page, not the file (Google Drive quota or a changed link); "
                              "download it in a browser and use `aesop-bench weights add`")


def _browsable(url: str) -> str:
    """A URL a person can open in a browser."""
    if url.startswith("gdrive-folder://"):
        return "https://drive.google.com/drive/folders/" + url[len("gdrive-folder://"):].split("/")[0]
    if url.startswith("gdrive://"):
        return f"https://drive.google.com/file/d/{url[len('gdrive://'):]}/view"
    return url


def _add_hint(e: WeightsEntry) -> str:
    where = ", ".join(_browsable(u) for u in e.urls) or e.manual
    return f"\nFetch {e.file} by hand ({where}) and run `aesop-bench weights add {e.name} PATH/TO/{e.file}`."


def add(name: str, file: str | os.PathLike) -> Path:
    """Import a file fetched by hand, after checking it against the manifest."""
    e = entry(name)
    src = Path(file)
    if not src.is_file():
        raise AesopBenchError(f"{src}: no such file")
    c = check(e, src)
    if c.status == "mismatch":
        raise AesopBenchError(f"{src} is not {e.file}: {c.detail}")
    dest = cache_path(e)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".adding")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    if c.status == "unpinned":
        _record(name, c.extra["sha256"])
    return dest


def require(name: str) -> Path:
    """The cached, verified path of a weights file; never downloads (offline-safe)."""
    e = entry(name)
    c = check(e)
    if c.status in ("verified", "recorded", "unpinned"):
        if c.status == "unpinned":
            _record(name, c.extra["sha256"])
        return c.path
    if c.status == "missing":
        raise AesopBenchError(
            f"weights {name!r} ({e.file}) are not in the cache {weights_dir()}. Run `aesop-bench weights download "
            f"{name}`" + (f" (from {e.urls[0]})" if e.urls else "") + "." + _add_hint(e))
    raise AesopBenchError(f"{c.path}: {c.detail}; delete it and run `aesop-bench weights download {name}`")


def get(name: str, download_missing: bool = True, log=print) -> Path:
    """``require``, downloading first when allowed."""
    if download_missing and check(entry(name)).status == "missing":
        return download(name, log=log)
    return require(name)


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata (architecture, options) of a safetensors checkpoint written by the trainer; {} otherwise."""
    if Path(path).suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {k: json.loads(v) for k, v in meta.items()}


_STORAGE_DTYPES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
                   "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                   "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool"}


class _ScriptObject:
    """Stands for a TorchScript class instance in an archive's data.pkl: it only records its attributes."""

    def __setstate__(self, state):
        self.state = state


def is_torchscript(path: str | os.PathLike) -> bool:
    import zipfile

    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/data.pkl") for n in zf.namelist()) and any("/code/" in n for n in zf.namelist())


def load_torchscript_tensors(path: str | os.PathLike) -> dict:
    """The parameters and buffers of a TorchScript archive (``torch.jit.save``), as ``jit.load(...).state_dict()``
    names them, read without ``torch.jit.load``: the archive's ``data.pkl`` is unpickled with a loader that
    knows only tensors, storages and plain containers, and turns every TorchScript class into an inert record;
    its compiled code is never read."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        root = next(n[: -len("data.pkl")] for n in names if n.endswith("/data.pkl"))
        if root + "byteorder" in names and zf.read(root + "byteorder").strip() != b"little":
            raise AesopBenchError(f"{path}: a big-endian TorchScript archive; re-save it on a little-endian machine")

        def rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
            return storage.as_strided(tuple(size), tuple(stride), offset)

        def rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
            return data

        allowed = {("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
                   ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
                   ("torch._utils", "_rebuild_parameter_with_state"): rebuild_parameter,
                   ("collections", "OrderedDict"): dict}

        class Reader(pickle.Unpickler):
            def find_class(self, module, name):
                if module == "__torch__" or module.startswith("__torch__."):
                    return _ScriptObject
                if module == "torch" and name in _STORAGE_DTYPES:
                    return getattr(torch, _STORAGE_DTYPES[name])
                if (module, name) in allowed:
                    return allowed[(module, name)]
                raise AesopBenchError(f"{path}: the TorchScript archive refers to {module}.{name}, which is not a "
                                      "tensor or a plain container; it is not loaded")

            def persistent_load(self, pid):
                kind, dtype, key = pid[0], pid[1], pid[2]
                if kind != "storage" or not isinstance(dtype, torch.dtype):
                    raise AesopBenchError(f"{path}: unexpected storage record {pid[:2]!r} in the TorchScript archive")
                raw = bytearray(zf.read(f"{root}data/{key}"))
                return torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)

        with zf.open(root + "data.pkl") as f:
            obj = Reader(f).load()
    out: dict = {}

    def walk(o, prefix):
        for k, v in (o.state.items() if isinstance(getattr(o, "state", None), dict) else ()):
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v.clone()
            elif isinstance(v, _ScriptObject):
                walk(v, f"{prefix}{k}.")

    if not isinstance(obj, _ScriptObject):
        raise AesopBenchError(f"{path}: not a TorchScript module archive")
    walk(obj, "")
    return out


def load_state_dict(path: str | os.PathLike) -> dict:
    """Tensors from a checkpoint without unpickling code (safetensors, ``weights_only`` pickles, or the
    tensors of a TorchScript archive)."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if is_torchscript(path):
        return load_torchscript_tensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError (and others) for disallowed globals
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__ or "global" in str(exc).lower():
            raise AesopBenchError(
                f"{path}: the checkpoint contains pickled Python objects, which are never loaded (they can run "
                "code). Re-save its tensors in a trusted environment: torch.save(ckpt_state_dict, 'clean.pth') or "
                "safetensors.torch.save_file(...)."
            ) from None
        raise AesopBenchError(f"{path}: cannot read the checkpoint ({exc})") from None
