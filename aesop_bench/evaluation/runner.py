"""The evaluator: LR -> SR -> metrics -> results store, for any model and set.

For each image of each set:

1. HR is read (8-bit), grayscale handled by the protocol, cropped to a
   multiple of ``modcrop``;
2. LR is made with MATLAB-exact bicubic from that HR (``lr_source=make``) or
   read from the set's LR folder (``lr_source=folder``, checked for size);
3. SR comes from the SR cache (keyed by the model's identity and the LR's
   bytes) or from the model, quantised to 8 bits; or, for a result folder
   (``sr_dir``, see :mod:`.folders`), from its file;
4. each metric not yet in the results store is computed and stored.

The time the model and each metric spend is recorded per set, apart from the values (:mod:`.timings`). Every
CPU thread pool is set to one count at the first computation and looked at again between images and sets as the
machine's load changes (:class:`aesop_bench.threads.Pools`); no value depends on it.

:class:`Runner` does this in steps that read one at a time: :meth:`~Runner.plan` a set (which images lack which
values), :meth:`~Runner.compute_images` per batch, :meth:`~Runner.compute_distribution` (set-level values), and
:meth:`~Runner.summarise`. Where the SR images come from is a :class:`~.sources.Source`; what is asked is an
:class:`~.config.EvalConfig`; the sets and weights are made ready by :mod:`.prepare`.

Images whose metrics are all stored are not even read, and a run that finds every value stored answers without
importing torch; a killed run resumes.

Under ``torchrun`` (WORLD_SIZE > 1) the images of each set are shared between
the ranks (image i goes to rank i mod WORLD_SIZE); each rank stores its own
rows and makes the SR images and FID/pFID features of its share (cached on
disk), and rank 0 computes the set-level distances from them and writes the
results. A rank waits for the others at most ``$AESOP_BENCH_DIST_TIMEOUT``
minutes (default 60).

Length: the runner's steps read in order in one file; the config (:mod:`.config`), the sets and weights
(:mod:`.prepare`), batching (:mod:`.batching`) and the sources live apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..data.ldl import resolve_for
from ..data.sets import ResolvedSet, sr_subfolder
from ..distributed import barrier, init, together
from ..errors import ConfigError, InputError
from ..metrics.registry import Kind, get_spec
from .batching import batches
from .config import EvalConfig, ModelRef, Reconstruction, ResultFolder
from .prepare import check_sets_at_hand, fetch_weights, resolve_or_download
from .sources import NetworkSource, Source
from .store import SET_ROW, MemoryStore, ResultStore


def image_key(path: Path) -> str:
    """What an image is stored under in its set: its file's stem (``Path("a/baby.png")`` -> ``baby``)."""
    return path.stem


def make_source(cfg: EvalConfig) -> Source:
    """The run's source of SR images, for what ``cfg.source`` is: a result folder, a network (built from a
    reference, or the caller's), or an auto-encoder's reconstructions."""
    what = cfg.source
    if isinstance(what, ResultFolder):
        from .folders import FolderSource

        return FolderSource(what.path, len(cfg.sets), what.suffix, protocol=cfg.protocol)
    if isinstance(what, Reconstruction):
        from .reconstruction import ReconstructionSource

        return ReconstructionSource(what.net, what.name, cfg.run.device)
    if isinstance(what, ModelRef):
        return NetworkSource(what.name, cfg.protocol, cfg.run, what.arch, cfg.download)
    return NetworkSource(what.model, cfg.protocol, cfg.run, None, cfg.download)


@dataclass
class SetPlan:
    """One set as the runner works on it (:meth:`Runner.plan`): its files, each image's key, and what is missing
    from the store."""

    name: str
    res: ResolvedSet
    keys: list[str]
    todo: list[tuple[Path, str, str]]  # (HR file, key, digest of its files) of the images missing a value
    set_digest: str  # a digest of every file the set-level values come from
    distribution: list[str]  # set-level metrics missing from the store


