"""``aesop-bench data``: download, verify and derive LR images of benchmark sets."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AesopBenchError
from ..download import ProgressBar, extract, fetch, github_raw_url, record_first_hash
from ..fileutil import sha256_file
from .sets import HR_DIRS, SETS, find_child, fingerprints, list_images, resolve, set_folder

RECORDED_HASHES = ".aesop-bench-recorded.json"


def _say(log, msg: str) -> None:
    if log is not None:
        log(msg)


def download_set(name: str, data_root: Path, log=print) -> Path:
    """Download a registered set into ``data_root/FOLDER``; pinned files are sha256-verified. A failure says
    how to use a copy of the set that is already on the machine."""
    entry = SETS.get(name)
    if entry is None:
        raise AesopBenchError(f"{name!r} is not a registered set; only registered sets can be downloaded")
    try:
        return _download_set(name, entry, data_root, log)
    except AesopBenchError as exc:
        raise AesopBenchError(f"{exc} If {entry.folder} is already on this machine, give the folder that holds "
                              f"it with --data-root (or $AESOP_BENCH_DATA); now {data_root}.") from None


def _download_set(name: str, entry, data_root: Path, log) -> Path:
    root = set_folder(name, data_root) or Path(data_root) / entry.folder
    rows = fingerprints(name)
    if rows:
        todo = [r for r in rows if not ((root / r["file"]).is_file() and sha256_file(root / r["file"]) == r["sha256"])]
        _say(log, f"{name}: {len(rows) - len(todo)}/{len(rows)} files present and verified; fetching {len(todo)}")
        for r in todo:
            url = github_raw_url(r["repo"], r["commit"], r["path_in_repo"])
            fetch(url, root / r["file"], r["sha256"])
        return root
    if entry.archive is not None:
        arc = entry.archive
        cache = Path(data_root) / ".downloads" / Path(arc.url).name
        hr = root / "HR"
        if hr.exists():
            raise AesopBenchError(f"{hr} exists already; remove it to download {name} again")
        bar = ProgressBar(f"{name}: {Path(arc.url).name}", enabled=log is not None)
        try:
            got = fetch(arc.url, cache, arc.sha256, progress=bar)
        finally:
            bar.close()
        staging = Path(data_root) / ".downloads" / f"{name}.extract"
        if staging.exists():
            shutil.rmtree(staging)
        try:
            extract(cache, staging)
        except (AesopBenchError, OSError, EOFError, zipfile.BadZipFile, tarfile.TarError) as exc:
            cache.unlink(missing_ok=True)
            raise AesopBenchError(f"{cache}: the archive from {arc.url} cannot be extracted ({exc}); it was deleted: "
                                  "run the command again to download it anew") from None
        src = staging / arc.members
        if not src.is_dir():
            raise AesopBenchError(f"{cache}: expected a folder {arc.members}/ in the archive; the archive has changed")
        if arc.folder_md5:
            digest = arc.checksum(src)
            if digest != arc.folder_md5:
                cache.unlink(missing_ok=True)
                shutil.rmtree(staging, ignore_errors=True)
                raise AesopBenchError(
                    f"{name}: the files of {arc.members}/ in {arc.url} do not match the published checksum "
                    f"(deepinv's folder MD5 {arc.folder_md5}, got {digest}); the download was deleted and nothing "
                    "was recorded. Run the command again; if it fails again the source has changed: fetch the set "
                    f"by hand and put its HR images in {hr}")
        record = Path(data_root) / RECORDED_HASHES
        if arc.sha256 is None:
            record_first_hash(record, arc.url, got, log)
        for f in sorted(src.iterdir()):  # each verified file's sha256, as the first verified download gave it
            if f.is_file():
                record_first_hash(record, f"{name}/HR/{f.name}", sha256_file(f), None)
        hr.parent.mkdir(parents=True, exist_ok=True)
        src.rename(hr)
        shutil.rmtree(staging, ignore_errors=True)
        _say(log, f"{name}: {len(list_images(hr))} images in {hr}" +
             (" (folder checksum verified)" if arc.folder_md5 else ""))
        return root
    raise AesopBenchError(f"{name}: no pinned public source is known. {entry.manual}")


@dataclass
class VerifyReport:
    name: str
    status: str  # canonical | differs | missing | unpinned
    n_files: int = 0
    differing: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    detail: str = ""  # where a missing set was looked for, and what to do

    def line(self) -> str:
        parts = [f"{self.name}: {self.status}" + (f" ({self.detail})" if self.detail else "")]
        if self.n_files:
            parts.append(f"{self.n_files} files checked")
        for label, items in (("differ", self.differing), ("missing", self.missing), ("not canonical", self.extra)):
            if items:
                shown = ", ".join(items[:10]) + (f" (+{len(items) - 10} more)" if len(items) > 10 else "")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)


def _hr_dir(root: Path) -> Path:
    return find_child(root, HR_DIRS) or root


def verify_set(name: str, data_root: Path) -> VerifyReport:
    """Compare a set's files with the canonical fingerprints (never raises for a broken set: it reports it)."""
    rows = fingerprints(name)
    root = set_folder(name, data_root)
    if root is None:
        folder = SETS[name].folder if name in SETS else name
        where = f"no {folder} folder (any case) in {data_root}" if Path(data_root).is_dir() else \
            f"the data root {data_root} does not exist"
        return VerifyReport(name, "missing", detail=f"{where}; give --data-root or $AESOP_BENCH_DATA, or run "
                                                   f"`aesop-bench data download {name}`")
    if not rows:
        arc = SETS[name].archive if name in SETS else None
        if arc is None or not arc.folder_md5:
            return VerifyReport(name, "unpinned")
        hr_dir = _hr_dir(root)
        digest = arc.checksum(hr_dir)
        n = len(list_images(hr_dir))
        # the published checksum covers the folder as a whole: which file differs is not known
        return VerifyReport(name, "canonical", n) if digest == arc.folder_md5 else \
            VerifyReport(name, "differs", 0, differing=[f"{hr_dir} (folder MD5 {digest}, published {arc.folder_md5})"])
    rep = VerifyReport(name, "canonical")
    hr_dir = _hr_dir(root)
    by_dir: dict[str, set[str]] = {}
    for r in rows:
        folder, fname = r["file"].rsplit("/", 1)
        by_dir.setdefault(folder, set()).add(fname)
        path = (hr_dir if folder == "HR" else root / folder) / fname
        if not path.is_file():
            rep.missing.append(r["file"])
        elif sha256_file(path) != r["sha256"]:
            rep.differing.append(r["file"])
        else:
            rep.n_files += 1
    present = list_images(hr_dir) if hr_dir.is_dir() else []
    rep.extra = sorted(p.name for p in present if p.name not in by_dir.get("HR", set()))
    if rep.differing or rep.missing or rep.extra:
        rep.status = "differs"
    return rep


