"""The Python API: ``import aesop_bench as ab``.

* :func:`metric` -- one metric as an object that owns its networks: ``ab.metric("lpips")(sr, hr)``.
* :func:`evaluate` -- the evaluator on a network in memory (``nn.Module``), a callable LR -> SR, a zoo name,
  a checkpoint path or a folder of SR results; the same numbers, caches and resume as ``aesop-bench eval``.
* :func:`load_run` -- the per-image values of any run folder as a pandas DataFrame.
* :func:`protocol` -- a named protocol with overrides (``ab.protocol("matlab", crop_border=0)``).

>>> import torch
>>> import aesop_bench as ab
>>> hr = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8)
>>> float(ab.metric("psnr", protocol=ab.protocol("paper", crop_border=0))(hr, hr))   # 1e-8 in the MSE: 80 dB, not inf
80.0
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .errors import AesopBenchError, ConfigError
from .evaluation.store import UNCACHED  # an identity nothing vouches for: never equal to another call's
from .metrics.metric import Metric, metric
from .evaluation.config import DEFAULT_METRICS, DEFAULT_SETS
from .models.options import RunOptions
from .protocols import DEFAULT_PROTOCOL

if TYPE_CHECKING:
    import pandas as pd
    import torch
    import torch.nn as nn

__all__ = ["metric", "Metric", "evaluate", "load_run", "protocol", "Result", "module_identity"]


def protocol(name: str = DEFAULT_PROTOCOL, **overrides):
    """A protocol by name (``paper``, ``basicsr``, ``matlab``) with overrides: scale, modcrop, crop_border,
    lr_source, ...

    >>> protocol("matlab", crop_border=0).as_dict()["crop_border"]
    0
    """
    from .protocols import get_protocol

    return get_protocol(name, **overrides)


@dataclass
class Result:
    """What :func:`evaluate` returns: ``summary`` (the dict of ``summary.json``), ``per_image`` (a DataFrame with
    columns set, image, metric, value, version, protocol, set_complete) and ``out`` (the run folder, or None).

    >>> import pandas as pd
    >>> r = Result({"sets": {"set5": {"metrics": {"psnr": 28.4}}}}, pd.DataFrame())
    >>> r.mean("set5", "psnr"), r.mean("set14", "psnr")
    (28.4, None)
    """

    summary: dict
    per_image: "pd.DataFrame"
    out: Path | None = None

    def mean(self, set_name: str, metric_name: str) -> float | None:
        """The set's value of a metric (mean over images, or the set-level value of FID/pFID); None where the set
        is incomplete for it (:meth:`partial` gives the value over the images that have one, with their count)."""
        return self.summary["sets"].get(set_name, {}).get("metrics", {}).get(metric_name)

    def complete(self, set_name: str) -> bool | None:
        """Whether every value of the set covers all its images (None: the run folder has no record of what the
        set holds, an earlier version's folder).

        >>> import pandas as pd
        >>> r = Result({"sets": {"bsd100": {"n_images": 100, "complete": False, "metrics": {},
        ...                                 "partial": {"psnr": {"n": 48, "of": 100, "mean": 25.79}}}}}, pd.DataFrame())
        >>> r.complete("bsd100"), r.mean("bsd100", "psnr"), r.partial("bsd100", "psnr")["n"]
        (False, None, 48)
        """
        entry = self.summary["sets"].get(set_name, {})
        return False if entry.get("partial") else entry.get("complete")

    def partial(self, set_name: str, metric_name: str) -> dict | None:
        """A metric's value over part of a set: ``{"n": images with a value, "of": the set's images, "mean": their
        mean, "other_files": values stored from other files, not counted}``; None where the set is whole."""
        return (self.summary["sets"].get(set_name, {}).get("partial") or {}).get(metric_name)


def module_identity(net: "nn.Module", scale: int) -> str:
    """A content hash of a network's parameters and buffers (names, dtypes, shapes, values) and its class.

    >>> import torch
    >>> a, b = torch.nn.Conv2d(3, 3, 3), torch.nn.Conv2d(3, 3, 3)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> module_identity(a, 4) == module_identity(b, 4), module_identity(a, 4).startswith("module:Conv2d-x4-")
    (True, True)
    """
    import torch

    h = hashlib.sha256(type(net).__qualname__.encode())
    for k, v in sorted(net.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"module:{type(net).__name__}-x{scale}-{h.hexdigest()[:16]}"


class CallableModel:
    """A callable LR -> SR (float ``(N, C, h, w)`` in [0, 1] in, the same out at ``scale`` times the size).

    Without ``identity`` its outputs are not cached on disk (nothing says when they would change).

    >>> import torch
    >>> m = CallableModel(lambda lr: lr.repeat_interleave(2, -1).repeat_interleave(2, -2), 2, identity="nn-x2")
    >>> tuple(m(torch.rand(1, 3, 4, 4)).shape), m.cache
    ((1, 3, 8, 8), True)
    """

    def __init__(self, fn: Callable, scale: int, identity: str | None = None, name: str | None = None):
        self.fn, self.scale = fn, scale
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        self.cache = self.cacheable = identity is not None  # its identity vouches for its outputs, or not
        self.identity = identity or f"callable:{self.name}:{UNCACHED}{uuid.uuid4().hex[:12]}"

    def to(self, device):
        return self

    def __call__(self, lr: "torch.Tensor") -> "torch.Tensor":
        import torch

        with torch.no_grad():
            return self.fn(lr)


def _is_folder(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and Path(model).is_dir()


def evaluate(model, sets: str | Sequence[str] = DEFAULT_SETS, metrics: str | Sequence[str] = DEFAULT_METRICS,
             protocol=DEFAULT_PROTOCOL, out: str | os.PathLike | None = None, device: str | None = None,
             data_root: str | os.PathLike | None = None, download: bool = True,
             precision: str = RunOptions.precision, tile: int | None = RunOptions.tile,
             tile_overlap: int = RunOptions.tile_overlap, name: str | None = None, identity: str | None = None,
             arch: str | None = None, sr_suffix: str = "", ae: str | None = None,
             clipiqa_split_above: int | None = None, fid_mode: str | None = None,
             progress: bool = False, batch: int | None = None, cache: bool = False,
             metric_options: dict | None = None) -> Result:
    """Evaluate ``model`` on benchmark ``sets`` with ``metrics`` under ``protocol``.

    ``model`` is a ``torch.nn.Module`` (LR -> SR, float in [0, 1]; its training mode and device are restored
    afterwards), any other callable LR -> SR, a zoo name, a checkpoint path (with ``arch``), a model card,
    ``interp:A,B@ALPHA``, or a folder of SR results (see :mod:`aesop_bench.evaluation.folders`).

    What an object in memory computes cannot be known from outside (a module's behaviour may hang on attributes
    that are not in its state dict, such as an interpolation mode), so its SR images are cached on disk, and its
    stored values resumed, only under a name the caller vouches for: ``identity="..."`` (any string that changes
    whenever the outputs could), or, for an ``nn.Module``, ``cache=True``: the class name and a hash of the
    state dict (every parameter and buffer) are its identity, which the caller declares to determine its outputs.
    Otherwise every call computes afresh and a run folder (``out=``) is not resumed by a later call.

    ``metric_options``: ``{metric: {option: value}}`` in each metric's own option names (``aesop-bench metrics
    list`` shows them), e.g. ``{"clipiqa": {"split_above": 1_000_000}}``; an unknown metric or option is an error
    naming the valid ones. ``ae``, ``clipiqa_split_above`` and ``fid_mode`` are shorthands for the options of
    every metric that has them (``ae_psnr``; ``clipiqa``; ``fid`` and ``pfid``); ``metric_options`` wins over them.

    ``device``, ``precision``, ``tile``, ``tile_overlap`` and ``batch`` make one
    :class:`~aesop_bench.models.options.RunOptions`.

    A run folder is written only with ``out=`` (then it resumes like ``aesop-bench eval --out``). ``batch``: images
    per call of the model and of the network metrics (of one size, except for the FID features; default: up to 16
    on a GPU, 1 on the CPU); give ``batch=1`` for a callable that takes one image at a time.

    >>> import torch.nn.functional as F
    >>> import aesop_bench as ab
    >>> result = ab.evaluate(lambda lr: F.interpolate(lr, scale_factor=4, mode="nearest"), sets="set5",
    ...                   metrics=["psnr"], download=False)
    >>> sorted(result.per_image.columns)
    ['image', 'metric', 'protocol', 'set', 'set_complete', 'value', 'version']
    >>> len(result.per_image), 20 < result.mean("set5", "psnr") < 30
    (5, True)
    """
    from .evaluation.config import InMemory, ModelRef, ResultFolder, build_config
    from .protocols import Protocol, get_protocol

    prot = protocol if isinstance(protocol, Protocol) else get_protocol(str(protocol))
    run = RunOptions(device=device or RunOptions.device, precision=precision, tile=tile, tile_overlap=tile_overlap,
                     batch=batch)
    restore = None
    if _is_folder(model):
        source = ResultFolder(Path(model), sr_suffix)
    elif isinstance(model, (str, os.PathLike)):
        source = ModelRef(str(model), arch)
    else:
        wrapped, run, restore = _wrap(model, prot.scale, run, device is not None, identity, name, cache)
        source = InMemory(wrapped)
    from .distributed import ranks

    if out is None and ranks()[1] > 1:
        raise ConfigError("under torchrun, give evaluate(..., out=FOLDER): the ranks share one run folder")
    cfg = build_config(source, sets, metrics, prot, data_root=data_root, out=out, run=run,
                       metric_options=metric_options, ae=ae, fid_mode=fid_mode,
                       clipiqa_split_above=clipiqa_split_above, download=download, progress=progress, name=name)
    try:
        if out is not None:
            from .evaluation.runner import run_evaluation

            summary = run_evaluation(cfg)
            frame = load_run(cfg.out_dir)
        else:  # computed in memory: no run folder is written
            import pandas as pd

            from .evaluation.runner import run_in_memory
            from .evaluation.store import PER_IMAGE_COLUMNS

            summary, rows = run_in_memory(cfg)
            frame = pd.DataFrame(rows, columns=list(PER_IMAGE_COLUMNS))
            frame["value"] = frame["value"].astype("float64")
            _mark_sets(frame, summary)
    finally:
        if restore is not None:
            restore()
    return Result(summary=summary, per_image=frame, out=None if out is None else Path(out))


def _wrap(model, scale, run, device_given, identity, name, cache=False):
    """An in-memory model as the evaluator's model, the run options (on the module's device unless a device was
    given), and a function restoring the module's state."""
    import torch.nn as nn

    from .models.inference import NetModel

    if isinstance(model, nn.Module):
        params = list(model.parameters()) + list(model.buffers())
        home_device = params[0].device if params else None
        if not device_given and home_device is not None:
            run = run.on(str(home_device))
        was_training = model.training
        cached = identity is not None or bool(cache)  # the caller vouches for the identity (or the state dict)
        if identity is None:
            identity = module_identity(model, scale) + ("" if cache else f"-{UNCACHED}{uuid.uuid4().hex[:12]}")
        wrapped = NetModel(name or type(model).__name__, model, scale, identity, run)
        wrapped.cache = wrapped.cacheable = cached

        def restore():
            model.train(was_training)
            if home_device is not None:
                model.to(home_device)
        return wrapped, run, restore
    if all(hasattr(model, a) for a in ("identity", "scale", "name")):
        return model, run, None  # already an evaluator model
    if callable(model):
        if cache and identity is None:
            raise AesopBenchError("cache=True needs identity= for a callable that is not an nn.Module: nothing else "
                                  "says when its outputs would change")
        return CallableModel(model, scale, identity, name), run, None
    raise AesopBenchError(f"cannot evaluate a {type(model).__name__}: give an nn.Module, a callable LR -> SR, a zoo "
                          "name, a checkpoint path or a folder of SR images")


