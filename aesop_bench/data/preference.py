"""Human judgements of images, read for ``aesop-bench iqa-alignment``: preference pairs (HGGT, SBS180K) and mean
opinion scores (a CSV of ``image,mos``; PIPAL).

**Pairs.** A :class:`Pair` is two image files and the side people preferred (``winner`` 0: ``a``, 1: ``b``).

* HGGT (Chen et al., CVPR 2023; read by :mod:`.hggt`): each set is an original HR and four enhanced GTs, each
  enhanced GT labelled ``Positive`` / ``Similar`` / ``Negative`` against the original by three annotators; the
  effective label is their majority (three different votes: ``Similar``, :func:`.hggt.effective_label`). One pair
  per enhanced GT: ``a`` = the original, ``b`` = the enhanced GT; ``Positive`` -> the enhanced GT is preferred,
  ``Negative`` -> the original is; ``Similar`` -> the pair is **excluded** (counted in :attr:`PairSet.excluded`).
  ``hggt:PATH`` takes HGGT's ``Test/`` folder (``GT/<set>/{images,labels}``), its ``Train/`` folder
  (``images/<group>``, ``labels/<group>``), one folder holding ``images/`` and ``labels/``, or one annotator's
  label file ``labels/{A,B,C}/NAME.json`` (that set alone; the other two annotators' files beside it).
* SBS180K (Khrulkov & Babenko, CVPR 2021): the dataset is distributed as one 37 GB archive
  (``NeuralSBS_dataset.zip``, github.com/KhrulkovV/NeuralSBS) whose label layout is not documented in the
  repository, so ``sbs:FILE`` reads this project's CSV: a header ``image_a,image_b,votes_a,votes_b`` (image paths
  relative to the CSV's folder, or absolute; votes: how many people preferred each side, non-negative
  integers). The side with more votes is preferred; a pair with equal votes is **excluded**.

**MOS.** :class:`MosSet` is image files with one score each (higher is better, as the file gives it).

* ``FILE.csv``: a header with ``image`` and ``mos`` columns (other columns ignored); paths as for SBS.
* ``pipal:DIR`` (PIPAL, Gu et al., ECCV 2020): IQA-PyTorch's layout, ``DIR/Dist_Imgs/`` with its meta-info CSV
  ``meta_info_PIPALDataset.csv`` (columns ``ref_name, dist_name, mos, ...``: the distorted image and its score are
  the second and third, as IQA-PyTorch's ``GeneralFRDataset`` reads them) in ``DIR``, ``DIR/meta_info/`` or
  ``DIR/../meta_info/``; or PIPAL's own release, ``DIR/Train_Label/*.txt`` (lines ``DIST_NAME,ELO``) with the
  images in ``DIR/Train_Dist/``. Only the distorted images are scored (the metrics are no-reference).

PIPAL's archive as IQA-PyTorch distributes it is pinned in :data:`ARCHIVES` and fetched by
:func:`fetch_archive` (sha256-verified, resumable, :mod:`aesop_bench.download`). IQA-PyTorch keeps the meta-info
CSV in another repository (``chaofengc/IQA-PyTorch-Datasets-metainfo``), for which no hash is published here.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, InputError, MissingFileError

PAIR_KINDS = ("hggt", "sbs")
SBS_COLUMNS = ("image_a", "image_b", "votes_a", "votes_b")
MOS_COLUMNS = ("image", "mos")
PIPAL_META = "meta_info_PIPALDataset.csv"


@dataclass(frozen=True)
class Pair:
    """Two image files and the side people preferred: ``winner`` 0 (``a``) or 1 (``b``); ``name`` says where the
    pair came from (HGGT: ``SET/GT``; SBS: the CSV's line)."""

    a: Path
    b: Path
    winner: int
    name: str = ""


@dataclass(frozen=True)
class PairSet:
    """The pairs of one source, with how many judgements were left out and by which rule."""

    source: str
    pairs: list[Pair]
    excluded: int = 0
    rule: str = ""

    @property
    def files(self) -> list[Path]:
        """Every image file of the pairs, each once, in order of appearance."""
        return list(dict.fromkeys(p for pair in self.pairs for p in (pair.a, pair.b)))


@dataclass(frozen=True)
class MosSet:
    """Image files and their mean opinion scores."""

    source: str
    images: list[Path]
    mos: list[float] = field(default_factory=list)


HGGT_RULE = ("HGGT: pair (original, enhanced GT); effective label Positive -> enhanced preferred, Negative -> "
             "original preferred, Similar -> excluded")
SBS_RULE = "SBS: the side with more votes is preferred; equal votes -> excluded"


def _split(spec: str, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind.lower() not in kinds or not rest:
        raise ConfigError(f"{what} {spec!r}: give {' or '.join(k + ':PATH' for k in kinds)}")
    return kind.lower(), rest


def read_pairs(spec: str) -> PairSet:
    """The pairs ``hggt:PATH`` or ``sbs:FILE`` names (module docstring); every image file is checked to exist."""
    kind, path = _split(spec, PAIR_KINDS, "--pairs")
    pairs = hggt_pairs(path) if kind == "hggt" else sbs_pairs(path)
    _check_files(pairs.files, spec)
    return pairs


def _check_files(files: list[Path], source: str) -> None:
    missing = [f for f in files if not f.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise MissingFileError(f"{source}: {len(missing)} image file(s) not found: {shown}")


# ---------------------------------------------------------------- HGGT


def _hggt_items(path: Path) -> list:
    from . import hggt

    if path.is_file():
        if path.suffix.lower() != ".json":
            raise InputError(f"{path}: not an HGGT label file (HGGT's labels are JSON files "
                             "labels/{A,B,C}/NAME.json); give one of them or HGGT's Test/ or Train/ folder")
        hggt.read_labels(path)  # refuses a file that is not HGGT's format, naming it
        labels_dir = path.parent.parent
        if path.parent.name not in hggt.ANNOTATORS:
            raise InputError(f"{path}: an HGGT label file lies in labels/A, labels/B or labels/C (HGGT's layout), "
                             f"not in {path.parent.name}/")
        items = [i for i in hggt.read_set(labels_dir.parent / "images", labels_dir) if i.name == path.stem]
        if not items:
            raise MissingFileError(f"{path}: no HGGT set {path.stem!r} in {labels_dir.parent / 'images'}")
        return items
    if not path.is_dir():
        raise MissingFileError(f"{path}: HGGT labels not found (give a label JSON or HGGT's Test/ or Train/ folder)")
    if (path / "GT").is_dir():
        return hggt.read_multigt(path, "test")
    if (path / "images").is_dir() and (path / "labels").is_dir():
        if (path / "images" / hggt.ORIGINAL).is_dir():
            return hggt.read_set(path / "images", path / "labels")
        return hggt.read_multigt(path, "train")
    raise InputError(f"{path}: not an HGGT folder (expected GT/<set>/images and labels, or images/ and labels/)")


def hggt_pairs(path: str | os.PathLike) -> PairSet:
    """HGGT's (original, enhanced GT) pairs under the rule of the module docstring."""
    from . import hggt

    pairs, excluded = [], 0
    for item in _hggt_items(Path(path)):
        for gt in hggt.ENHANCED:
            label = item.labels[gt]
            if label == hggt.SIMILAR:
                excluded += 1
                continue
            pairs.append(Pair(item.gts[hggt.ORIGINAL], item.gts[gt], 1 if label == hggt.POSITIVE else 0,
                              f"{item.group + '/' if item.group else ''}{item.name}/{gt}"))
    return PairSet(f"hggt:{path}", pairs, excluded, HGGT_RULE)


# ---------------------------------------------------------------- CSV readers (SBS, MOS)


def _rows(path: Path, columns: tuple[str, ...], what: str) -> list[tuple[int, dict]]:
    """The rows of a CSV file with a header holding ``columns``, each with its line number."""
    if not path.is_file():
        raise MissingFileError(f"{path}: {what} file not found")
    if path.suffix.lower() != ".csv":
        raise InputError(f"{path}: unknown {what} format {path.suffix or '(no suffix)'!r}; give a CSV with the "
                         f"header {','.join(columns)}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            absent = [c for c in columns if c not in header]
            if absent:
                raise InputError(f"{path}: column(s) {', '.join(absent)} missing; a {what} CSV has the header "
                                 f"{','.join(columns)} (found: {','.join(header) or 'nothing'})")
            rows = [(reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items()})
                    for row in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no rows under the header")
    return rows


def _number(path: Path, line: int, column: str, text: str, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (integer and value < 0):
        raise InputError(f"{path}, line {line}: {column}={text!r} is not a "
                         f"{'non-negative integer' if integer else 'finite number'}")
    return value


def _image(path: Path, text: str, line: int, column: str) -> Path:
    if not text:
        raise InputError(f"{path}, line {line}: {column} is empty")
    p = Path(text)
    return p if p.is_absolute() else path.parent / p


def sbs_pairs(path: str | os.PathLike) -> PairSet:
    """The pairs of an SBS CSV (module docstring): the side with more votes wins, equal votes are excluded."""
    path = Path(path)
    pairs, excluded = [], 0
    for line, row in _rows(path, SBS_COLUMNS, "SBS pairs"):
        va, vb = (_number(path, line, c, row[c], integer=True) for c in ("votes_a", "votes_b"))
        if va == vb:
            excluded += 1
            continue
        pairs.append(Pair(_image(path, row["image_a"], line, "image_a"), _image(path, row["image_b"], line, "image_b"),
                          0 if va > vb else 1, f"line {line}"))
    return PairSet(f"sbs:{path}", pairs, excluded, SBS_RULE)


def read_mos(spec: str) -> MosSet:
    """The MOS set ``FILE.csv`` or ``pipal:DIR`` names (module docstring); every image file is checked to exist."""
    kind, sep, rest = str(spec).partition(":")
    if sep and kind.lower() == "pipal":
        out = pipal_mos(rest)
    elif sep and kind.lower() == "csv":
        out = mos_csv(rest)
    else:
        out = mos_csv(spec)
    _check_files(out.images, spec)
    return out


def mos_csv(path: str | os.PathLike) -> MosSet:
    """Images and scores of a CSV with ``image`` and ``mos`` columns."""
    path = Path(path)
    images, mos = [], []
    for line, row in _rows(path, MOS_COLUMNS, "MOS"):
        images.append(_image(path, row["image"], line, "image"))
        mos.append(_number(path, line, "mos", row["mos"]))
    return MosSet(f"csv:{path}", images, mos)


def _pipal_meta(root: Path) -> Path | None:
    for folder in (root, root / "meta_info", root.parent / "meta_info"):
        if (folder / PIPAL_META).is_file():
            return folder / PIPAL_META
    return None


def pipal_mos(root: str | os.PathLike) -> MosSet:
    """PIPAL's distorted images and scores, from IQA-PyTorch's layout or PIPAL's own (module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"{root}: PIPAL folder not found (fetch it: aesop_bench.data.preference."
                               f"fetch_archive('pipal', DEST), then give pipal:DEST/PIPAL)")
    meta = _pipal_meta(root)
    images, mos = [], []
    if meta is not None and (root / "Dist_Imgs").is_dir():
        try:
            with open(meta, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{meta}: not a readable CSV ({exc})") from None
        for line, row in enumerate(rows[1:], start=2):  # the first line is IQA-PyTorch's header
            if len(row) < 3:
                raise InputError(f"{meta}, line {line}: expected ref_name, dist_name, mos; got {row}")
            images.append(root / "Dist_Imgs" / row[1].strip())
            mos.append(_number(meta, line, "mos", row[2].strip()))
    elif (root / "Train_Label").is_dir():
        for label in sorted((root / "Train_Label").glob("*.txt")):
            for line, text in enumerate(label.read_text(encoding="utf-8").splitlines(), start=1):
                if not text.strip():
                    continue
                name, _, score = text.partition(",")
                if not score:
                    raise InputError(f"{label}, line {line}: expected DIST_NAME,ELO; got {text!r}")
                images.append(root / "Train_Dist" / name.strip())
                mos.append(_number(label, line, "ELO", score.strip()))
    else:
        raise InputError(f"{root}: not a PIPAL folder: expected Dist_Imgs/ with {PIPAL_META} (IQA-PyTorch's layout) "
                         "or Train_Label/*.txt with Train_Dist/ (PIPAL's release)")
    if not images:
        raise InputError(f"{root}: PIPAL's labels list no image")
    return MosSet(f"pipal:{root}", images, mos)


# ---------------------------------------------------------------- pinned archives


@dataclass(frozen=True)
class PinnedArchive:
    """A dataset archive at a fixed URL with its sha256 and size in bytes."""

    name: str
    url: str
    sha256: str
    bytes: int
    holds: str


ARCHIVES: dict[str, PinnedArchive] = {a.name: a for a in [
    # IQA-PyTorch's dataset repository on the Hugging Face Hub (pyiqa/data/dataset_api.py: 'pipal': 'pipal.tar' in
    # chaofengc/IQA-PyTorch-Datasets); the LFS object's sha256 and size
    PinnedArchive("pipal", "https://huggingface.co/datasets/chaofengc/IQA-PyTorch-Datasets/resolve/main/pipal.tar",
                  "6bcb713ba0f9ad9ff6c11fc4c680ec88e633a674d16dc9d0700786d24b40f6b4", 5_843_353_600,
                  "PIPAL's images as IQA-PyTorch packs them (Dist_Imgs/, Train_Ref/)"),
]}


def fetch_archive(name: str, dest: str | os.PathLike, extract: bool = True, archive: PinnedArchive | None = None,
                  progress=None) -> Path:
    """Download the pinned archive ``name`` (or ``archive``) into ``dest``, verify its sha256 and size, and
    (``extract``) unpack it there; the archive's path. A file already there with the right hash is kept."""
    from ..download import extract as unpack
    from ..download import fetch

    a = archive or ARCHIVES.get(name)
    if a is None:
        raise ConfigError(f"unknown archive {name!r}; one of {', '.join(ARCHIVES)}")
    target = Path(dest) / Path(a.url.split("?")[0]).name
    fetch(a.url, target, a.sha256, progress=progress)
    if target.stat().st_size != a.bytes:
        raise InputError(f"{target}: {target.stat().st_size} bytes, the pinned {a.name} archive has {a.bytes}")
    if extract:
        unpack(target, dest)
    return target


__all__ = ["Pair", "PairSet", "MosSet", "PinnedArchive", "ARCHIVES", "read_pairs", "hggt_pairs", "sbs_pairs",
           "read_mos", "mos_csv", "pipal_mos", "fetch_archive", "HGGT_RULE", "SBS_RULE"]
