"""What an evaluation is asked to do: :class:`EvalConfig`, built by the CLI, :func:`aesop_bench.evaluate`, the
recipes and training validation, and read by the runner (:mod:`.runner`).

How the model runs is one :class:`~aesop_bench.models.options.RunOptions`; the metrics' options are one
``{metric: {option: value}}`` checked by each metric's spec (:func:`aesop_bench.metrics.registry.metric_options`).
Torch-free.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AesopBenchError
from ..metrics.registry import get_spec, metric_options
from ..models.options import RunOptions
from ..protocols import Protocol


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


@dataclass
class EvalConfig:
    """One evaluation: what (``model``, or ``sr_dir`` with ``model=None``), on which ``sets``, with which
    ``metrics`` under ``protocol``, and where the rows go (``out_dir``; None keeps them in memory and writes
    nothing).

    >>> from aesop_bench.protocols import get_protocol
    >>> cfg = EvalConfig(model="bicubic", sets=["set5"], metrics=["psnr", "fid"], protocol=get_protocol("paper"),
    ...                  data_root=Path("data"), out_dir=None, metric_options={"fid": {"fid_mode": "clean"}})
    >>> cfg.options_for("fid"), cfg.run.batch_limits()
    ({'fid_mode': 'clean'}, (1, None))
    >>> EvalConfig(model="bicubic", sets=["set5"], metrics=["fid"], protocol=get_protocol("paper"),
    ...            data_root=Path("data"), out_dir=None, metric_options={"fid": {"mode": "clean"}})
    Traceback (most recent call last):
    ...
    aesop_bench.errors.AesopBenchError: metric 'fid' takes no option mode; its options: fid_mode
    """

    model: "str | object | None"  # a name/path, a model object, or None with sr_dir
    sets: list[str]
    metrics: list[str]
    protocol: Protocol
    data_root: Path
    out_dir: Path | None
    run: RunOptions = field(default_factory=RunOptions)
    # {metric: {option: value}} in each metric's own option names (`aesop-bench metrics list` shows them)
    metric_options: dict = field(default_factory=dict)
    save_sr: bool = False
    download: bool = True
    arch: str | None = None  # for checkpoint paths
    progress: bool = True
    threads: int | None = None  # CPU threads (None: $AESOP_BENCH_THREADS, else the free cores; see threads.py)
    log: object = _stderr
    sr_dir: Path | None = None  # a folder of SR results instead of a model
    sr_suffix: str = ""
    name: str | None = None  # the run's label in tables and plots
    alone: bool = False  # this process evaluates by itself even under torchrun (no collectives): validation

    def __post_init__(self):
        if not isinstance(self.run, RunOptions):
            raise AesopBenchError(f"run={self.run!r}: give a RunOptions (device, precision, tile, batch)")
        self.metric_options = metric_options(self.metric_options)
        if (self.model is None) == (self.sr_dir is None):
            raise AesopBenchError("give either a model (--model) or a folder of SR images (--sr), one of them")

    def options_for(self, metric: str) -> dict:
        """The options of this run that ``metric`` declares (None: the metric's default)."""
        spec = get_spec(metric)
        given = self.metric_options.get(spec.name, {})
        return {o.name: given.get(o.name) for o in spec.options}

    def version_of(self, metric: str) -> str:
        """The version string ``metric``'s values are stored under in this run (torch-free)."""
        return get_spec(metric).version_for(self.options_for(metric), self.protocol)
