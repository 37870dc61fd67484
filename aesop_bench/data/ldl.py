"""LDL's distributed test data: the HR and LR files the AESOP authors' evaluation reads for five of its sets.

The authors' test configurations (``options/test/AESOP/main/test_Synthetic_AESOP_*.yml``) read Set14, Manga109,
General100, Urban100 and DIV2K100 from the test data LDL (Liang et al., CVPR 2022) distributes::

    dataroot_gt: /mnt/hdd0/mklee/sr_dataset_fromLDL/Set14/HR
    dataroot_lq: /mnt/hdd0/mklee/sr_dataset_fromLDL/Set14/LR

with pre-made LR files (the authors' ``PairedImageDataset`` crops the HR to a multiple of the scale, upstream
BasicSR's to the LR's size x the scale: the same area wherever the LR is the HR / scale rounded down), and only BSD100 and LSDIR from HR cropped to a multiple of 12 with MATLAB-bicubic LR
(``sr_dataset_fp64mod12/BSD100mod12``, ``LSDIR250mod12``). Under the ``paper`` protocol (``test_data="ldl"``)
the five sets are read from ``DATA_ROOT/LDL/<Set>/HR`` and ``LR`` (LDL's folder names: ``Set14``, ``Manga109``,
``General100``, ``Urban100``, ``DIV2K100``); a set whose LDL files are not there falls back to its own files
under the mod-12 rule, which the run says and records (``data`` in its summary).

LDL's ``datasets/README.md`` publishes the files in a Google Drive folder (:data:`DRIVE_FOLDER`; also Baidu
Disk and OneDrive). :func:`download` fetches the Drive folder with gdown, or an archive of the same sets from a
URL or file (``aesop-bench data download ldl --from FILE``; ``$AESOP_BENCH_LDL_SOURCE``), such as the OneDrive
archive saved by hand. No hash is published: the sha256 of every file is recorded at its first download (or
first use, for files placed by hand) and checked at every later use. :func:`compare_with_public` checks each
LDL HR image against the pinned public copy of the same image over their common area.

Length: LDL's five sets share one Drive folder, one download, one layout and one fallback rule, so they are kept
together.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..download import browsable, extract, fetch, http_url, recorded_hashes, record_first_hash
from ..errors import AesopBenchError
from ..fileutil import atomic_write_json, sha256_cached
from .sets import SETS, ResolvedSet, find_child, list_images, resolve, set_folder

DRIVE_FOLDER = "1dcOxsgkJPfGrwzQ4DJhXOx3DRyANznZN"  # LDL's datasets/README.md: "testing datasets"
FOLDER = "LDL"  # under the data root
SOURCE_ENV = "AESOP_BENCH_LDL_SOURCE"
RECORD = ".aesop-bench-ldl.json"  # sha256 of each file at its first download, under the data root
# the sets LDL distributes, by its folder names; the paper reads all but Set5 from them
LDL_NAMES = {"set5": "Set5", "set14": "Set14", "manga109": "Manga109", "general100": "General100",
             "urban100": "Urban100", "div2k_val": "DIV2K100"}
PAPER_SETS = ("set14", "manga109", "general100", "urban100", "div2k_val")
LR_DIRS = {4: ("LR", "LR_x4"), 2: ("LR_x2",)}  # LDL's LR folder of each scale (test_LDL_Synthetic_x4/x2.yml)
MIRRORS = ("https://drive.google.com/drive/folders/" + DRIVE_FOLDER,
           "https://pan.baidu.com/s/1V6oqQaHpKm3LJkmWufV7nA?pwd=u34j",
           "https://connectpolyu-my.sharepoint.com/:u:/g/personal/19109963r_connect_polyu_hk/"
           "EX7RLNhUYa5CjoyeuawL55MBWA_wQfy7d5e4bGaz3BcVuQ?e=odp7My")


def reads_ldl(name: str, protocol) -> bool:
    """Whether ``protocol`` reads set ``name`` from LDL's files."""
    return getattr(protocol, "test_data", "own") == "ldl" and name in PAPER_SETS and protocol.scale in LR_DIRS


def set_dir(name: str, data_root: Path, scale: int = 4) -> Path | None:
    """``DATA_ROOT/LDL/<Set>`` with its ``HR`` folder and the LR folder of ``scale``, or None."""
    base = find_child(Path(data_root), (FOLDER,))
    folder = find_child(base, (LDL_NAMES[name],)) if base is not None else None
    if folder is None or find_child(folder, ("HR",)) is None or find_child(folder, LR_DIRS[scale]) is None:
        return None
    return folder


