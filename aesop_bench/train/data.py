"""Paired training data: HR folders, LR from LR folders or made with MATLAB bicubic, random patches.

* The paper's data (``aesop-bench data prepare-train``, :func:`prepare_train`): every HR image cropped to a
  multiple of 12, its LR made from the whole image with MATLAB bicubic on the double path and rounded once,
  then both cut into aligned sub-images (HR 480 px every 240, LR 120 every 60, a last crop flush with the
  border wherever pixels would be left, as BasicSR's ``extract_subimages`` with ``thresh_size`` 0).
* Training reads HR folders and the LR image of the same name from the LR folders, which must hold as many
  images as the HR folders (BasicSR's ``paired_paths_from_folder`` asserts it); with ``make_lr`` the LR is made
  from each (sub-)image on the fly instead, which differs from the whole-image LR within two pixels of every
  sub-image border; cached per image.
* Patches: an LR-aligned random crop of ``patch`` HR pixels, random horizontal flip, vertical flip and
  transposition (the eight dihedral transforms).
* Reproducible and resumable: the order of samples is a permutation per epoch drawn from (seed, epoch),
  and each sample's crop and flips from (seed, epoch, index), so any step's batch can be rebuilt without
  replaying the ones before it, with any number of DataLoader workers or ranks.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..data.sets import list_images
from ..data.transforms import matlab_lr, mod_crop, to_rgb  # matlab_lr: also the paper protocol's made LR
from ..errors import AesopBenchError
from ..imageio import read_image
from .config import DataConfig


def training_images(folders: list[Path]) -> list[Path]:
    """The images of the training folders, each folder's sorted by name, in the folders' order."""
    files = []
    for folder in folders:
        if not folder.is_dir():
            raise AesopBenchError(f"training folder {folder} does not exist; check data.hr_dirs and --data-root")
        files += list_images(folder)
    if not files:
        raise AesopBenchError(f"no training images in {', '.join(map(str, folders))}")
    return files


class PairedPatches(Dataset):
    """``(lr, hr)`` patches of ``hr_files`` as ``data`` says (patch, scale, modcrop, flip, rot, make_lr), the LR
    read from ``lr_dirs`` (``data.lr_dirs`` resolved against the data root); item ``(epoch, index)``.

    >>> from aesop_bench.train.config import DataConfig
    >>> ds = PairedPatches([], DataConfig(patch=48, make_lr=True), seed=3)
    >>> len(ds), ds.patch, ds.scale
    (0, 48, 4)
    """

    def __init__(self, hr_files: list[Path], data: "DataConfig", seed: int = 0, lr_dirs: list[Path] | None = None):
        self.hr_files, self.patch, self.scale, self.modcrop = hr_files, data.patch, data.scale, data.modcrop
        self.seed, self.lr_dirs, self.flip, self.rot = seed, lr_dirs or [], data.flip, data.rot
        self.make_lr = data.make_lr
        if not self.make_lr:
            check_paired_counts(hr_files, self.lr_dirs)
        self._lr_cache = lru_cache(maxsize=256)(self._load_pair)

    def __len__(self) -> int:
        return len(self.hr_files)

    def _load_pair(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.hr_files[index]
        hr = mod_crop(to_rgb(read_image(f)), self.modcrop)
        lr = None
        for d in self.lr_dirs:
            for name in (f.name, f"{f.stem}x{self.scale}.png", f"{f.stem}.png"):
                if (d / name).is_file():
                    lr = to_rgb(read_image(d / name))
                    break
            if lr is not None:
                break
        if lr is None:
            if not self.make_lr:
                raise AesopBenchError(
                    f"{f}: no LR image of that name in {', '.join(map(str, self.lr_dirs)) or 'data.lr_dirs (empty)'}. "
                    "Prepare the data as the paper did with `aesop-bench data prepare-train HR_DIR --dst DIR`, or "
                    "set data.make_lr=true to make LR from each image on the fly")
            lr = matlab_lr(hr, self.scale)
        if lr.shape[-2] * self.scale != hr.shape[-2] or lr.shape[-1] * self.scale != hr.shape[-1]:
            raise AesopBenchError(f"{f}: LR size {tuple(lr.shape[-2:])} x{self.scale} does not match HR "
                                  f"{tuple(hr.shape[-2:])} after modcrop {self.modcrop}")
        if hr.shape[-2] < self.patch or hr.shape[-1] < self.patch:
            raise AesopBenchError(f"{f}: smaller ({tuple(hr.shape[-2:])}) than the HR patch {self.patch}")
        return lr, hr

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item
        lr, hr = self._lr_cache(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        lr, hr = aligned_patch(rng, lr, hr, self.patch, self.scale, self.flip, self.rot)
        return lr.float() / 255, hr.float() / 255


def aligned_patch(rng: np.random.Generator, lr: torch.Tensor, hr: torch.Tensor, patch: int, scale: int,
                  flip: bool, rot: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """An LR-aligned random crop of ``patch`` HR pixels (``hr``'s last two dimensions; any before them, e.g.
    several aligned GTs, are cropped alike), then a random horizontal flip (``flip``), vertical flip and
    transposition (``rot``), drawn from ``rng`` in that order."""
    p = patch // scale
    y = int(rng.integers(0, lr.shape[-2] - p + 1))
    x = int(rng.integers(0, lr.shape[-1] - p + 1))
    lr = lr[..., y:y + p, x:x + p]
    hr = hr[..., y * scale:(y + p) * scale, x * scale:(x + p) * scale]
    hflip, vflip, transpose = (rng.random(3) < 0.5).tolist()
    for flag, enabled, fn in ((hflip, flip, lambda t: t.flip(-1)), (vflip, rot, lambda t: t.flip(-2)),
                              (transpose, rot, lambda t: t.transpose(-1, -2))):
        if flag and enabled:
            lr, hr = fn(lr), fn(hr)
    return lr, hr


def check_paired_counts(hr_files: list[Path], lr_dirs: list[Path]) -> None:
    """Refuse LR folders that hold another number of images than the HR folders, as BasicSR's
    ``paired_paths_from_folder`` does (``assert len(input_paths) == len(gt_paths)``): an LR folder with a stray
    or missing file, or made from another HR set, is caught before training instead of pairing what happens to
    share a name. LR folders that do not exist are left to the per-image error, which names the command that
    makes them.

    >>> check_paired_counts([], [])
    """
    lr_dirs = [d for d in lr_dirs if d.is_dir()]
    if not lr_dirs:
        return
    n_lr = sum(len(list_images(d)) for d in lr_dirs)
    if n_lr != len(hr_files):
        hr_dirs = list(dict.fromkeys(f.parent for f in hr_files))
        raise AesopBenchError(
            f"the HR folder(s) {', '.join(map(str, hr_dirs)) or '(none)'} hold {len(hr_files)} images but the LR "
            f"folder(s) {', '.join(map(str, lr_dirs))} hold {n_lr}; each HR image needs the LR image of the same "
            "name and nothing else. Make both with `aesop-bench data prepare-train HR_DIR --dst DIR`, or check "
            "data.hr_dirs and data.lr_dirs")


class StepSampler(Sampler):
    """Yields (epoch, index) for this rank's share of each global batch, from ``start_step`` on."""

    def __init__(self, n: int, global_batch: int, seed: int, start_step: int = 0, rank: int = 0, world: int = 1):
        if global_batch % world:
            raise AesopBenchError(f"data.batch {global_batch} must be divisible by the {world} processes")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.start_step, self.rank, self.world = start_step, rank, world

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 7]).permutation(self.n)

    def __iter__(self):
        per = self.global_batch // self.world
        pos = self.start_step * self.global_batch
        orders: dict[int, np.ndarray] = {}
        while True:
            batch = []
            for k in range(pos, pos + self.global_batch):
                epoch, i = divmod(k, self.n)
                if epoch not in orders:
                    orders = {epoch: self._order(epoch), **{e: o for e, o in orders.items() if e == epoch - 1}}
                batch.append((epoch, int(orders[epoch][i])))
            yield from batch[self.rank * per:(self.rank + 1) * per]
            pos += self.global_batch


