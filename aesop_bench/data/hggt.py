"""HGGT (Chen et al., CVPR 2023): sets of one original HR and four enhanced GTs, each enhanced GT labelled by three
annotators; and the ways of choosing one GT of a set to train against.

**Layout** (HGGT's ``README.md`` and ``PosNegGTSR/datasets/README.md``). Training::

    Train/images/<group>/{original,01,02,03,04}/   NAME.png, NAME_01.png, ..., NAME_04.png
    Train/labels/<group>/{A,B,C}/NAME.json         one file per annotator

(``<group>`` is ``0-20193`` in the distributed archive; training LR images are made online, so items have no
LR file.) Test::

    Test/GT/Test-100/images/{original,01,02,03,04}/
    Test/GT/Test-100/labels/{A,B,C}/NAME.json
    Test/Blind_Degradation_Benchmark_LQ/Test-100/Blind_LR/NAME.png

**Label file.** A JSON object ``{"Picture_1": {"Name": "NAME.png", "File": "original", "Label": null},
"Picture_2": {"Name": "NAME_01.png", "File": "01", "Label": "Positive"}, ..., "Picture_5": {...},
"Time_cost": {...}}``. HGGT's code reads ``Picture_2`` .. ``Picture_5`` as the labels of ``01`` .. ``04`` by
position (``posneggtpos_dataset.py``, ``calculate_multigt_labeled_*.py``); here a ``File`` that disagrees with
that position is refused rather than trusted either way. Labels are ``Positive``, ``Similar``, ``Negative``.

**Effective label.** The most common of the three votes; three different votes give ``Similar``
(``PosNegGTPosDataset``'s docstring and ``find_max_repetition``). HGGT trains only on sets with at least one
effective ``Positive`` (``filter_no_effective_set``): :func:`read_multigt` returns every set, and
:attr:`MultiGTItem.positives` is empty for the others.

**Samplers** (Zhang et al., CVPR 2025, on HGGT), each ``pick(item, generator, patches=None) -> GT name``:

* :class:`UPos`: uniform over the effective positives (HGGT's own: ``random.choice`` over ``label == Positive``
  in ``ldl_posgt_model.py`` ``train_net_g``, once per image of the batch, the same GT for every loss term).
* :class:`SMA`: softmax of ``score / tau`` over precomputed NR-IQA scores of all five GTs.
* :class:`SMP`: the same softmax over the effective positives only.
* :class:`AMO`: the same patch cropped from all five GTs, scored online by ``score_fn``; the best one (first
  on ties).

Unknowns: the temperature ``tau`` is not published; :data:`DEFAULT_TAU` (1.0) is a placeholder and is only
meaningful relative to the scale of the scores (MUSIQ ~0-100, TOPIQ-NR 0-1, NIMA 1-10): pass the one that fits.
For a score where lower is better, ``lower_better=True`` negates it (softmax of ``-score / tau``; AMO takes the
minimum), so a better GT is always the more likely one.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, InputError, MissingFileError

POSITIVE, SIMILAR, NEGATIVE = "Positive", "Similar", "Negative"
LABELS = (POSITIVE, SIMILAR, NEGATIVE)
ORIGINAL = "original"
ENHANCED = ("01", "02", "03", "04")
GT_NAMES = (ORIGINAL,) + ENHANCED
ANNOTATORS = ("A", "B", "C")
PICTURES = {f"Picture_{i + 2}": gt for i, gt in enumerate(ENHANCED)}  # label entry -> GT folder (by position)
SPLITS = ("train", "test")
TEST_LR = ("Blind_Degradation_Benchmark_LQ", "Blind_LR")  # Test/<this>/<set>/<that>/NAME.png
DEFAULT_TAU = 1.0  # not published; see the module docstring


def effective_label(votes: Sequence[str]) -> str:
    """The effective label of three annotators' ``votes``: the majority; all three different -> ``Similar``."""
    votes = tuple(votes)
    for v in votes:
        if v not in LABELS:
            raise InputError(f"unknown HGGT label {v!r}; expected one of {', '.join(LABELS)}")
    if len(votes) != len(ANNOTATORS):
        raise InputError(f"an HGGT label needs {len(ANNOTATORS)} votes, got {len(votes)}: {votes}")
    label, count = Counter(votes).most_common(1)[0]
    return label if count > 1 else SIMILAR


