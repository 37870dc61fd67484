"""What an evaluation is asked to do: :class:`EvalConfig`, made by :func:`build_config` for the CLI,
:func:`aesop_bench.evaluate`, the recipes and training validation alike, and read by the runner (:mod:`.runner`).

What is evaluated is one typed value: :class:`ModelRef` (a zoo name, checkpoint, card or interpolation),
:class:`ResultFolder` (SR images already made), :class:`InMemory` (a network or callable of the caller's) or
:class:`Reconstruction` (a network that maps each HR image to itself, as the auto-encoder during its training).
How a network runs is one :class:`~aesop_bench.models.options.RunOptions`; the metrics' options are one
``{metric: {option: value}}`` checked by each metric's spec, the shorthands (``ae``, ``fid_mode``,
``clipiqa_split_above``) turned into it here only. The defaults are defined once, here and in ``RunOptions``.
Torch-free.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, Union

from ..errors import ConfigError
from ..metrics.registry import get_spec, metric_options as check_options
from ..models.options import RunOptions
from ..protocols import DEFAULT_PROTOCOL, Protocol, get_protocol

DEFAULT_SETS = ("set5", "set14")
DEFAULT_METRICS = ("psnr", "ssim")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass(frozen=True)
class ModelRef:
    """A network the harness builds: a zoo name, a checkpoint (with ``arch`` where its keys do not say), a model
    card or ``interp:A,B@ALPHA``."""

    name: str
    arch: str | None = None


@dataclass(frozen=True)
class ResultFolder:
    """SR images already made: ``path/SET/`` per set (or ``path`` itself for one set), each file named as its HR
    image plus ``suffix``."""

    path: Path
    suffix: str = ""


@dataclass(frozen=True)
class InMemory:
    """A network or callable of the caller's, wrapped with its identity (``aesop_bench.api`` wraps it)."""

    model: object


@dataclass(frozen=True)
class Reconstruction:
    """A network that maps each HR image to itself (the auto-encoder): its output is compared with the HR."""

    net: object
    name: str