def _where(data_root: Path, name: str) -> Path:
    return Path(data_root) / FOLDER / LDL_NAMES[name]


def resolve_ldl(name: str, data_root: Path, scale: int) -> ResolvedSet | None:
    """Set ``name`` as LDL's files give it (None where they are not under ``data_root``): every HR image with its
    LR file of the same name, each file unchanged since its hash was recorded (files placed by hand are recorded
    at their first use); the HR is cropped to a multiple of the scale and the LR read, not made."""
    folder = set_dir(name, data_root, scale)
    if folder is None:
        return None
    hr_dir, lr_dir = find_child(folder, ("HR",)), find_child(folder, LR_DIRS[scale])
    hr_files, lr_files = list_images(hr_dir), {p.name: p for p in list_images(lr_dir)}
    unpaired = [f.name for f in hr_files if f.name not in lr_files]
    if hr_files and not unpaired and len(lr_files) != len(hr_files):  # BasicSR's paired_paths_from_folder
        raise AesopBenchError(f"{folder}: {hr_dir} holds {len(hr_files)} images but {lr_dir} holds {len(lr_files)}; "
                              "LDL's HR and LR folders pair one to one. Run `aesop-bench data download ldl` to "
                              f"fetch it again, or remove {folder} to use the set's own files")
    n = SETS[name].n_images
    if not hr_files or unpaired or (n and len(hr_files) != n):
        what = f"{len(hr_files)} HR images, {n} expected" if n and len(hr_files) != n else \
            f"no LR file of the same name for {', '.join(unpaired[:10])}" if unpaired else "no HR images"
        raise AesopBenchError(f"{folder}: LDL's {LDL_NAMES[name]} is incomplete ({what}); run `aesop-bench data "
                              f"download ldl` to fetch it again, or remove {folder} to use the set's own files")
    check_recorded(data_root, [*hr_files, *(lr_files[f.name] for f in hr_files)])
    data = {"source": "ldl", "hr": str(hr_dir), "lr": f"LDL's LR files ({lr_dir})",
            "area": f"LDL's HR cropped to a multiple of {scale} (its LR's size x {scale})"}
    return ResolvedSet(name, folder, hr_dir, hr_files, {scale: lr_dir}, modcrop=scale, lr_source="folder",
                       data=data)


def own_record(res: ResolvedSet, protocol) -> dict:
    """Where a set's HR and LR come from when it is read from its own files under ``protocol``."""
    p = res.protocol(protocol)
    if res.hr_dir is None:
        return {"source": "own", "lr": f"the set's LR images ({res.root})", "area": "no HR"}
    lr = f"the set's LR files ({res.lr_dirs.get(p.scale, res.root / 'LR_bicubic')})" if p.lr_source == "folder" \
        else f"MATLAB bicubic ({'double precision, rounded once' if p.lr_precision == 'double' else 'uint8 path, rounded after each pass'}) of the HR cropped to a multiple of {p.effective_modcrop}"
    return {"source": "own", "hr": str(res.hr_dir), "lr": lr,
            "area": f"the HR cropped to a multiple of {p.effective_modcrop}"}


def resolve_for(name: str, data_root: Path, protocol) -> ResolvedSet:
    """Set ``name`` (a registered set or a folder) as ``protocol`` reads it, with :attr:`ResolvedSet.data` saying
    where its HR and LR come from; a set the protocol reads from LDL's files falls back to its own where those are
    not there, and its record says so (``fallback``)."""
    if reads_ldl(name, protocol):
        res = resolve_ldl(name, data_root, protocol.scale)
        if res is not None:
            return res
    res = resolve(name, data_root)
    res.data = own_record(res, protocol)
    if reads_ldl(name, protocol):
        res.data["fallback"] = (f"LDL's test data, which the paper's evaluation reads for this set, is not in "
                                f"{_where(data_root, name)}; its own files were used under the mod-12 rule "
                                "(`aesop-bench data download ldl` fetches LDL's)")
    return res


