"""Where SR images come from when a model is evaluated: the protocol's LR of each HR image, and the model's
output for it, cached on disk under the model's identity and the LR's content (a rerun, or another metric,
reads the cache instead of running the network). Result folders are the other source (:mod:`.folders`).

Every source follows :class:`Source`; the runner asks it, and never which kind of source it is.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Protocol as Interface, runtime_checkable

from ..cache import PNG, Store, device_tag, folder
from ..data.sets import ResolvedSet
from ..errors import ConfigError, InputError
from ..fileutil import remove_stale_temps, sha256_cached, tensor_key
from ..models.options import RunOptions
from ..protocols import Protocol


@runtime_checkable
class Source(Interface):
    """Where a run's SR images come from (:class:`NetworkSource`, :class:`~.folders.FolderSource`)."""

    name: str  # shown in tables
    identity: str  # what the run's rows are stored under
    source_type: str  # recorded in the summary: "model" or "folder"
    writes_sr: bool  # whether ``--save-sr`` has images to write (a folder's are already files)

    def prepare_set(self, set_name: str, res: ResolvedSet, log: Callable[[str], None]) -> None:
        """Get ready for one set, refusing a set this source cannot evaluate (naming it)."""

    def row_digest(self, set_name: str, hr_file: Path) -> str:
        """A hash of every file one image's values come from: a stored value counts while it is unchanged."""

    def images(self, res: ResolvedSet, set_name: str, hr_files: list[Path], protocol: Protocol,
               need_lr: bool) -> list[tuple]:
        """``[(hr, lr, sr), ...]``: uint8 ``(C, H, W)`` tensors, one triple per HR file (``lr`` may be None when
        not ``need_lr``)."""

    def describe_set(self, set_name: str, res: ResolvedSet) -> dict:
        """What the run compares on a set (recorded before its values are computed): where its HR and LR come from
        and the image area, as this source uses them."""

    def record(self, sets: dict[str, dict]) -> dict:
        """Entries for the run's summary, from the set records of the run folder (``{}``: none)."""


def _sr_model_dir(identity: str, scale: int) -> Path:
    """The SR images of a model at one scale, on every device (without torch)."""
    return folder("sr", identity, f"x{scale}")


def _sr_store(identity: str, scale: int, device: str) -> Store:
    """The SR images of a model, PNG files keyed by the LR's content: under its identity, the scale, and torch's
    version and the device (a network's float output, hence an 8-bit pixel near a rounding boundary, can differ
    between them); on the CPU also torch's thread count, for a model whose outputs are not known to be independent
    of it (a network of the caller's)."""
    from ..models.identity import thread_invariant

    tag = device_tag(device, threads=not thread_invariant(identity))
    return Store("sr", folder("sr", identity, f"x{scale}", tag), PNG)