What = Union[ModelRef, ResultFolder, InMemory, Reconstruction]


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation: ``source`` (what is evaluated), on which ``sets``, with which ``metrics`` under
    ``protocol``, and where the rows go (``out_dir``; None keeps them in memory and writes nothing). Frozen: the
    runner works on its own copy (:meth:`on`) and never changes the caller's.

    >>> from aesop_bench.protocols import get_protocol
    >>> cfg = EvalConfig(ModelRef("bicubic"), ("set5",), ("psnr", "fid"), get_protocol("paper"), Path("data"),
    ...                  None, metric_options={"fid": {"fid_mode": "clean"}})
    >>> cfg.options_for("fid"), cfg.run.batch_limits()
    ({'fid_mode': 'clean'}, (1, None))
    >>> EvalConfig(ModelRef("bicubic"), ("set5",), ("fid",), get_protocol("paper"), Path("data"), None,
    ...            metric_options={"fid": {"mode": "clean"}})
    Traceback (most recent call last):
    ...
    aesop_bench.errors.ConfigError: metric 'fid' takes no option mode; its options: fid_mode
    """

    source: What
    sets: tuple[str, ...]
    metrics: tuple[str, ...]
    protocol: Protocol
    data_root: Path
    out_dir: Path | None
    run: RunOptions = field(default_factory=RunOptions)
    # {metric: {option: value}} in each metric's own option names (`aesop-bench metrics list` shows them)
    metric_options: dict = field(default_factory=dict)
    save_sr: bool = False
    download: bool = True
    progress: bool = True
    threads: int | None = None  # CPU threads (None: $AESOP_BENCH_THREADS, else the free cores; see threads.py)
    log: Callable[[str], None] = _stderr
    name: str | None = None  # the run's label in tables and plots
    # False: this process evaluates by itself even under torchrun, with no collectives (a training validation,
    # which one rank runs while the others wait)
    collective: bool = True

    def __post_init__(self):
        if not isinstance(self.source, (ModelRef, ResultFolder, InMemory, Reconstruction)):
            raise ConfigError(f"source={self.source!r}: give a ModelRef, ResultFolder, InMemory or Reconstruction")
        if not isinstance(self.run, RunOptions):
            raise ConfigError(f"run={self.run!r}: give a RunOptions (device, precision, tile, batch)")
        for name in ("sets", "metrics"):  # tuples: a frozen config holds no list a caller could change
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "metric_options", check_options(self.metric_options))

    def on(self, device: str) -> "EvalConfig":
        """The same evaluation with the network on ``device``."""
        from dataclasses import replace

        return replace(self, run=self.run.on(device))

    def options_for(self, metric: str) -> dict:
        """The options of this run that ``metric`` declares (None: the metric's default)."""
        spec = get_spec(metric)
        given = self.metric_options.get(spec.name, {})
        return {o.name: given.get(o.name) for o in spec.options}

    def version_of(self, metric: str) -> str:
        """The version string ``metric``'s values are stored under in this run (torch-free)."""
        return get_spec(metric).version_for(self.options_for(metric), self.protocol)


def as_source(what) -> What:
    """``what`` as a typed source: a typed source as it is, a name or path as a :class:`ModelRef`, an evaluator
    model object (``aesop_bench.api.CallableModel``, ``models.inference.NetModel``) as :class:`InMemory`.

    >>> as_source("bicubic"), as_source(ResultFolder(Path("sr")))
    (ModelRef(name='bicubic', arch=None), ResultFolder(path=PosixPath('sr'), suffix=''))
    """
    import os

    if isinstance(what, (ModelRef, ResultFolder, InMemory, Reconstruction)):
        return what
    if isinstance(what, (str, os.PathLike)):
        return ModelRef(str(what))
    if all(hasattr(what, a) for a in ("identity", "name")):
        return InMemory(what)
    raise ConfigError(f"cannot evaluate a {type(what).__name__}: give a zoo name or checkpoint path, a ResultFolder, "
                      "or a model object with a name and an identity (aesop_bench.evaluate wraps any callable)")


def build_config(source: What, sets: str | Sequence[str] = DEFAULT_SETS,
                 metrics: str | Sequence[str] = DEFAULT_METRICS, protocol: str | Protocol = DEFAULT_PROTOCOL, *,
                 data_root: str | Path | None = None, out: str | Path | None = None,
                 run: RunOptions | None = None, metric_options: dict | None = None, ae: str | None = None,
                 fid_mode: str | None = None, clipiqa_split_above: int | None = None, **rest) -> EvalConfig:
    """The one way to an :class:`EvalConfig`: set and metric names expanded (``"all"``, folders, comma lists),
    the protocol by name or object, the data root's default, the shorthands folded into ``metric_options``
    (which wins over them), and the other fields (``save_sr``, ``download``, ``progress``, ``threads``, ``log``,
    ``name``, ``collective``) as given.

    >>> cfg = build_config(ModelRef("bicubic"), "set5", "psnr,fid", fid_mode="clean")
    >>> cfg.sets, cfg.metrics, cfg.protocol.name, cfg.options_for("fid")
    (('set5',), ('psnr', 'fid'), 'paper', {'fid_mode': 'clean'})
    """
    from ..data.sets import expand_sets
    from ..metrics.registry import expand_metrics
    from ..paths import data_root as default_root

    unknown = set(rest) - {f for f in EvalConfig.__dataclass_fields__} - {"source"}
    if unknown:
        raise ConfigError(f"unknown evaluation setting(s) {', '.join(sorted(unknown))}; the settings: "
                          f"{', '.join(f for f in EvalConfig.__dataclass_fields__ if f != 'source')}")
    prot = protocol if isinstance(protocol, Protocol) else get_protocol(str(protocol))
    options = check_options(metric_options, ae=ae, clipiqa_split_above=clipiqa_split_above, fid_mode=fid_mode)
    metrics = expand_metrics(metrics if isinstance(metrics, str) else list(metrics))
    return EvalConfig(source=source, sets=tuple(expand_sets(sets if isinstance(sets, str) else list(sets))),
                      metrics=tuple(metrics), protocol=prot, data_root=default_root(data_root),
                      out_dir=None if out is None else Path(out), run=run or RunOptions(),
                      metric_options=options, **rest)
