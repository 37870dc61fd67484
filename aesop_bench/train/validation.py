"""Validation during training: the EMA network on the config's validation set, under the paper's protocol.

An SR network goes through the evaluator itself (``aesop_bench.evaluate``), so a validation value equals what
``aesop-bench eval --test-data own`` reports for the exported checkpoint (the set's own files, mod-12); an AE is scored on its reconstruction of the
protocol's HR with the same metric objects. SR images are not cached (every validation has new weights).
"""

from __future__ import annotations


import torch
import torch.nn as nn

from .. import weights as wm
from ..errors import AesopBenchError
from ..metrics.registry import expand_metrics, get_spec
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

    try:
        names = expand_sets(cfg.val.set)
    except AesopBenchError as exc:
        raise AesopBenchError(f"config val.set: {exc}") from None
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
    """Mean of each validation metric for ``net`` (the EMA generator or AE) at ``step``."""
    from ..api import CallableModel
    from ..data.sets import expand_sets, resolve
    from ..evaluation.config import EvalConfig
    from ..evaluation.runner import run_in_memory
    from ..models.options import RunOptions
    from ..data.transforms import mod_crop, to_rgb
    from ..imageio import quantize, read_image
    from ..metrics.metric import Metric
    from ..paths import data_root
    from ..protocols import get_protocol

    v = cfg.val
    # the set's own files (no download of LDL's test data in the middle of a training run)
    protocol = get_protocol("paper", scale=cfg.data.scale, test_data="own")
    if cfg.kind == "sr":
        # this process alone, even under torchrun: the other ranks wait for it at a barrier, none of them inside
        # the evaluator's collectives
        # (in memory: nothing is written)
        names, metrics = expand_sets(v.set), expand_metrics(v.metrics)
        summary, _ = run_in_memory(EvalConfig(
            model=CallableModel(net, protocol.scale, name=f"{cfg.name}@{step}"), sets=names, metrics=metrics,
            protocol=protocol, data_root=data_root(v.data_root), out_dir=None, run=RunOptions(device=str(device)),
            download=False, progress=False, log=lambda msg: None, alone=True))
        means = summary["sets"][names[0]]["metrics"]
        return {m: means[m] for m in metrics if m in means}
    metrics = [Metric(m, protocol, device) for m in v.metrics if m != "lr_psnr"]
    sums: dict[str, list[float]] = {}
    for f in resolve(v.set, data_root(v.data_root)).hr_files:
        hr = mod_crop(to_rgb(read_image(f)), protocol.effective_modcrop)[None]
        out = quantize(net(hr.float().div(255).to(device)).cpu())
        for m in metrics:
            sums.setdefault(m.name, []).append(float(m.score(out, hr, None)[0]))
    return {m: sum(vals) / len(vals) for m, vals in sums.items()}