def extract_subimages(src: Path, dst: Path, crop: int = 480, step: int = 240, thresh: int = 0) -> int:
    """Crop every image of ``src`` into ``crop``-pixel sub-images every ``step`` pixels, with a last crop flush
    with the border when more than ``thresh`` pixels would be left (BasicSR's ``extract_subimages``; the paper's
    data used ``thresh_size`` 0). An image smaller than ``crop`` in a dimension is kept whole there."""
    from ..imageio import write_image

    dst.mkdir(parents=True, exist_ok=True)
    count = 0
    for f in training_images([src]):
        for name, sub in _subimages(f.stem, read_image(f), crop, step, thresh):
            write_image(dst / name, sub)
            count += 1
    return count


def _subimages(stem: str, img: torch.Tensor, crop: int, step: int, thresh: int):
    h, w = img.shape[-2:]
    k = 0
    for y in _starts(h, crop, step, thresh):
        for x in _starts(w, crop, step, thresh):
            k += 1
            yield f"{stem}_s{k:03d}.png", img[:, y:y + crop, x:x + crop].contiguous()


def _starts(size: int, crop: int, step: int, thresh: int) -> list[int]:
    if size <= crop:
        return [0]
    starts = list(range(0, size - crop + 1, step))
    if size - (starts[-1] + crop) > thresh:
        starts.append(size - crop)
    return starts