class Runner:
    """One evaluation (``Runner(cfg).run()``); see the module docstring for its steps.

    >>> from aesop_bench.evaluation.config import build_config
    >>> cfg = build_config(ModelRef("bicubic"), "set5", "psnr", download=False, progress=False)
    >>> summary, rows = Runner(cfg).run()
    >>> len(rows), round(summary["sets"]["set5"]["metrics"]["psnr"], 3)   # bicubic x4 on Set5, paper protocol
    (5, 28.396)
    """

    def __init__(self, cfg: EvalConfig):
        from ..cache import check_budgets

        check_budgets()  # a malformed cache budget is refused before any work
        self.rank, self.world, _ = init() if cfg.collective else (0, 1, 0)  # barriers only: gloo, any device
        if cfg.out_dir is None and (self.world > 1 or cfg.save_sr):
            raise ConfigError("give an output folder (out=): " + (
                "under torchrun the ranks share one run folder" if self.world > 1 else "--save-sr writes into it"))
        if self.world > 1 and cfg.run.device == "cuda":  # each rank on its own GPU (the caller's config unchanged)
            cfg = cfg.on(f"cuda:{os.environ.get('LOCAL_RANK', 0)}")
        self.cfg = cfg
        self.source = make_source(cfg)
        self.versions = {m: cfg.version_of(m) for m in cfg.metrics}  # torch-free: what the store is asked for
        self.per_image = [m for m in cfg.metrics if get_spec(m).kind != Kind.DISTRIBUTION]
        self.log = cfg.log if self.rank == 0 else (lambda msg: None)
        self._downloads_tried: set = set()  # sets a download was tried for in this run (tried once)
        self._computing = False
        self.computed_on: str | None = None  # device, torch version and CPU threads of the values computed
        self.pools = None  # the CPU thread pools (aesop_bench.threads.Pools), from the first computation on
        self.timings = None  # what the model and the metrics spend (.timings.RunTimings), likewise
        self._holds_threads = False  # the source's network keeps the run's first thread count

    @cached_property
    def metrics(self) -> dict:
        """The metric objects, built when something is to be computed (their module imports torch)."""
        from ..metrics.metric import Metric

        return {m: Metric(m, self.cfg.protocol, self.cfg.run.device, **self.cfg.options_for(m))
                for m in self.cfg.metrics}

    def _start_computing(self) -> None:
        """What computing needs once per run: the CPU thread pools (set back as they were at the end),
        deterministic kernels, and the timings. A network whose outputs are not known to be independent of the
        thread count keeps the first count for the whole run."""
        if not self._computing:
            import torch

            from .. import threads
            from ..determinism import deterministic
            from ..models.identity import thread_invariant
            from .timings import RunTimings, machine

            self._computing = True
            self.pools = threads.Pools(self.cfg.threads)
            n = self.pools.start()
            self._stack.callback(self.pools.close)
            self._stack.enter_context(deterministic())
            cpu = self.cfg.run.device == "cpu"
            self._holds_threads = cpu and not thread_invariant(self.source.identity)
            if self._holds_threads and hasattr(self.source, "held_threads"):
                self.source.held_threads = n
            self.computed_on = self._where(n)
            self.timings = RunTimings(f"{machine(self.cfg.run.device)}, torch {torch.__version__}")
            if hasattr(self.source, "timer"):
                self.source.timer = lambda set_name, *spent: self.timings.add(set_name, "model", *spent)

    def _where(self, n: int) -> str:
        """Where values are computed (:attr:`computed_on`): the device tag, on the CPU with ``n`` threads."""
        from ..cache import device_tag

        device = device_tag(self.cfg.run.device)
        return f"{device}, {n} thread{'s' if n > 1 else ''}" if self.cfg.run.device == "cpu" else device

    def _revisit(self) -> None:
        """Between images and sets: the thread pools follow the machine's load (:meth:`threads.Pools.revisit`);
        the rows record the count, except where the network keeps its first one."""
        if self.pools is not None:
            n = self.pools.revisit()
            if not self._holds_threads:
                self.computed_on = self._where(n)

    def _spend(self, set_name: str, part: str, start: float, mpix: float, images: int) -> None:
        """Record the seconds since ``start`` for ``part`` (a metric) on ``images`` images of ``mpix`` HR MP."""
        import time

        self.timings.add(set_name, part, time.perf_counter() - start, mpix, images)

    def _store(self):
        cfg = self.cfg
        record = {"name": self.source.name, "identity": self.source.identity, "precision": cfg.run.precision,
                  "source": self.source.source_type}
        if cfg.name:
            record["label"] = cfg.name
        if getattr(getattr(cfg.source, "model", None), "cacheable", True) is False or isinstance(
                cfg.source, Reconstruction):  # its identity does not vouch for its outputs
            record["cacheable"] = False  # (a model in memory given no identity): its values are never resumed
        if cfg.out_dir is None:
            return MemoryStore(record, cfg.protocol.as_dict())
        store = None
        with together(self.world):  # rank 0 opens (and may refuse) the folder first
            if self.rank == 0:
                store = ResultStore(cfg.out_dir, record, cfg.protocol.as_dict())
        try:
            with together(self.world):
                if self.rank > 0:
                    store = ResultStore(cfg.out_dir, record, cfg.protocol.as_dict(), rank=self.rank)
        except BaseException:
            if store is not None:
                store.close()
            raise
        return store

    def run(self) -> tuple[dict, list[dict] | None]:
        """Evaluate every set; the summary (written to ``out_dir`` when there is one) and, in memory, the rows."""
        with together(self.world):
            if self.cfg.download and self.rank == 0:
                fetch_weights(self.cfg)
            if self.rank == 0:
                check_sets_at_hand(self.cfg)
        self.store = self._store()
        ok = False
        with contextlib.ExitStack() as self._stack:
            try:
                for name in self.cfg.sets:
                    self._revisit()
                    self.run_set(self.plan(name))
                ok = True
            finally:
                if ok:
                    barrier(self.world)
                summary = self.summarise(ok)
        return summary, getattr(self.store, "table", None)

    def plan(self, name: str) -> SetPlan:
        """Resolve the set (rank 0 downloads it where allowed), check it suits the metrics and the source, and
        find the images whose values are missing or no longer count."""
        with together(self.world):
            if self.rank == 0:
                res = resolve_or_download(name, self.cfg, self._downloads_tried)
                if res.data.get("fallback"):
                    self.log(f"{name}: {res.data['fallback']}")
        with together(self.world):
            if self.rank != 0:
                res = resolve_for(name, self.cfg.data_root, self.cfg.protocol)
            keys = [image_key(f) for f in res.hr_files]
            self._check_set(name, res, keys)
            self.source.prepare_set(name, res, self.log)
            digests = {k: self.source.row_digest(name, f) for f, k in zip(res.hr_files, keys)}
        todo = [(f, k, digests[k]) for f, k in zip(res.hr_files, keys)
                if not all(self.store.has(name, k, m, self.versions[m], digests[k]) for m in self.per_image)]
        h = hashlib.sha256()
        for k in keys:
            h.update(digests[k].encode())
        set_digest = h.hexdigest()[:20]
        self.store.plan_set(name, digests, set_digest, self.source.describe_set(name, res))
        return SetPlan(name, res, keys, todo, set_digest, distribution=[])

    def _check_set(self, name: str, res: ResolvedSet, keys: list[str]) -> None:
        """Refuse a set the metrics cannot be computed on, before anything is computed."""
        if len(set(keys)) != len(keys):
            raise ConfigError(f"{res.hr_dir}: two images share a name stem; rename one of them")
        if res.hr_dir is None and any(get_spec(m).kind in (Kind.FULL_REFERENCE, Kind.DISTRIBUTION) for m in self.versions):
            raise ConfigError(f"set {name!r} has no HR images; use no-reference metrics (and lr_psnr) only on it")
        if "fid" in self.versions and len(keys) < 2:
            raise ConfigError(f"set {name!r} has {len(keys)} image; fid compares the distributions of a set's "
                              "images (one feature per image) and needs at least 2: leave it out on this set "
                              "(pfid takes 299x299 patches and may still apply)")

    def run_set(self, plan: SetPlan) -> None:
        """Per-image values of this rank's share, ``--save-sr`` files, then the set-level values."""
        if self.rank == 0:
            self._say_stale(plan)
        mine = plan.todo[self.rank::self.world]
        with together(self.world):
            if mine and self.per_image:
                self.compute_images(plan, mine)
            if self.cfg.save_sr and self.source.writes_sr:
                self._save_missing_sr(plan)
        self.store.reload()
        plan.distribution = [m for m in self.versions if get_spec(m).kind == Kind.DISTRIBUTION
                             and not self.store.has(plan.name, SET_ROW, m, self.versions[m], plan.set_digest)]
        if plan.distribution and self.world > 1:  # every rank makes the SR and features of its share (cached
            with together(self.world):            # on disk) ...
                self._share_features(plan)
        with together(self.world):
            if plan.distribution and self.rank == 0:  # ... and rank 0 reads them back for the set's distance
                self.compute_distribution(plan)

    def _say_stale(self, plan: SetPlan) -> None:
        """Say which stored values no longer count: images whose files changed since (recomputed), and images no
        longer in the set (left out)."""
        rows = self.store.rows
        changed = [k for _, k, src in plan.todo
                   if any(rows.get((plan.name, k, m), (0, 0, src))[2] != src for m in self.per_image)]
        gone = sorted({i for (s, i, _) in rows if s == plan.name and i != SET_ROW} - set(plan.keys))

        def shown(items):
            return ", ".join(items[:10]) + (f" (+{len(items) - 10} more)" if len(items) > 10 else "")

        if changed:
            self.log(f"{plan.name}: {len(changed)} image(s) differ from the files their stored values came from; "
                     f"recomputing: {shown(changed)}")
        if gone:
            self.log(f"{plan.name}: {len(gone)} image(s) with stored values are no longer in the set; left out: "
                     f"{shown(gone)}")

    def _images(self, plan: SetPlan, hr_files: list[Path], need_lr: bool) -> list[tuple]:
        self._start_computing()
        return self.source.images(plan.res, plan.name, hr_files, plan.res.protocol(self.cfg.protocol), need_lr)

    def _bar(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="img", disable=not self.cfg.progress, leave=False, file=sys.stderr)

    def compute_images(self, plan: SetPlan, todo: list) -> None:
        """Per-image metrics of ``todo`` (``(HR file, key, digest)``), batch by batch."""
        need_lr = any(get_spec(m).kind == Kind.LR_REFERENCE for m in self.per_image)
        bar = self._bar(len(todo), plan.name)
        for group in batches(todo, *self.cfg.run.batch_limits()):
            self._compute_group(plan, group, need_lr)
            bar.update(len(group))
            self._revisit()
        bar.close()

    def _compute_group(self, plan: SetPlan, group: list, need_lr: bool) -> None:
        """Read and score one batch. Bad input in it (a file corrupt past its header, an image the protocol
        refuses: :class:`InputError`) fails the whole batch's reading: then each image is done alone, so that
        the others' values are stored, and the first failure is raised again."""
        try:
            loaded = self._images(plan, [f for f, _, _ in group], need_lr)
        except InputError:
            if len(group) == 1:
                raise
            _each_alone(lambda item: self._compute_group(plan, [item], need_lr), group)
            return
        shapes: dict[tuple, list] = {}  # a header's size can still hide a different crop or channel count
        for item, t in zip(group, loaded):
            shapes.setdefault(tuple(None if x is None else tuple(x.shape) for x in t), []).append((item, t))
        for run in shapes.values():
            self._score_batch(plan.name, run)

    def _score_batch(self, name: str, run: list) -> None:
        """Every metric missing from the store on a batch of images of one shape; each image's values are stored
        even when a later metric fails."""
        import time

        import torch

        if self.cfg.save_sr and self.source.writes_sr:
            from ..imageio import write_image

            for (_, key, _), (_, _, sr) in run:
                write_image(self._sr_file(name, key), sr)
        # (sr, hr, lr) batches, the order of Metric.score, from the sources' (hr, lr, sr)
        stacked = [None if run[0][1][i] is None else torch.stack([t[i] for _, t in run]) for i in (2, 0, 1)]
        values: list[dict] = [{} for _ in run]
        try:
            for m in self.per_image:
                want = [j for j, ((_, key, src), _) in enumerate(run)
                        if not self.store.has(name, key, m, self.versions[m], src)]
                if want:
                    start = time.perf_counter()
                    _score(self.metrics[m], stacked, want, [f for (f, _, _), _ in run], values)
                    self._spend(name, m, start, len(want) * stacked[0].shape[-2] * stacked[0].shape[-1] / 1e6,
                                len(want))
        finally:
            for ((_, key, src), _), vals in zip(run, values):
                if vals:
                    self.store.add(name, key, vals, src, on=self.computed_on)

    def _sr_file(self, set_name: str, key: str) -> Path:
        """Where ``--save-sr`` writes an image's SR."""
        return self.cfg.out_dir / "sr" / sr_subfolder(set_name) / f"{key}.png"

    def _save_missing_sr(self, plan: SetPlan) -> None:
        """``--save-sr`` on images whose metrics were stored earlier: their SR comes from the SR cache."""
        from ..imageio import write_image

        missing = [f for f in plan.res.hr_files[self.rank::self.world]
                   if not self._sr_file(plan.name, image_key(f)).is_file()]
        for group in batches(missing, *self.cfg.run.batch_limits(), path=lambda f: f):
            for hr_file, (_, _, sr) in zip(group, self._images(plan, group, True)):
                write_image(self._sr_file(plan.name, image_key(hr_file)), sr)

    def _features(self, plan: SetPlan, hr_files: list[Path], bar=None) -> dict[str, tuple[list, list]]:
        """The SR and HR features of ``hr_files`` for each missing set-level metric (cached on disk), in batches
        of images of any size (the feature networks see 299x299 inputs) within the pixel bound all the same."""
        import time

        feats: dict[str, tuple[list, list]] = {m: ([], []) for m in plan.distribution}
        for group in batches(hr_files, *self.cfg.run.batch_limits(), path=lambda f: f, same_size=False):
            loaded = self._images(plan, group, False)  # a model that has not run yet makes its SR images here
            mpix = sum(hr.shape[-2] * hr.shape[-1] for hr, _, _ in loaded) / 1e6
            for m in plan.distribution:
                start = time.perf_counter()
                feats[m][0].extend(self.metrics[m].features([sr for _, _, sr in loaded]))
                feats[m][1].extend(self.metrics[m].features([hr for hr, _, _ in loaded]))
                self._spend(plan.name, m, start, mpix, len(group))
            if bar is not None:
                bar.update(len(group))
            self._revisit()
        return feats

    def _share_features(self, plan: SetPlan) -> None:
        """This rank's share of the SR images and features, for the caches that rank 0 then reads instead of
        computing the whole set alone while the other ranks wait."""
        self._features(plan, plan.res.hr_files[self.rank::self.world])

    def compute_distribution(self, plan: SetPlan) -> None:
        """Set-level metrics: features of every SR and HR image (cached), then one distance per set."""
        import time

        from ..metrics.distribution import set_distance

        bar = self._bar(len(plan.res.hr_files), f"{plan.name} features")
        feats = self._features(plan, plan.res.hr_files, bar)
        bar.close()
        values = {}
        for m in plan.distribution:
            start = time.perf_counter()
            values[m] = (set_distance(*feats[m]), self.versions[m])
            self._spend(plan.name, m, start, 0.0, 0)  # the set's distance: time that goes with its images
        self.store.add(plan.name, SET_ROW, values, plan.set_digest, on=self.computed_on)

    def summarise(self, ok: bool) -> dict:
        """The run's summary of the current definitions' values; rank 0 writes it (a run that failed before
        storing anything leaves no empty summary, nor a run folder it created)."""
        store = self.store
        store.reload()
        extra = self.source.record(store.sets)
        if self.rank == 0 and self.timings is not None and self.timings.sets:
            measured = self.timings.as_dict()
            store.add_timings(measured)
            if self.cfg.out_dir is not None:
                self._add_machine_costs(measured)
        if store.timings:
            extra["timings"] = store.timings
        args = (self.versions, list(self.cfg.sets), list(self.versions))
        try:
            if self.rank == 0 and (ok or store.rows):
                return store.finalize(extra, *args)
            summary = store.summary(*args)
            summary.update(extra)
            return summary
        finally:
            store.close(discard_empty=not ok)

    def _add_machine_costs(self, measured: dict) -> None:
        """This machine's measured costs for ``reproduce --dry-run`` (:func:`.timings.add_run_costs`); a cost
        file that cannot be written does not fail the run."""
        import torch

        from .timings import add_run_costs, cost_key, machine

        key = cost_key(self.source.identity) if self.source.source_type == "model" else None
        try:
            add_run_costs(measured, key, machine(self.cfg.run.device), torch.__version__)
        except OSError as exc:
            self.log(f"measured costs not kept ({exc})")