def read_labels(path: str | Path) -> dict[str, str]:
    """One annotator's labels of a set, ``{"01": "Positive", ..., "04": ...}``, from HGGT's label JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingFileError(f"{path}: HGGT label file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable HGGT label file (JSON): {e}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: an HGGT label file holds a JSON object with Picture_1..Picture_5, "
                         f"not {type(data).__name__}")
    out = {}
    for key, gt in PICTURES.items():
        entry = data.get(key)
        if not isinstance(entry, dict) or "Label" not in entry:
            raise InputError(f"{path}: {key} is missing or has no 'Label' (HGGT's {key} is the label of GT {gt})")
        if "File" in entry and str(entry["File"]) != gt:
            raise InputError(f"{path}: {key} has File {entry['File']!r}; HGGT reads {key} as GT {gt!r}")
        if entry["Label"] not in LABELS:
            raise InputError(f"{path}: {key} has unknown label {entry['Label']!r}; expected one of "
                             f"{', '.join(LABELS)}")
        out[gt] = entry["Label"]
    return out


@dataclass(frozen=True)
class MultiGTItem:
    """One HGGT set: its name (the original's stem), LR file (test only), the five GT files and the labels."""

    name: str
    gts: dict[str, Path]  # "original", "01".."04" -> file
    labels: dict[str, str]  # "01".."04" -> effective label
    votes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # "01".."04" -> (A, B, C)
    label_files: tuple[Path, ...] = ()
    lr: Path | None = None
    group: str = ""

    @property
    def positives(self) -> tuple[str, ...]:
        """The enhanced GTs whose effective label is ``Positive``, in folder order."""
        return tuple(g for g in ENHANCED if self.labels.get(g) == POSITIVE)


def gt_file(images_dir: Path, name: str, gt: str) -> Path:
    """Where GT ``gt`` of set ``name`` is: ``original/NAME.png`` or ``01/NAME_01.png``."""
    return images_dir / gt / (f"{name}.png" if gt == ORIGINAL else f"{name}_{gt}.png")


def _names(images_dir: Path, labels_dir: Path) -> list[str]:
    names = set()
    for folder, suffix in ((images_dir / ORIGINAL, ".png"), *((labels_dir / a, ".json") for a in ANNOTATORS)):
        if folder.is_dir():
            names.update(p.stem for p in folder.iterdir()
                         if p.is_file() and p.suffix.lower() == suffix and not p.name.startswith("."))
    return sorted(names)


def read_set(images_dir: str | Path, labels_dir: str | Path, lr_dir: str | Path | None = None,
             group: str = "") -> list[MultiGTItem]:
    """The sets of one HGGT folder pair (``images/`` with the five GT folders, ``labels/`` with ``A``, ``B``,
    ``C``), sorted by name. A set is any name with an original image or a label file; one without all five GTs
    and three label files is refused, naming every missing file."""
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise MissingFileError(f"{folder}: HGGT folder not found")
    names = _names(images_dir, labels_dir)
    if not names:
        raise MissingFileError(f"{images_dir}: no HGGT set (no {ORIGINAL}/*.png, no {labels_dir}/A/*.json)")
    missing, items = [], []
    for name in names:
        gts = {gt: gt_file(images_dir, name, gt) for gt in GT_NAMES}
        label_files = tuple(labels_dir / a / f"{name}.json" for a in ANNOTATORS)
        absent = [p for p in (*gts.values(), *label_files) if not p.is_file()]
        if absent:
            missing.extend(absent)
            continue
        per_annotator = [read_labels(p) for p in label_files]
        votes = {gt: tuple(lab[gt] for lab in per_annotator) for gt in ENHANCED}
        lr = None
        if lr_dir is not None and (Path(lr_dir) / f"{name}.png").is_file():
            lr = Path(lr_dir) / f"{name}.png"
        items.append(MultiGTItem(name=name, gts=gts, labels={g: effective_label(v) for g, v in votes.items()},
                                 votes=votes, label_files=label_files, lr=lr, group=group))
    if missing:
        shown = ", ".join(str(p) for p in missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10
                                                            else "")
        raise MissingFileError(f"{images_dir}: {len(missing)} file(s) of HGGT sets missing: {shown}. Each set "
                               f"needs {ORIGINAL}/NAME.png, 01..04/NAME_0k.png and labels A, B, C/NAME.json")
    return items


def read_multigt(root: str | Path, split: str) -> list[MultiGTItem]:
    """Every set of HGGT's ``Train/`` (``split="train"``: each group of ``images/``) or ``Test/``
    (``split="test"``: each set of ``GT/``, with its ``Blind_LR`` file where present), in folder order."""
    root = Path(root)
    if split not in SPLITS:
        raise ConfigError(f"unknown HGGT split {split!r}; use one of {', '.join(SPLITS)}")
    if not root.is_dir():
        raise MissingFileError(f"{root}: HGGT folder not found (the {'Train' if split == 'train' else 'Test'}/ "
                               "folder of HGGT's archive)")
    if split == "train":
        base, pairs = root / "images", []
        for g in sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            pairs.append((g, base / g, root / "labels" / g, None))
    else:
        base, pairs = root / "GT", []
        for s in sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            pairs.append((s, base / s / "images", base / s / "labels", root / TEST_LR[0] / s / TEST_LR[1]))
    if not pairs:
        raise MissingFileError(f"{base}: no HGGT {split} folders found (expected "
                               + ("images/<group>/ and labels/<group>/)" if split == "train"
                                  else "GT/<set>/images/ and GT/<set>/labels/)"))
    items = []
    for group, images, labels, lr in pairs:
        items.extend(read_set(images, labels, lr, group=group))
    return items


# ---------------------------------------------------------------- samplers


def _check_tau(tau: float) -> float:
    if not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ConfigError(f"tau={tau!r}: the softmax temperature must be a finite number > 0")
    return float(tau)


def _draw(values: Sequence[float], tau: float, lower_better: bool, generator: torch.Generator) -> int:
    logits = torch.tensor(values, dtype=torch.float64) / tau
    probs = torch.softmax(-logits if lower_better else logits, dim=0)
    return int(torch.multinomial(probs, 1, generator=generator).item())


class UPos:
    """Uniform over the set's effective positives (HGGT's own sampler)."""

    def pick(self, item: MultiGTItem, generator: torch.Generator, patches=None) -> str:
        pos = item.positives
        if not pos:
            raise InputError(f"HGGT set {item.name!r} has no effective Positive GT (labels {item.labels}); "
                             "HGGT drops such sets from training")
        return pos[int(torch.randint(len(pos), (1,), generator=generator).item())]


class _Softmax:
    def __init__(self, scores: Mapping[str, Mapping[str, float]], tau: float = DEFAULT_TAU,
                 lower_better: bool = False):
        self.scores, self.tau, self.lower_better = scores, _check_tau(tau), bool(lower_better)

    def candidates(self, item: MultiGTItem) -> tuple[str, ...]:
        raise NotImplementedError

    def probabilities(self, item: MultiGTItem) -> dict[str, float]:
        """Each candidate GT's probability of being picked."""
        cands = self.candidates(item)
        values = self._values(item, cands)
        logits = torch.tensor(values, dtype=torch.float64) / self.tau
        probs = torch.softmax(-logits if self.lower_better else logits, dim=0)
        return dict(zip(cands, probs.tolist()))

    def _values(self, item: MultiGTItem, cands) -> list[float]:
        if item.name not in self.scores:
            raise InputError(f"no NR-IQA scores for HGGT set {item.name!r}")
        row = self.scores[item.name]
        absent = [g for g in cands if g not in row]
        if absent:
            raise InputError(f"HGGT set {item.name!r}: no NR-IQA score for GT(s) {', '.join(absent)}")
        values = [float(row[g]) for g in cands]
        if not all(math.isfinite(v) for v in values):
            raise InputError(f"HGGT set {item.name!r}: non-finite NR-IQA score in {dict(zip(cands, values))}")
        return values

    def pick(self, item: MultiGTItem, generator: torch.Generator, patches=None) -> str:
        cands = self.candidates(item)
        return cands[_draw(self._values(item, cands), self.tau, self.lower_better, generator)]


class SMA(_Softmax):
    """Softmax of ``score / tau`` over all five GTs' precomputed scores (``scores[item name][gt name]``)."""

    def candidates(self, item: MultiGTItem) -> tuple[str, ...]:
        return GT_NAMES


class SMP(_Softmax):
    """Softmax of ``score / tau`` over the effective positives' precomputed scores."""

    def candidates(self, item: MultiGTItem) -> tuple[str, ...]:
        if not item.positives:
            raise InputError(f"HGGT set {item.name!r} has no effective Positive GT (labels {item.labels})")
        return item.positives


class AMO:
    """The GT whose patch ``score_fn`` scores best: ``patches`` maps each of the five GT names to the same crop
    (C, H, W); ``score_fn`` takes them stacked (5, C, H, W) in :data:`GT_NAMES` order and returns 5 scores.
    The first of equal scores wins; the generator is not used (the choice is deterministic)."""

    def __init__(self, score_fn: Callable[[torch.Tensor], torch.Tensor], lower_better: bool = False):
        if not callable(score_fn):
            raise ConfigError(f"AMO needs a callable score_fn, got {type(score_fn).__name__}")
        self.score_fn, self.lower_better = score_fn, bool(lower_better)

    def pick(self, item: MultiGTItem, generator: torch.Generator | None = None,
             patches: Mapping[str, torch.Tensor] | None = None) -> str:
        if patches is None or set(patches) != set(GT_NAMES):
            raise InputError(f"AMO needs the same patch of each GT of set {item.name!r} "
                             f"({', '.join(GT_NAMES)}), got {sorted(patches or {})}")
        batch = torch.stack([patches[g] for g in GT_NAMES])
        with torch.no_grad():
            scores = torch.as_tensor(self.score_fn(batch)).detach().reshape(-1).to(torch.float64).cpu()
        if scores.numel() != len(GT_NAMES) or not torch.isfinite(scores).all():
            raise InputError(f"AMO: score_fn returned {scores.tolist()} for set {item.name!r}; expected "
                             f"{len(GT_NAMES)} finite scores")
        if self.lower_better:
            scores = -scores
        return GT_NAMES[int(torch.nonzero(scores == scores.max())[0].item())]
