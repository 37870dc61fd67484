"""Training on a multi-GT set (HGGT's layout, :mod:`aesop_bench.data.hggt`): each image's LR and, per sample, one
of its five GTs chosen by a sampler (Zhang et al., CVPR 2025: UPos, SMA, SMP, AMO).

* The LR is MATLAB bicubic of the original GT (cropped to a multiple of ``data.modcrop``), made once per image.
  HGGT makes it online with a one-stage Real-ESRGAN-style degradation of the original instead; that degradation is
  not built here, so a config names what it trains on.
* A sample is an LR-aligned random crop of ``data.patch`` HR pixels, the same window in all five GTs, with the
  eight dihedral transforms (``data.flip``, ``data.rot``), all from (seed, epoch, index) as
  :class:`~aesop_bench.train.data.PairedPatches` draws them, so any step's batch can be made again.
* ``upos``, ``sma``, ``smp``: the GT is picked in the dataset from a generator seeded by (seed, epoch, index), and
  the sample is ``(lr, hr)``. ``amo``: the sample is ``(lr, gts)`` with the five GT patches (``GT_NAMES`` order)
  and :class:`OnlineBest` picks the one the metric scores best, on the training device (HGGT's rule for the losses
  holds: one GT per image, the same for every term).
* Sets without an effective positive are left out (HGGT's ``filter_no_effective_set``).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import hggt
from ..data.transforms import matlab_lr, mod_crop, to_rgb
from ..errors import AesopBenchError, ConfigError, InputError
from ..imageio import read_image
from .config import DataConfig, MultiGTConfig
from .data import aligned_patch


def training_items(root: Path) -> list[hggt.MultiGTItem]:
    """The sets of a multi-GT ``Train/`` folder that have an effective positive, sorted by group and name."""
    items = [i for i in hggt.read_multigt(root, "train") if i.positives]
    if not items:
        raise AesopBenchError(f"{root}: no multi-GT set with an effective Positive GT (HGGT trains on those only)")
    return items


def read_scores(path: Path, items: list[hggt.MultiGTItem]) -> dict[str, dict[str, float]]:
    """Precomputed NR-IQA scores ``{set name: {gt name: score}}`` (:func:`write_scores`), every training set's five
    GTs present and finite; a missing or bad entry is an error naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: the multi-GT scores file does not exist (data.multigt.scores); make it with "
                         "aesop_bench.train.multigt.write_scores") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a JSON file of scores ({e})") from None
    scores = data.get("scores", data) if isinstance(data, dict) else None
    if not isinstance(scores, dict):
        raise InputError(f"{path}: expected a JSON object {{set name: {{gt name: score}}}}")
    for item in items:
        got = scores.get(item.name)
        bad = [g for g in hggt.GT_NAMES if not isinstance(got, dict) or not isinstance(got.get(g), (int, float))
               or not math.isfinite(got[g])]
        if bad:
            raise InputError(f"{path}: set {item.name} has no finite score for GT(s) {', '.join(bad)}")
    return scores


def sampler_of(m: MultiGTConfig, items: list[hggt.MultiGTItem], data_root: Path):
    """The dataset-side sampler of ``m`` (None for ``amo``, which picks on the training device)."""
    if m.sampler == "upos":
        return hggt.UPos()
    if m.sampler in ("sma", "smp"):
        scores = read_scores(_under(data_root, m.scores), items)
        lower = bool(_score_meta(_under(data_root, m.scores)).get("lower_better", False))
        return (hggt.SMA if m.sampler == "sma" else hggt.SMP)(scores, tau=m.tau, lower_better=lower)
    if m.sampler == "amo":
        return None
    raise ConfigError(f"config data.multigt.sampler: {m.sampler!r}")


def _under(root: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else root / p


def _score_meta(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k != "scores"} if "scores" in data else {}


class MultiGTPatches(Dataset):
    """Samples of a multi-GT set's ``items`` (see the module's note); item ``(epoch, index)``."""

    def __init__(self, items: list[hggt.MultiGTItem], data: DataConfig, seed: int = 0, sampler=None):
        self.items, self.patch, self.scale, self.modcrop = items, data.patch, data.scale, data.modcrop
        self.seed, self.flip, self.rot, self.sampler = seed, data.flip, data.rot, sampler
        self._load = lru_cache(maxsize=64)(self._images)

    def __len__(self) -> int:
        return len(self.items)

    def _images(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[index]
        gts = [mod_crop(to_rgb(read_image(item.gts[g])), self.modcrop) for g in hggt.GT_NAMES]
        if any(t.shape != gts[0].shape for t in gts):
            raise InputError(f"{item.gts['original']}: the five GTs of set {item.name} differ in size "
                             f"({', '.join(str(tuple(t.shape[-2:])) for t in gts)}); a multi-GT set's GTs are aligned")
        if min(gts[0].shape[-2:]) < self.patch:
            raise InputError(f"{item.gts['original']}: smaller ({tuple(gts[0].shape[-2:])}) than the HR patch "
                             f"{self.patch}")
        return matlab_lr(gts[0], self.scale), torch.stack(gts)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        lr, gts = self._load(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        lr, gts = aligned_patch(rng, lr, gts, self.patch, self.scale, self.flip, self.rot)
        lr, gts = lr.float() / 255, gts.float() / 255
        if self.sampler is None:
            return lr, gts
        g = torch.Generator().manual_seed(int(rng.integers(0, 2 ** 62)))
        return lr, gts[hggt.GT_NAMES.index(self.sampler.pick(self.items[index], g))]


class OnlineBest:
    """AMO on a batch: of each image's five GT patches ``(N, 5, 3, P, P)``, the one ``score`` rates best
    (:class:`aesop_bench.data.hggt.AMO`: higher better unless ``lower_better``, first on ties, no gradient)."""

    def __init__(self, score, lower_better: bool = False):
        self.amo = hggt.AMO(score, lower_better)

    def __call__(self, gts: torch.Tensor) -> torch.Tensor:
        picks = []
        for i, five in enumerate(gts):
            image = hggt.MultiGTItem(name=f"image {i} of the batch", gts={}, labels={})
            picks.append(hggt.GT_NAMES.index(self.amo.pick(image, None, dict(zip(hggt.GT_NAMES, five)))))
        return gts[torch.arange(len(gts)), torch.tensor(picks)]


def write_scores(items: list[hggt.MultiGTItem], metric: str, path: Path, device: str = "cpu", log=print) -> dict:
    """Score every GT of ``items`` with the no-reference ``metric`` (its network as the ``nriqa`` loss builds it,
    on the whole image) and write ``{"metric", "lower_better", "scores": {set: {gt: score}}}`` to ``path``
    (atomically), for the ``sma`` and ``smp`` samplers."""
    from ..fileutil import atomic_write_json
    from .nriqa import NRIQALoss

    net = NRIQALoss(metric, device=device)
    scores = {}
    with torch.no_grad():
        for item in items:
            batch = torch.stack([to_rgb(read_image(item.gts[g])).float() / 255 for g in hggt.GT_NAMES]).to(device)
            scores[item.name] = {g: float(v) for g, v in zip(hggt.GT_NAMES, net.score(batch).tolist())}
    out = {"metric": net.metric, "lower_better": net.lower_better, "scores": scores}
    atomic_write_json(Path(path), out)
    log(f"{len(scores)} sets x {len(hggt.GT_NAMES)} GTs scored by {metric}: {path}")
    return out