def prepare_train(src: Path, dst: Path, scale: int = 4, modcrop: int = 12, crop: int = 480, step: int = 240,
                  log=print) -> int:
    """The paper's training data from a folder of HR images (DF2K): ``dst/HR`` and ``dst/LR_bicubic/X{scale}``
    hold aligned sub-images of the same names. Each image is cropped to a multiple of ``modcrop``, its LR made
    from the whole image (:func:`matlab_lr`), then both are cut (HR ``crop``/``step``, LR ``crop/scale`` /
    ``step/scale``, threshold 0). An image whose sub-images all exist is skipped, so an interrupted run
    resumes."""
    from ..imageio import write_image

    if crop % scale or step % scale or modcrop % scale:
        raise AesopBenchError(f"--crop {crop}, --step {step} and --modcrop {modcrop} must be multiples of the "
                              f"scale {scale}")
    hr_dst, lr_dst = dst / "HR", dst / "LR_bicubic" / f"X{scale}"
    hr_dst.mkdir(parents=True, exist_ok=True)
    lr_dst.mkdir(parents=True, exist_ok=True)
    count = 0
    for f in training_images([src]):
        hr = mod_crop(to_rgb(read_image(f)), modcrop)
        subs_hr = list(_subimages(f.stem, hr, crop, step, 0))
        if all((hr_dst / n).is_file() and (lr_dst / n).is_file() for n, _ in subs_hr):
            count += len(subs_hr)
            continue
        lr = matlab_lr(hr, scale)
        subs_lr = list(_subimages(f.stem, lr, crop // scale, step // scale, 0))
        for (name, h), (name_lr, l) in zip(subs_hr, subs_lr):
            assert name == name_lr and h.shape[-1] == l.shape[-1] * scale and h.shape[-2] == l.shape[-2] * scale
            write_image(lr_dst / name, l)
            write_image(hr_dst / name, h)  # HR last: its presence marks the pair complete
            count += 1
    log(f"{count} HR/LR sub-image pairs in {hr_dst} and {lr_dst}")
    return count
