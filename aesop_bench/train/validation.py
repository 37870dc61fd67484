"""Validation during training: the EMA network on the config's validation set, under the paper's protocol.

Both an SR network and the AE go through the evaluator itself (an SR network as ``aesop_bench.evaluate`` runs
it, so a validation value equals what ``aesop-bench eval --test-data own`` reports for the exported checkpoint:
the set's own files, mod-12; the AE on its reconstruction of the protocol's HR). SR images are not cached
(every validation has new weights).
"""

from __future__ import annotations


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
    name = f"{cfg.name}@{step}"
    if cfg.kind == "sr":
        source, metrics = InMemory(CallableModel(net, protocol.scale, name=name)), expand_metrics(v.metrics)
    else:
        source = Reconstruction(net, name)
        metrics = [m for m in expand_metrics(v.metrics) if get_spec(m).kind != Kind.LR_REFERENCE]
    # this process alone, even under torchrun (collective=False): the other ranks wait for it at a barrier, none
    # of them inside the evaluator's collectives; in memory: nothing is written
    summary, _ = run_in_memory(build_config(
        source, v.set, metrics, protocol, data_root=v.data_root, run=RunOptions(device=str(device)),
        download=False, progress=False, log=lambda msg: None, collective=False))
    means = next(iter(summary["sets"].values()))["metrics"]
    return {m: means[m] for m in metrics if m in means}