def _each_alone(fn, items) -> None:
    """``fn`` on every item by itself; the first :class:`InputError` is raised again once all have run (any other
    error at once: it would fail every item alike)."""
    error = None
    for item in items:
        try:
            fn(item)
        except InputError as one:
            error = error or one
    if error is not None:
        raise error


def _score(m, stacked, want, files, values) -> None:
    """``m`` on the images ``want`` of a batch, into ``values``. When the batch fails on bad input
    (:class:`InputError`), each image is scored alone: the others' values are kept, and the first failure is
    raised again naming its file. Any other error (a configuration, a missing weights file) is raised as it is."""
    def part(idx):
        return [None if x is None else x[idx] for x in stacked]
    try:
        got = m.score(*part(want))
    except InputError as exc:
        if len(want) == 1:
            raise InputError(f"{files[want[0]]}: {exc}") from None
        _each_alone(lambda j: _score(m, stacked, [j], files, values), want)
        return
    for j, v in zip(want, got):
        values[j][m.name] = (float(v), m.version)


def run_evaluation(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg`` and return the summary (also written to ``cfg.out_dir``). The
    public entry point for users is :func:`aesop_bench.evaluate`, which builds the config.

    >>> import tempfile
    >>> from aesop_bench.evaluation.config import build_config
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> cfg = build_config(ModelRef("bicubic"), "set5", "psnr", "matlab", out=out, download=False, progress=False)
    >>> round(run_evaluation(cfg)["sets"]["set5"]["metrics"]["psnr"], 2), (out / "per_image.csv").is_file()
    (28.42, True)
    """
    return Runner(cfg).run()[0]


def run_in_memory(cfg: EvalConfig) -> tuple[dict, list[dict]]:
    """Run ``cfg`` with ``out_dir=None``: the summary and the per-image rows (``store.PER_IMAGE_COLUMNS``), with
    nothing written (no run folder, no lock, no rows file) and nothing resumed. :class:`Runner` shows an example.
    """
    if cfg.out_dir is not None:
        raise ConfigError("run_in_memory takes a config with out_dir=None")
    return Runner(cfg).run()