def check_recorded(data_root: Path, files: list[Path]) -> None:
    """Refuse a file whose sha256 differs from the one recorded at its first download; record those not yet
    recorded (files placed by hand: trusted at their first use)."""
    record = Path(data_root) / RECORD
    known = recorded_hashes(record)
    new, changed = {}, []
    for f in files:
        key = _key(data_root, f)
        digest = sha256_cached(f)
        if key not in known:
            new[key] = digest
        elif known[key] != digest:
            changed.append(f"{f} (recorded {known[key][:12]}..., now {digest[:12]}...)")
    if changed:
        raise AesopBenchError(
            f"LDL's test files differ from their first download: {'; '.join(changed[:5])}"
            f"{f' (+{len(changed) - 5} more)' if len(changed) > 5 else ''}. Run `aesop-bench data download ldl` "
            f"to fetch them again; if the new files are meant, delete their entries from {record}")
    if new:
        try:
            atomic_write_json(record, {**known, **new})
        except OSError:  # a read-only data root: the files are checked against what is recorded, if anything
            pass


def _key(data_root: Path, f: Path) -> str:
    try:
        return f.resolve().relative_to(Path(data_root).resolve()).as_posix()
    except ValueError:
        return str(f.resolve())


def _mentions(path: str, ldl_name: str) -> bool:
    """Whether a path in the Drive folder belongs to set ``ldl_name`` (a folder ``Set14/`` or a file ``Set14.zip``)."""
    parts = Path(path).parts
    return any(p.lower() == ldl_name.lower() or p.lower().split(".")[0] == ldl_name.lower() for p in parts)


def _gdrive_folder(dest: Path, log, wanted: list[str]) -> None:
    """The files of LDL's Drive folder that belong to the sets ``wanted`` (all of them where none is recognised)
    into ``dest`` with gdown (files already there are kept, partial ones resumed)."""
    try:
        import gdown
    except ImportError:
        raise AesopBenchError("gdown is needed to download LDL's test data from Google Drive: pip install "
                              "'gdown>=6'") from None
    dest.mkdir(parents=True, exist_ok=True)
    error = ""
    try:
        listing = gdown.download_folder(id=DRIVE_FOLDER, output=str(dest), quiet=True, skip_download=True) or []
        names = [LDL_NAMES[n] for n in wanted]
        pick = [f for f in listing if any(_mentions(f.path, n) for n in names)] or list(listing)
        if log is not None:
            log(f"LDL's test data: {len(pick)} files of {MIRRORS[0]} for {', '.join(names)}")
        for f in pick:
            Path(f.local_path).parent.mkdir(parents=True, exist_ok=True)
            if gdown.download(id=f.id, output=f.local_path, quiet=log is None, resume=True) is None:
                raise OSError(f"{f.path} did not download")
    except Exception as exc:  # noqa: BLE001 - gdown raises its own and requests' errors
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    else:
        if not listing:
            error = "the folder listing was empty"
    if error:
        raise AesopBenchError(
            f"cannot download LDL's test data from {MIRRORS[0]} ({error}). Fetch it by hand from one of "
            f"{', '.join(MIRRORS)} and run `aesop-bench data download ldl --from FILE` (an archive or a folder), "
            f"or put each set in DATA_ROOT/{FOLDER}/<Set>/HR and LR")