def load_run(path: str | os.PathLike) -> "pd.DataFrame":
    """The per-image values of a run folder as a DataFrame (set, image, metric, value, version, protocol,
    set_complete); set-level values (FID, pFID) are in the summary, ``frame.attrs["summary"]``. ``set_complete`` is
    "true" where the image's set has every value on every image, "false" where it is incomplete (its set values are
    not given) and "" where no record of the set says (a folder written by an earlier version).

    >>> load_run("no-such-run")
    Traceback (most recent call last):
    ...
    aesop_bench.errors.MissingFileError: no-such-run: no per_image.csv/summary.json; give a folder written by `aesop-bench eval`
    """
    import pandas as pd

    from .errors import MissingFileError
    from .evaluation.runfolder import RunFolder, read_summary

    folder = RunFolder(path)
    csv_file, summary_file = folder.per_image_file, folder.summary_file
    if not csv_file.is_file() or not summary_file.is_file():
        raise MissingFileError(f"{folder.path}: no {csv_file.name}/{summary_file.name}; give a folder written by "
                               "`aesop-bench eval`")
    frame = pd.read_csv(csv_file, dtype=str, keep_default_na=False)
    frame["value"] = frame["value"].map(float).astype("float64")  # Python's float(): the stored repr, exactly
    _mark_sets(frame, read_summary(summary_file))
    return frame


def _mark_sets(frame: "pd.DataFrame", summary: dict) -> None:
    """Add ``set_complete`` to per-image rows (``load_run``) and attach the summary (``frame.attrs``)."""
    state = {}
    for s, entry in (summary.get("sets") or {}).items():
        complete = False if entry.get("partial") else entry.get("complete")
        state[s] = "" if complete is None else str(bool(complete)).lower()
    frame["set_complete"] = frame["set"].map(lambda s: state.get(s, "")).astype(str)
    frame.attrs["summary"] = summary
