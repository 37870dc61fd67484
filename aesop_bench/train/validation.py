"""Validation during training: the EMA network on the config's validation set, under the paper's protocol.

Both an SR network and the AE go through the evaluator itself (an SR network as ``aesop_bench.evaluate`` runs
it, so a validation value equals what ``aesop-bench eval --test-data own`` reports for the exported checkpoint:
the set's own files, mod-12; the AE on its reconstruction of the protocol's HR). SR images are not cached
(every validation has new weights).

``val.set`` may also be a folder holding ``HR/`` and ``LR/`` images of the same names (given as a path, or
relative to ``val.data_root``): real-world pairs, as the authors validate their real-world training on 100 crops
of DRealSR. The SR of each LR file is compared with its HR (the paper protocol's PSNR and SSIM: Y channel,
4-pixel border); the HR is cropped to a multiple of the scale (not of 12), which must then be the LR's size
times the scale (an error names the file otherwise); no LR is made.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from .. import weights as wm
from ..errors import AesopBenchError
from ..metrics.registry import Kind, expand_metrics, get_spec
from .config import TrainConfig


def check_validation_metrics(cfg: TrainConfig) -> None:
    """Refuse at the start, not at the first validation, a validation metric whose weights are missing."""
    if not cfg.val.every:
        return
    for m in expand_metrics(cfg.val.metrics):
        for name in get_spec(m).weights:
            if wm.check(wm.entry(name)).status == "missing":
                raise AesopBenchError(f"config val.metrics: {m} needs the weights {name!r}, which are not in "
                                      f"the cache; run `aesop-bench weights download {name}` (or "
                                      f"`aesop-bench weights add {name} FILE`), or remove {m} from val.metrics")


def prepare_validation_set(cfg: TrainConfig, log=print) -> None:
    """Check the validation set at the start, not at the first validation (step 5000 in the paper's configs): a
    mistyped name is an error, a registered set missing from its data root is downloaded now, and a set that is
    still missing is an error naming where it was looked for."""
    if not cfg.val.every:
        return
    from ..data.manage import download_set
    from ..data.sets import SETS, expand_sets, resolve, set_folder
    from ..paths import data_root

    paired = paired_folder(cfg.val)
    if paired is not None:
        check_pairs(paired)
        return

    try:
        names = expand_sets(cfg.val.set)
    except AesopBenchError as exc:
        raise AesopBenchError(
            f"config val.set: {exc}; or a folder of real-world pairs (HR/ and LR/ images of the same names) given "
            f"by path or under the data root {data_root(cfg.val.data_root)}") from None
    if len(names) != 1:
        raise AesopBenchError(f"config val.set {cfg.val.set!r}: give one set")
    root = data_root(cfg.val.data_root)
    if names[0] in SETS and set_folder(names[0], root) is None:
        log(f"validation set {names[0]}: not under {root}; downloading it before training starts")
        download_set(names[0], root, log=log)
    try:
        resolve(names[0], root)
    except AesopBenchError as exc:
        raise AesopBenchError(f"config val.set: {exc}") from None


@torch.no_grad()
def validate(cfg: TrainConfig, net: nn.Module, step: int, device: torch.device) -> dict[str, float]:
    """Mean of each validation metric for ``net`` (the EMA generator or AE) at ``step``, computed by the evaluator
    in memory: an SR network on the protocol's LR (not cached: every validation has new weights), an AE on its
    reconstruction of the protocol's HR (no LR-referenced metric)."""
    from ..api import CallableModel
    from ..evaluation.config import InMemory, Reconstruction, build_config
    from ..evaluation.runner import run_in_memory
    from ..models.options import RunOptions
    from ..protocols import get_protocol

    v = cfg.val
    # the set's own files (no download of LDL's test data in the middle of a training run)
    protocol = get_protocol("paper", scale=cfg.data.scale, test_data="own")
    set_name = v.set
    paired = paired_folder(v)
    if paired is not None:  # real-world pairs: the LR files as they are, the HR cropped to LR x scale
        set_name = str(_paired_view(paired, cfg.data.scale))
        protocol = protocol.with_overrides(lr_source="folder", modcrop=cfg.data.scale)
    name = f"{cfg.name}@{step}"
    if cfg.kind == "sr":
        source, metrics = InMemory(CallableModel(net, protocol.scale, name=name)), expand_metrics(v.metrics)
    else:
        source = Reconstruction(net, name)
        metrics = [m for m in expand_metrics(v.metrics) if get_spec(m).kind != Kind.LR_REFERENCE]
    # this process alone, even under torchrun (collective=False): the other ranks wait for it at a barrier, none
    # of them inside the evaluator's collectives; in memory: nothing is written
    summary, _ = run_in_memory(build_config(
        source, set_name, metrics, protocol, data_root=v.data_root, run=RunOptions(device=str(device)),
        download=False, progress=False, log=lambda msg: None, collective=False))
    means = next(iter(summary["sets"].values()))["metrics"]
    return {m: means[m] for m in metrics if m in means}


def paired_folder(v) -> Path | None:
    """The folder ``val.set`` names when it holds ``HR/`` and ``LR/`` subfolders (a path, or one relative to
    ``val.data_root``), else None (a registered set, or a folder of HR images)."""
    from ..data.sets import find_child
    from ..paths import data_root

    p = Path(str(v.set))
    for c in ([p] if p.is_absolute() else [p, data_root(v.data_root) / p]):
        if c.is_dir() and find_child(c, ("HR",)) is not None and find_child(c, ("LR",)) is not None:
            return c
    return None


def check_pairs(folder: Path) -> None:
    """Every HR image of a paired folder has the LR image of its name, and the other way round."""
    from ..data.sets import find_child, list_images

    hr = {f.name for f in list_images(find_child(folder, ("HR",)))}
    lr = {f.name for f in list_images(find_child(folder, ("LR",)))}
    if not hr or hr != lr:
        raise AesopBenchError(
            f"config val.set {folder}: a paired validation folder holds HR/ and LR/ images of the same names; "
            f"{len(hr)} HR and {len(lr)} LR images, {len(hr - lr)} HR without LR (e.g. {sorted(hr - lr)[:3]}), "
            f"{len(lr - hr)} LR without HR (e.g. {sorted(lr - hr)[:3]})")


_VIEWS: dict[tuple[str, int], Path] = {}


def _paired_view(folder: Path, scale: int) -> Path:
    """A folder the evaluator reads as a set with an LR folder of ``scale``: ``HR`` and ``LR_bicubic/X{scale}``
    linking to the paired folder's ``HR/`` and ``LR/`` (made once per process, removed at its exit)."""
    from ..data.sets import find_child

    key = (str(folder.resolve()), scale)
    view = _VIEWS.get(key)
    if view is None or not view.is_dir():
        view = Path(tempfile.mkdtemp(prefix="aesop-bench-val-pairs-"))
        atexit.register(shutil.rmtree, view, True)
        (view / "HR").symlink_to(find_child(folder, ("HR",)).resolve(), target_is_directory=True)
        (view / "LR_bicubic").mkdir()
        (view / "LR_bicubic" / f"X{scale}").symlink_to(find_child(folder, ("LR",)).resolve(), target_is_directory=True)
        _VIEWS[key] = view
    return view
