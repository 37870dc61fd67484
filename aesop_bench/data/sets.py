"""The benchmark-set registry: names, folders, fingerprints and download recipes.

A set lives in a folder under the data root named like the set (``Set14``,
``Urban100``, ...; matched case-insensitively). HR images sit in ``HR/``,
``GTmod12/`` or ``original/`` (first found), else directly in the folder.
Optional LR images sit in ``LR_bicubic/X{s}/`` (or ``LRbicx{s}/``), named
``NAMEx{s}.png`` or like the HR file.

Any existing folder can be given instead of a name (``--sets path/to/dir``):
it is a set of its own, with the same layout rules. A folder with an ``LR/``
subfolder and no HR folder is a set of real-world LR inputs without ground
truth (no-reference metrics only), like RealSR and DRealSR.

Fingerprints (``fingerprints.csv``, shipped with the package) give the sha256
and public source (repository, commit, path) of the canonical files of Set5,
Set14, BSD100, Urban100, Manga109 and General100; downloads of these are pinned to those
commits and verified. DIV2K-val and LSDIR-val come from their official archives,
verified with the folder checksums deepinv publishes for them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import AesopBenchError, MissingFileError

HR_DIRS = ("HR", "GTmod12", "original")
IMAGE_EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
PAPER_SETS = ("set14", "manga109", "general100", "urban100", "div2k_val", "bsd100", "lsdir_val")


@dataclass(frozen=True)
class Archive:
    """An archive to download and extract; ``members`` is the folder in it that holds the HR images.

    ``folder_md5``: a published checksum of that folder's files, as deepinv computes it
    (:func:`aesop_bench.download.folder_md5`; ``md5_of_md5``: of a split of folders, one here, as deepinv's
    LSDIR does); the extracted files are refused unless they match it."""

    url: str
    sha256: str | None
    members: str
    folder_md5: str | None = None
    md5_of_md5: bool = False

    def checksum(self, folder: Path) -> str:
        """The checksum of ``folder`` as ``folder_md5`` is published (deepinv's folder MD5, or its MD5)."""
        import hashlib

        from ..download import folder_md5

        digest = folder_md5(folder)
        return hashlib.md5(digest.encode()).hexdigest() if self.md5_of_md5 else digest


@dataclass(frozen=True)
class BenchmarkSet:
    name: str
    folder: str
    description: str
    n_images: int | None = None
    aliases: tuple[str, ...] = ()
    has_hr: bool = True
    archive: Archive | None = None
    manual: str = ""  # how to get it where no pinned source exists
    extra_folders: tuple[str, ...] = field(default=())
    label: str = ""  # as tables and plots show it (default: the folder name)
    paper_name: str = ""  # as the AESOP paper's tables (aesop_paper_tables.csv) name it (default: the name)
    typical_mpix: float | None = None  # typical HR megapixels per image, for estimates before the set is on disk


SETS: dict[str, BenchmarkSet] = {s.name: s for s in [
    BenchmarkSet("set5", "Set5", "Set5 (Bevilacqua et al. 2012)", 5, typical_mpix=0.15),
    BenchmarkSet("set14", "Set14", "Set14 (Zeyde et al. 2010), bridge.png is grayscale", 14, typical_mpix=0.22),
    BenchmarkSet("bsd100", "BSD100", "BSD100: the BSDS300 test images", 100, aliases=("b100",), typical_mpix=0.15),
    BenchmarkSet("urban100", "Urban100", "Urban100 (Huang et al. 2015)", 100, typical_mpix=0.8),
    BenchmarkSet("manga109", "Manga109", "Manga109 (Matsui et al. 2017)", 109, typical_mpix=0.95),
    # pinned to a PNG copy that equals the BMP release pixel for pixel (see the README's Data section)
    BenchmarkSet("general100", "General100", "General100 (Dong et al. 2016)", 100, typical_mpix=0.1),
    BenchmarkSet("div2k_val", "DIV2K_val", "DIV2K validation images 0801-0900", 100,
                 aliases=("div2k", "div2k-val"), extra_folders=("DIV2K_valid_HR", "DIV2K"), label="DIV2K-val",
                 typical_mpix=2.8,
                 # deepinv's published checksum of DIV2K_valid_HR (deepinv/datasets/div2k.py)
                 archive=Archive("https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", None,
                                 "DIV2K_valid_HR", folder_md5="542325e500b0a474c7ad18bae922da72")),
    BenchmarkSet("lsdir_val", "LSDIR_val", "LSDIR validation set (250 images)", 250,
                 aliases=("lsdir", "lsdir-val"), extra_folders=("LSDIR",), label="LSDIR", paper_name="lsdir",
                 typical_mpix=1.6,
                 # the official archive; deepinv's published checksum of its val split (deepinv/datasets/lsdir.py)
                 archive=Archive("https://data.vision.ee.ethz.ch/yawli/val1.tar.gz", None, "val1/HR/val",
                                 folder_md5="972ba478c530b76eb9404b038597f65f", md5_of_md5=True)),
    BenchmarkSet("realsr_v3", "RealSRv3", "RealSR (V3) x4 test LR images (Canon and Nikon)", None,
                 aliases=("realsr",), has_hr=False, typical_mpix=0.5,
                 manual="RealSR V3 comes from github.com/csjcai/RealSR, whose README links one Google Drive file "
                        "of the whole dataset (train and test, every scale) with no published checksum, so nothing "
                        "could verify a download; put the x4 test LR images (Canon and Nikon, Test/4/*_LR4.png) in "
                        "RealSRv3/LR/."),
    BenchmarkSet("drealsr", "DRealSR", "DRealSR x4 test LR images", None, has_hr=False, typical_mpix=1.2,
                 manual="DRealSR comes from github.com/xiezw5/Component-Divide-and-Conquer-for-Real-World-Image-"
                        "Super-Resolution, whose README links Google Drive and Baidu folders with no published "
                        "checksum, so nothing could verify a download; put the x4 test LR images in DRealSR/LR/."),
]}

_ALIASES = {a: s.name for s in SETS.values() for a in (s.name, s.folder.lower(), *s.aliases)}


@lru_cache(maxsize=1)
def _fingerprint_rows() -> tuple[dict, ...]:
    text = resources.files("aesop_bench.data").joinpath("fingerprints.csv").read_text()
    return tuple(csv.DictReader(text.splitlines()))


def fingerprints(set_name: str) -> list[dict]:
    """Rows ``file, bytes, sha256, repo, commit, path_in_repo`` of a set's canonical files."""
    return [r for r in _fingerprint_rows() if r["set"] == set_name]


def canonical_name(name: str) -> str:
    """The registry's name of a set from any of its aliases, in any case.

    >>> canonical_name("Set14"), canonical_name("DIV2K-val")
    ('set14', 'div2k_val')
    """
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    raise AesopBenchError(
        f"unknown benchmark set {name!r}; choose from {', '.join(SETS)}, 'all' (the paper's seven), "
        "or give the path of a folder of images"
    )


def expand_sets(spec: str | list[str]) -> list[str]:
    """``'set5,set14'`` or ``'all'`` -> canonical names (paths of folders pass through)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.lower() == "all":
            names = list(PAPER_SETS)
        elif item.lower() in _ALIASES:
            names = [_ALIASES[item.lower()]]
        elif os.path.isdir(item):
            names = [item]
        else:
            names = [canonical_name(item)]
        out.extend(n for n in names if n not in out)
    if not out:
        raise AesopBenchError("no benchmark set given; use e.g. --sets set5,set14 or --sets all")
    return out


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not its subfolders, no hidden files), sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def find_child(parent: Path, names) -> Path | None:
    """The subfolder of ``parent`` named one of ``names`` (the first that exists, in any case); two subfolders that
    differ only in case (``Set5/`` and ``set5/``) are an error naming both."""
    if not parent.is_dir():
        return None
    wanted = [n.lower() for n in names]
    children: dict[str, list[Path]] = {}
    for c in sorted(parent.iterdir()):
        if c.is_dir():
            children.setdefault(c.name.lower(), []).append(c)
    for n in wanted:
        if n in children:
            if len(children[n]) > 1:
                raise AesopBenchError(f"{parent}: {' and '.join(c.name + '/' for c in children[n])} differ only in "
                                      "case; which one is meant is not defined. Merge them or rename one")
            return children[n][0]
    return None


@dataclass
class ResolvedSet:
    """A set found on disk: its name, folder, HR images and (optional) LR folders.

    For sets without ground truth ``hr_dir`` is None and ``hr_files`` are the LR inputs.
    """

    name: str
    root: Path
    hr_dir: Path | None
    hr_files: list[Path]
    lr_dirs: dict[int, Path]
    modcrop: int | None = None  # replaces the protocol's modcrop for this set (LDL's files: the scale)
    lr_source: str | None = None  # replaces the protocol's LR source for this set (LDL's files: folder)
    data: dict = field(default_factory=dict)  # where its HR and LR come from and the area compared (recorded)

    def protocol(self, protocol):
        """``protocol`` as it applies to this set's files."""
        return protocol.with_overrides(modcrop=self.modcrop, lr_source=self.lr_source)

    def lr_file(self, hr_file: Path, scale: int) -> Path | None:
        """The set's LR file of ``hr_file`` at ``scale`` (``NAMExS``, or the HR's own name), None where absent."""
        folder = self.lr_dirs.get(scale)
        if folder is None:
            return None
        stem = hr_file.stem
        for cand in (f"{stem}x{scale}{hr_file.suffix}", f"{stem}x{scale}.png", hr_file.name, f"{stem}.png"):
            if (folder / cand).is_file():
                return folder / cand
        return None

    def read_lr(self, hr_file: Path, scale: int):
        """The set's own LR image of ``hr_file`` (``--lr-source folder``), as stored."""
        from ..imageio import read_image

        lr_file = self.lr_file(hr_file, scale)
        if lr_file is None:
            raise MissingFileError(
                f"{hr_file}: no LR image for x{scale} in "
                f"{self.lr_dirs.get(scale, self.root / 'LR_bicubic' / f'X{scale}')} (looked for "
                f"{hr_file.stem}x{scale}.png and {hr_file.name}); run `aesop-bench data make-lr` or use "
                "--lr-source make")
        return lr_file, read_image(lr_file)


def set_folder(name: str, data_root: Path) -> Path | None:
    """Where a set's files are: a folder given by path as it is, a registered set under ``data_root`` by any of
    its folder names (None where absent)."""
    if os.path.isdir(name) and name not in SETS:
        return Path(name)
    entry = SETS.get(name)
    if entry is None:
        return None  # a path that does not exist (resolve says so)
    return find_child(Path(data_root), (entry.folder, entry.name, *entry.aliases, *entry.extra_folders))


def _lr_dirs(root: Path) -> dict[int, Path]:
    found: dict[int, Path] = {}
    for scale in (2, 3, 4, 8):
        cand = find_child(root / "LR_bicubic", (f"X{scale}",)) if (root / "LR_bicubic").is_dir() else None
        cand = cand or find_child(root, (f"LRbicx{scale}", f"LR_bicubic_X{scale}"))
        if cand is not None:
            found[scale] = cand
    return found


def resolve(name: str, data_root: Path) -> ResolvedSet:
    """Find a set's images under ``data_root``; raises a clear error when they are not there."""
    root = set_folder(name, data_root)
    entry = SETS.get(name)
    if root is None:
        hint = f"Run `aesop-bench data download {name}`, or point" if entry and (entry.archive or fingerprints(name)) \
            else f"{entry.manual} Or point" if entry and entry.manual else "Point"
        raise AesopBenchError(
            f"set {name!r} not found under {data_root}: expected a folder named {entry.folder if entry else name} "
            f"(any case) with images in {', '.join(d + '/' for d in HR_DIRS)} or directly inside. "
            f"{hint} --data-root / AESOP_BENCH_DATA at the folder that holds it."
        )
    hr_dir = find_child(root, HR_DIRS)
    lr_only = find_child(root, ("LR", "LR_x4", "test_LR"))
    if (entry is not None and not entry.has_hr) or (entry is None and hr_dir is None and lr_only is not None):
        folder = lr_only or root
        files = list_images(folder)
        if not files:
            raise AesopBenchError(f"set {name!r}: no images in {folder}")
        return ResolvedSet(name, root, None, files, {})
    hr_dir = hr_dir or root
    files = list_images(hr_dir)
    if not files:
        raise AesopBenchError(f"set {name!r}: no images in {hr_dir}; expected PNG/BMP/JPEG files there")
    return ResolvedSet(name, root, hr_dir, files, _lr_dirs(root))


def display_name(name: str) -> str:
    """A set's name in messages: a registered set's name, a folder's last component.

    >>> display_name("set5"), display_name("/data/mine/Faces")
    ('set5', 'Faces')
    """
    return Path(name).name if name not in SETS else name


def set_label(name: str) -> str:
    """A set as tables and plots show it: ``Set14``, ``DIV2K-val``; a folder by its name."""
    entry = SETS.get(name)
    return (entry.label or entry.folder) if entry else Path(name).name


def set_labels(names: list[str], short=None) -> dict[str, str]:
    """``short`` (default :func:`set_label`) of each set, with the folder as given where two sets of ``names``
    would share a label (``a/Faces`` and ``b/Faces`` are two sets).

    >>> set_labels(["set14", "a/Faces", "b/Faces"])
    {'set14': 'Set14', 'a/Faces': 'a/Faces', 'b/Faces': 'b/Faces'}
    """
    short = {n: (short or set_label)(n) for n in names}
    counts: dict[str, int] = {}
    for label in short.values():
        counts[label] = counts.get(label, 0) + 1
    return {n: label if counts[label] == 1 else n for n, label in short.items()}


def sr_subfolder(name: str) -> str:
    """The subfolder of a run's ``sr/`` that holds a set's saved SR images: a registered set's name; a folder's
    name followed by a hash of the set's name (its path as given), so that two folders of one name never share
    one.

    >>> sr_subfolder("set5"), sr_subfolder("a/Faces") != sr_subfolder("b/Faces")
    ('set5', True)
    """
    if name in SETS:
        return name
    import hashlib

    return f"{Path(name).name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def paper_set_name(name: str) -> str:
    """A set as the paper's tables name it."""
    entry = SETS.get(name)
    return (entry.paper_name or entry.name) if entry else name