def _load_pair(res: ResolvedSet, hr_file: Path, protocol: Protocol):
    from ..data.transforms import mod_crop, protocol_lr, require_evaluable, to_rgb
    from ..imageio import read_image

    hr = read_image(hr_file)
    if protocol.grayscale == "rgb":
        hr = to_rgb(hr)
    if res.hr_dir is None:  # real-world LR inputs, no ground truth
        return None, hr
    require_evaluable(hr, protocol, hr_file)
    if protocol.lr_source == "make":
        return mod_crop(hr, protocol.effective_modcrop), protocol_lr(hr, protocol)
    hr = mod_crop(hr, protocol.effective_modcrop)
    s = protocol.scale
    lr_file, lr = res.read_lr(hr_file, s)
    if protocol.grayscale == "rgb":
        lr = to_rgb(lr)
    elif lr.shape[0] != hr.shape[0]:
        raise InputError(f"{lr_file}: {lr.shape[0]} channels but its HR {hr_file} has {hr.shape[0]}")
    want = (hr.shape[-2] // s, hr.shape[-1] // s)
    if tuple(lr.shape[-2:]) != want:
        raise InputError(
            f"{lr_file}: LR size {lr.shape[-1]}x{lr.shape[-2]} does not match HR {hr_file.name} "
            f"({hr.shape[-1]}x{hr.shape[-2]} after modcrop {protocol.effective_modcrop}) / {s} = "
            f"{want[1]}x{want[0]}; check --modcrop or regenerate the LR with `aesop-bench data make-lr`"
        )
    return hr, lr


# network outputs are clamped to [0, 1] before quantisation (as BasicSR's tensor2img): a GAN's overshoot is
# normal, an undertrained one's reaching past these bounds in a few pixels too; an output with more than
# OUTSIDE_SHARE of its values beyond them is of another range (0-255, [-1, 1]) and is refused (the README's smoke
# training, 30 steps: 1.5% of its first outputs reach 1.58)
OUTPUT_RANGE = (-0.5, 1.5)
OUTSIDE_SHARE = 0.1


def _check_output(model, batch, files) -> None:
    """Refuse what the model returned when it is not an SR batch in [0, 1]: a tuple, non-finite values, or
    values of another range, naming the image."""
    import torch

    if not isinstance(batch, torch.Tensor):
        raise ConfigError(f"model {model.name!r} returned a {type(batch).__name__}, not a tensor; it must return "
                              "the SR batch (N, C, H, W) alone (wrap a network that returns several outputs)")
    if bool(torch.isfinite(batch).all()) and OUTPUT_RANGE[0] <= float(batch.min()) and \
            float(batch.max()) <= OUTPUT_RANGE[1]:
        return  # one check per batch; the images are looked at one by one only when there is a value outside
    for j, f in enumerate(files):
        x = batch[j]
        if not bool(torch.isfinite(x).all()):
            raise InputError(f"{f}: model {model.name!r} returned {int((~torch.isfinite(x)).sum())} non-finite "
                                  "value(s) (NaN or inf) for this image; check the network and its weights")
        lo, hi = float(x.min()), float(x.max())
        outside = float(((x < OUTPUT_RANGE[0]) | (x > OUTPUT_RANGE[1])).float().mean())
        if outside > OUTSIDE_SHARE:
            raise InputError(f"{f}: model {model.name!r} returned values in [{lo:.6g}, {hi:.6g}] for this image, "
                                  f"{outside:.1%} of them outside [{OUTPUT_RANGE[0]}, {OUTPUT_RANGE[1]}]; an SR "
                                  "network returns [0, 1] (its output is clamped to [0, 1], as BasicSR does; a few "
                                  f"values beyond, up to {OUTSIDE_SHARE:.0%} of an image, are taken as overshoot): "
                                  "divide 0-255 outputs by 255, map [-1, 1] outputs with (x + 1) / 2")


def _super_resolve(model: "_LazyModel | _GivenModel", lrs: list, device: str, files: list | None = None,
                   held: int | None = None, timer: Callable[[float, float, int], None] | None = None) -> list:
    """The SR image of each LR: from the SR cache, else from the model, the LRs of one shape in one batch
    (``files``: the HR file of each LR, named in errors). ``held``: torch's thread count the network runs under
    (a network whose outputs depend on it keeps its run's first count; the SR cache is keyed by it); ``timer``
    is told the seconds, HR megapixels and images of each call of the network (building it is not timed)."""
    import time

    import torch

    from ..imageio import quantize, to_float
    from ..threads import holding

    out: list = [None] * len(lrs)
    if model.cache and getattr(model, "store", None) is None:  # one per run: a disk that refuses stops its writes
        with holding(held):
            model.store = _sr_store(model.identity, model.scale, device)
    store = model.store if model.cache else None
    keys = [tensor_key(lr) for lr in lrs] if store is not None else [None] * len(lrs)
    shapes: dict[tuple, list[int]] = {}  # LR shape -> the cache misses of that shape
    for i, (lr, key) in enumerate(zip(lrs, keys)):
        sr = store.get(key) if store is not None else None
        if sr is not None and tuple(sr.shape) == _sr_shape(lr, model.scale):
            out[i] = sr
            continue
        shapes.setdefault(tuple(lr.shape), []).append(i)
    for lr_shape, idx in shapes.items():
        net = model.get()
        start = time.perf_counter()
        with holding(held), torch.inference_mode():
            batch = net(torch.stack([to_float(lrs[i]) for i in idx]).to(device))
        want = (len(idx), *_sr_shape(lrs[idx[0]], model.scale))
        if isinstance(batch, torch.Tensor) and tuple(batch.shape) != want:
            raise ConfigError(f"model {model.name!r} returned shape {tuple(batch.shape)} for LR "
                                  f"{(len(idx), *lr_shape)}; expected {want}")
        _check_output(model, batch, [files[i] if files else f"image {i}" for i in idx])
        for j, i in enumerate(idx):
            out[i] = quantize(batch[j].cpu())
        if timer is not None:
            timer(time.perf_counter() - start, len(idx) * want[-2] * want[-1] / 1e6, len(idx))
        if store is not None:
            for i in idx:
                store.put(keys[i], out[i])
    return out


def _sr_shape(lr, scale: int) -> tuple[int, int, int]:
    return lr.shape[0], lr.shape[1] * scale, lr.shape[2] * scale


class _LazyModel:
    """Builds the network on the first SR cache miss, so cached runs never load weights (nor import torch)."""

    cache = True

    def __init__(self, model: str, arch: str | None, scale: int, run: RunOptions, download: bool):
        from ..models.zoo import identity_of, resolve_model

        self.name, self.scale, self.run = model, scale, run
        self._model = None
        self.spec = resolve_model(model, arch, download=download)  # resolved once per run
        self.identity = identity_of(self.spec, scale, run)  # the built model's identity is this same string

    def get(self):
        if self._model is None:
            from ..models.zoo import build_model

            self._model = build_model(self.spec, self.scale, self.run)
        return self._model


class _GivenModel:
    """A model object given by the caller (already built)."""

    def __init__(self, model, scale: int):
        if getattr(model, "scale", scale) != scale:
            raise ConfigError(f"model {model.name!r} upscales x{model.scale} but the protocol is x{scale}")
        self.name, self.scale, self.identity = model.name, scale, model.identity
        self.cache = getattr(model, "cache", True)
        self._model = model

    def get(self):
        return self._model


class NetworkSource:
    """SR images made by a model from the protocol's LR (cached on disk by the model's identity).

    ``model``: a zoo name, checkpoint, card or interpolation (built on the first SR cache miss, with ``arch`` for
    a bare checkpoint), or a model object (:class:`aesop_bench.models.inference.NetModel`'s interface)."""

    source_type = "model"
    writes_sr = True
    held_threads: int | None = None  # torch's thread count the network keeps on the CPU (None: any; the runner's)
    # told (set name, seconds, HR megapixels, images) of each call of the network (the runner's timings)
    timer: Callable[[str, float, float, int], None] | None = None

    def __init__(self, model, protocol: Protocol, run: RunOptions, arch: str | None = None, download: bool = True):
        self.model = _LazyModel(model, arch, protocol.scale, run, download) if isinstance(model, str) \
            else _GivenModel(model, protocol.scale)
        self.name, self.identity, self.device = self.model.name, self.model.identity, run.device
        self.protocol = protocol
        self._sets: dict[str, ResolvedSet] = {}
        if self.model.cache:  # partial SR images of a killed run, on any device (an hour old: other runs may share
            # the cache)
            remove_stale_temps(_sr_model_dir(self.identity, protocol.scale), ("*/*/.*.tmp",), min_age=3600)

    def prepare_set(self, set_name, res, log) -> None:
        """Remember the set: its LR files are part of :meth:`row_digest` where the protocol reads them."""
        self._sets[set_name] = res

    def row_digest(self, set_name, hr_file) -> str:
        """The content of the files a stored value of this image comes from: the HR image (and the set's LR
        file where the protocol reads it). A stored value counts only while they are unchanged."""
        digests = [sha256_cached(hr_file)]
        res = self._sets[set_name]
        if res.protocol(self.protocol).lr_source == "folder" and res.hr_dir is not None:
            lr_file = res.lr_file(hr_file, self.protocol.scale)
            digests.append(sha256_cached(lr_file) if lr_file is not None else "-")
        return hashlib.sha256("".join(digests).encode()).hexdigest()[:20]

    def describe_set(self, set_name, res) -> dict:
        """The set's data record as the protocol reads it (:attr:`ResolvedSet.data`)."""
        return res.data

    def record(self, sets) -> dict:
        """Nothing: the model's identity is in the run's record already."""
        return {}

    def images(self, res, set_name, hr_files, protocol, need_lr):
        """``[(hr, lr, sr), ...]``: the protocol's HR and LR of each file, and the model's SR of that LR (from the
        SR cache, else the model on the LRs of one shape together)."""
        pairs = [_load_pair(res, f, protocol) for f in hr_files]
        timer = None if self.timer is None else (lambda *spent: self.timer(set_name, *spent))
        srs = _super_resolve(self.model, [lr for _, lr in pairs], self.device, list(hr_files), self.held_threads,
                             timer)
        return [(hr, lr, sr) for (hr, lr), sr in zip(pairs, srs)]
