"""Real-world training data, as the authors' ``AesopRealESRGANArtifactsDisModel`` (Real-ESRGAN's recipe) makes it.

* HR crops (:class:`HRCrops`, Real-ESRGAN's dataset part): each HR image flipped at random (``data.flip``;
  ``data.rot`` adds the vertical flip and transposition), padded where smaller than ``data.crop_pad_size``
  (reflection without repeating the edge, bottom and right, OpenCV's ``BORDER_REFLECT_101``) and cropped to that
  square at a random place (400 px in Real-ESRGAN). Drawn from (seed, epoch, index), as the bicubic patches.
* Per micro-batch (one official GPU's batch, see the trainer), on the training device
  (:class:`PairStream`): the HR crops are degraded by :class:`aesop_bench.data.degradations.RealDegradation`
  (which degrades the USM-sharpened HR, as the authors' and Real-ESRGAN's ``feed_data`` do), HR and LR cut at
  one random place (BasicSR's ``paired_random_crop``: one offset for the batch) to ``data.patch``, then passed
  through the training-pair queue (:class:`~aesop_bench.data.degradations.PairQueue`, ``data.queue_size``).
  The USM-sharpened targets of the loss terms are made in the step, from the HR that leaves the queue (as the
  authors' code sharpens ``self.gt`` again after the queue).
* Every draw of a micro-batch slot comes from its own two ``torch.Generator``: one for the degradation and the
  crop, one for the queue's permutations, seeded from (seed, slot), so 1, 2 or 4 processes holding the same
  slots make the same pairs. Their states and the queues are part of every checkpoint
  (:meth:`PairStream.state`): a killed run resumes with the pairs an uninterrupted run would have made.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data.transforms import to_rgb
from ..errors import AesopBenchError
from ..imageio import read_image
from .config import DataConfig


def reflect101_index(n: int, size: int) -> torch.Tensor:
    """Indices ``0 .. size-1`` into a length-``n`` axis, reflected past its end without repeating the edge
    (OpenCV's ``BORDER_REFLECT_101``, repeated as often as needed).

    >>> reflect101_index(4, 9).tolist()
    [0, 1, 2, 3, 2, 1, 0, 1, 2]
    """
    if n == 1:
        return torch.zeros(size, dtype=torch.long)
    period = 2 * (n - 1)
    i = torch.arange(size) % period
    return torch.where(i < n, i, period - i)


class HRCrops(Dataset):
    """``crop_pad_size`` HR crops of ``hr_files`` (uint8 read, float in [0, 1]); item ``(epoch, index)``."""

    def __init__(self, hr_files: list[Path], data: DataConfig, seed: int = 0):
        self.hr_files, self.size, self.seed = hr_files, data.crop_pad_size, seed
        self.flip, self.rot = data.flip, data.rot
        self._read = lru_cache(maxsize=8)(self._load)  # whole HR images (DF2K: 2K px): a few per worker

    def __len__(self) -> int:
        return len(self.hr_files)

    def _load(self, index: int) -> torch.Tensor:
        return to_rgb(read_image(self.hr_files[index]))

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        epoch, index = item
        img = self._read(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        hflip, vflip, transpose = (rng.random(3) < 0.5).tolist()
        for flag, enabled, fn in ((hflip, self.flip, lambda t: t.flip(-1)), (vflip, self.rot, lambda t: t.flip(-2)),
                                  (transpose, self.rot, lambda t: t.transpose(-1, -2))):
            if flag and enabled:
                img = fn(img)
        h, w = img.shape[-2:]
        s = self.size
        if h < s:
            img = img[:, reflect101_index(h, s), :]
        if w < s:
            img = img[:, :, reflect101_index(w, s)]
        h, w = img.shape[-2:]
        y = int(rng.integers(0, h - s + 1))
        x = int(rng.integers(0, w - s + 1))
        return img[:, y:y + s, x:x + s].float() / 255


def slot_seed(seed: int, slot: int, stream: int) -> int:
    """The seed of a micro-batch slot's generator (``stream`` 0: degradation and crop, 1: the queue)."""
    return int(np.random.SeedSequence([seed, slot, stream]).generate_state(1, np.uint64)[0] >> 1)


def paired_crop(lq: torch.Tensor, gt: torch.Tensor, patch: int, scale: int, generator: torch.Generator):
    """HR ``patch`` and its LR cut at one random place for the whole batch (BasicSR's ``paired_random_crop``)."""
    p = patch // scale
    h, w = lq.shape[-2:]
    if gt.shape[-2] != h * scale or gt.shape[-1] != w * scale:
        raise AesopBenchError(f"the degraded LR {tuple(lq.shape[-2:])} x{scale} does not match the HR "
                              f"{tuple(gt.shape[-2:])}")
    top = int(torch.randint(0, h - p + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - p + 1, (1,), generator=generator))
    return (lq[..., top:top + p, left:left + p],
            gt[..., top * scale:(top + p) * scale, left * scale:(left + p) * scale])


def pack(obj):
    """A queue's state with its float tensors stored as uint8 where that is exact (images on the 1/255 grid, as
    the HR and the rounded LR are): the checkpoint holds a quarter of the bytes and reads back the same floats."""
    if isinstance(obj, dict):
        return {k: pack(v) for k, v in obj.items()}
    if isinstance(obj, torch.Tensor) and obj.dtype == torch.float32 and obj.numel():
        q = (obj * 255).round().clamp(0, 255).to(torch.uint8)
        if torch.equal(q.float() / 255, obj):
            return {"uint8_over_255": q}
    return obj


def unpack(obj):
    """The inverse of :func:`pack`."""
    if isinstance(obj, dict):
        if set(obj) == {"uint8_over_255"}:
            return obj["uint8_over_255"].float() / 255
        return {k: unpack(v) for k, v in obj.items()}
    return obj


class PairStream:
    """The real-world pairs of one process: its micro-batch slots (global indices ``slots``), each with its
    generators and, with ``data.queue_size``, its training-pair queue."""

    def __init__(self, cfg, slots: list[int], micro: int, device: torch.device):
        self.cfg, self.slots, self.micro, self.device = cfg, slots, micro, device
        d = cfg.data
        self.degrade = None
        if cfg.degradation is not None:
            from ..data.degradations import DegradationConfig, RealDegradation

            self.degrade = RealDegradation(DegradationConfig.from_dict(cfg.degradation, "degradation"), d.scale)
        self.gens = [torch.Generator().manual_seed(slot_seed(cfg.seed, g, 0)) for g in slots]
        self.queue_gens = [torch.Generator().manual_seed(slot_seed(cfg.seed, g, 1)) for g in slots]
        self.queues = []
        if d.queue_size is not None:
            from ..data.degradations import PairQueue

            self.queues = [PairQueue(d.queue_size, micro) for _ in slots]

    def synthesise(self, k: int, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slot ``k``'s (LR, HR) patches from its HR crops: the HR degraded (which sharpens it first), both cut
        at one place."""
        g = self.gens[k]
        lq = self.degrade(gt, g)
        return paired_crop(lq, gt, self.cfg.data.patch, self.cfg.data.scale, g)

    def __call__(self, first: torch.Tensor, hr: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The rank's share of a step: HR crops (degradation) or (LR, HR) patches (``hr`` given) -> the (LR, HR)
        the step trains on, slot by slot."""
        m = self.micro
        lrs, hrs = [], []
        for k, idx in enumerate(range(0, len(first), m)):
            if hr is None:
                lq, gt = self.synthesise(k, first[idx:idx + m])
            else:
                lq, gt = first[idx:idx + m], hr[idx:idx + m]
            if self.queues:
                lq, gt = self.queues[k].push_pop(lq, gt, self.queue_gens[k])
            lrs.append(lq)
            hrs.append(gt)
        return torch.cat(lrs), torch.cat(hrs)

    def state(self) -> list[dict]:
        """Each slot's generators and queue (CPU tensors, the queue packed): what a checkpoint holds."""
        out = []
        for k, g in enumerate(self.slots):
            s = {"slot": g, "degradation": self.gens[k].get_state(), "queue_rng": self.queue_gens[k].get_state()}
            if self.queues:
                s["queue"] = pack({k2: v.cpu() if isinstance(v, torch.Tensor) else v
                                   for k2, v in self.queues[k].state_dict().items()})
            out.append(s)
        return out

    def load(self, states: list[dict]) -> None:
        """Restore this process's slots from every slot's saved state (:meth:`state` of all processes)."""
        by_slot = {int(s["slot"]): s for s in states}
        for k, g in enumerate(self.slots):
            s = by_slot[g]
            self.gens[k].set_state(s["degradation"])
            self.queue_gens[k].set_state(s["queue_rng"])
            if self.queues:
                self.queues[k].load_state_dict(unpack(s["queue"]))