def download(data_root: Path, source: str | None = None, log=print, sets: list[str] | None = None) -> Path:
    """Fetch LDL's test data into ``DATA_ROOT/LDL`` and record each file's hash. ``source``: an archive (URL or
    file) or a folder holding the sets; default ``$AESOP_BENCH_LDL_SOURCE``, else LDL's Google Drive folder (only
    the files of ``sets``, default the five the paper reads from it). Sets already in place are kept (and checked
    against their recorded hashes)."""
    data_root = Path(data_root)
    wanted = list(sets or PAPER_SETS)
    source = source or os.environ.get(SOURCE_ENV) or None
    staging = data_root / ".downloads" / "ldl"
    local = source and (source.startswith("file://") or "://" not in source)
    if local and not Path(source[len("file://"):] if source.startswith("file://") else source).exists():
        raise AesopBenchError(f"LDL's test data: {source} does not exist (--from / ${SOURCE_ENV}); give the archive "
                              "or folder saved from one of " + ", ".join(MIRRORS))
    if source and os.path.isdir(source):
        files = Path(source)
    elif source:
        url = source if "://" in source else Path(source).resolve().as_uri()
        archive = staging / (Path(url.split("?")[0]).name or "ldl-archive")
        got = fetch(http_url(url), archive, None)
        record_first_hash(data_root / RECORD, url, got, log)
        files = staging / "files"
        if files.exists():
            shutil.rmtree(files)
        extract(archive, files)
    else:
        files = staging / "drive"
        _gdrive_folder(files, log, wanted)
    _extract_nested(files)
    placed = []
    for name, ldl_name in LDL_NAMES.items():
        if set_dir(name, data_root) is not None:
            continue
        found = _find_set(files, ldl_name)
        if found is None:
            continue
        target = _where(data_root, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(source or ""):
            shutil.copytree(found, target)
        else:
            shutil.move(str(found), target)
        placed.append(name)
    missing = [LDL_NAMES[n] for n in wanted if set_dir(n, data_root) is None]
    if missing:
        raise AesopBenchError(f"{browsable(source) if source else MIRRORS[0]}: no {', '.join(missing)} with HR/ and "
                              "LR/ folders in it; it holds " + (", ".join(sorted(p.name for p in files.iterdir()))
                                                                 or "nothing"))
    for name in LDL_NAMES:
        for scale in LR_DIRS:
            res = resolve_ldl(name, data_root, scale)  # records the hashes, checks pairs and counts
            if res is not None and log is not None and name in placed:
                log(f"LDL {LDL_NAMES[name]}: {len(res.hr_files)} HR/LR pairs (x{scale}) in {res.root}")
    return data_root / FOLDER


def _extract_nested(folder: Path) -> None:
    """Extract the archives a download holds (the Drive folder keeps some sets as zip files), once each."""
    for arc in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".zip", ".tar", ".gz")):
        done = arc.with_name(arc.name + ".extracted")
        if not done.exists():
            extract(arc, arc.parent)
            done.touch()


def _find_set(folder: Path, ldl_name: str) -> Path | None:
    """The folder named ``ldl_name`` (any case) with ``HR`` and ``LR`` subfolders, anywhere under ``folder``."""
    for root, dirs, _ in os.walk(folder):
        for d in sorted(dirs):
            cand = Path(root) / d
            if d.lower() == ldl_name.lower() and find_child(cand, ("HR",)) and find_child(cand, LR_DIRS[4]):
                return cand
    return None


def _same_name(stem: str) -> str:
    """A file name with its numbers unpadded (``im_001`` and ``im_1`` name the same General100 image)."""
    import re

    return re.sub(r"\d+", lambda m: str(int(m.group())), stem.lower())


def compare_with_public(name: str, data_root: Path) -> list[str]:
    """Each LDL HR image of set ``name`` against the set's own (pinned public) copy of the same name, over their
    common top-left area: one line per set, then one per image that differs in size or pixels."""
    from ..imageio import read_image

    folder = set_dir(name, data_root)
    if folder is None:
        return [f"{LDL_NAMES[name]}: LDL's files not in {_where(data_root, name)}"]
    own_root = set_folder(name, data_root)
    if own_root is None:
        return [f"{LDL_NAMES[name]}: no public copy under {data_root} to compare with (`aesop-bench data download "
                f"{name}`)"]
    own = {_same_name(f.stem): f for f in resolve(name, data_root).hr_files}
    lines, same, unmatched = [], 0, []
    ldl_files = list_images(find_child(folder, ("HR",)))
    for f in ldl_files:
        pub = own.get(_same_name(f.stem))
        if pub is None:
            unmatched.append(f.name)
            continue
        a, b = read_image(f), read_image(pub)
        if a.shape[0] != b.shape[0]:
            a, b = a.expand(3, -1, -1) if a.shape[0] == 1 else a, b.expand(3, -1, -1) if b.shape[0] == 1 else b
        h, w = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])
        diff = (a[:, :h, :w].int() - b[:, :h, :w].int()).abs()
        n_diff, size_same = int((diff.amax(0) > 0).sum()), a.shape[-2:] == b.shape[-2:]
        if n_diff == 0 and size_same:
            same += 1
            continue
        lines.append(f"  {f.stem}: LDL {a.shape[-1]}x{a.shape[-2]}, public {b.shape[-1]}x{b.shape[-2]}; over the "
                     f"common {w}x{h}: " + (f"{n_diff} pixels differ ({100 * n_diff / (h * w):.2f}%), at most by "
                                            f"{int(diff.max())}" if n_diff else "identical"))
    head = (f"{LDL_NAMES[name]}: {len(ldl_files)} LDL HR images; {same} identical to the public copy "
            f"({own_root}), {len(lines)} differ" + (f", {len(unmatched)} without a public copy of the same name: "
                                                   f"{', '.join(unmatched[:10])}" if unmatched else ""))
    return [head, *lines]