def incomplete(name: str, data_root: Path) -> tuple[list[str], list[str]]:
    """A registered set's HR files that are missing, and images that are not part of it, by name (``([],
    [])`` for a complete set). From the fingerprints where the set is pinned, else from its image count."""
    entry = SETS[name]
    root = set_folder(name, data_root)
    if root is None or not entry.has_hr:
        return [], []
    hr_dir = _hr_dir(root)
    present = {p.name for p in list_images(hr_dir)} if hr_dir.is_dir() else set()
    expected = {r["file"].rsplit("/", 1)[1] for r in fingerprints(name) if r["file"].startswith("HR/")}
    if expected:
        return sorted(expected - present), sorted(present - expected)
    if entry.n_images and len(present) < entry.n_images:
        return [f"{entry.n_images - len(present)} of its {entry.n_images} images"], []
    return [], []


def require_complete(name: str, data_root: Path) -> None:
    """Refuse a registered set with missing or unexpected images, naming them: its mean would not be the
    set's. A folder given as a set is evaluated as it is."""
    missing, unexpected = incomplete(name, data_root)
    if not missing and not unexpected:
        return
    folder = _hr_dir(set_folder(name, data_root))

    def shown(items):
        return ", ".join(items[:10]) + (f" (+{len(items) - 10} more)" if len(items) > 10 else "")

    what = ([f"missing: {shown(missing)}"] if missing else []) + \
        ([f"not part of {name}: {shown(unexpected)}"] if unexpected else [])
    fix = f"Run `aesop-bench data download {name}` (it fetches only what is missing)" if missing and \
        (fingerprints(name) or SETS[name].archive) else (SETS[name].manual or "Complete the folder")
    raise AesopBenchError(
        f"set {name!r} in {folder} is incomplete ({'; '.join(what)}); a mean over part of it is not the set's. "
        f"{fix}{'; remove the files that are not part of it' if unexpected else ''}. To evaluate the folder as "
        f"it is, give its path: --sets {folder}")


def make_lr(name: str, data_root: Path, scale: int = 4, modcrop: int | None = None, log=print) -> Path:
    """Write MATLAB-bicubic LR images of a set to ``LR_bicubic/X{scale}/NAMEx{scale}.png``.

    HR images are first cropped to a multiple of ``modcrop`` (default: the scale).
    """
    from ..imageio import read_image, write_image
    from .imresize import imresize
    from .transforms import mod_crop

    res = resolve(name, data_root)
    out = res.root / "LR_bicubic" / f"X{scale}"
    out.mkdir(parents=True, exist_ok=True)
    for f in res.hr_files:
        hr = mod_crop(read_image(f), modcrop or scale)
        write_image(out / f"{f.stem}x{scale}.png", imresize(hr, 1.0 / scale))
    _say(log, f"{name}: wrote {len(res.hr_files)} LR images to {out}")
    return out
