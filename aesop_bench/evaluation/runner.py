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

The model is a zoo name, checkpoint, card or interpolation (a string), or an
object following the model interface of :class:`aesop_bench.models.inference.NetModel` (an in-memory
network wrapped by :func:`aesop_bench.api.evaluate`).

Images whose metrics are all stored are not even read, so a finished run
repeats in well under a second plus start-up, and a killed one resumes.

Under ``torchrun`` (WORLD_SIZE > 1) the images of each set are shared between
the ranks (image i goes to rank i mod WORLD_SIZE); each rank stores its own
rows and makes the SR images and FID/pFID features of its share (cached on
disk), and rank 0 computes the set-level distances from them and writes the
results. A rank waits for the others at most ``$AESOP_BENCH_DIST_TIMEOUT``
minutes (default 60).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data.ldl import resolve_for
from ..data.sets import SETS, ResolvedSet, fingerprints, set_folder
from ..distributed import barrier, init
from .. import threads
from ..errors import AesopBenchError
from ..metrics.registry import get_spec, weights_validator
from ..protocols import Protocol
from .sources import NetworkSource
from .store import SET_ROW, MemoryStore, ResultStore


@dataclass
class EvalConfig:
    model: "str | object | None"  # a name/path, a model object, or None with sr_dir
    sets: list[str]
    metrics: list[str]
    protocol: Protocol
    data_root: Path
    out_dir: Path | None  # None: the rows are kept in memory, nothing is written (evaluate_in_memory)
    device: str = "cpu"
    save_sr: bool = False
    download: bool = True
    ae: str | None = None  # the auto-encoder of ae_psnr (weights name or path)
    clipiqa_split_above: int | None = None  # pixels; larger images are scored by quadrants
    fid_mode: str = "legacy_pytorch"
    arch: str | None = None  # for checkpoint paths
    precision: str = "fp32"
    tile: int | None = None
    tile_overlap: int = 32
    progress: bool = True
    threads: int | None = None  # CPU threads (None: $AESOP_BENCH_THREADS, else the free cores; see threads.py)
    batch: int | None = None  # images of one size per network call (None: AUTO_BATCH on a GPU, 1 on the CPU)
    log: object = field(default=lambda msg: print(msg, file=sys.stderr))
    sr_dir: Path | None = None  # a folder of SR results instead of a model
    sr_suffix: str = ""
    name: str | None = None  # the run's label in tables and plots
    alone: bool = False  # this process evaluates by itself even under torchrun (no collectives): validation
    # {metric: {option: value}} in each metric's own option names (`aesop-bench metrics list` shows them); they
    # override the flat fields above (ae, clipiqa_split_above, fid_mode)
    metric_opts: dict = field(default_factory=dict)

    def __post_init__(self):
        from ..distributed import check_device_name
        from ..models.inference import check_tiling

        check_metric_options(self.metric_opts)
        check_device_name(self.device)
        check_tiling(self.tile, self.tile_overlap)
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int)
                                       or self.batch < 1):
            raise AesopBenchError(f"--batch {self.batch!r}: give a whole number of images, 1 or more (1: one image "
                                  "per network call), or leave it out")

    def metric_options(self, spec) -> dict:
        """The options of this run that ``spec`` declares (None: the metric's default)."""
        given = {"ae": self.ae, "split_above": self.clipiqa_split_above, "fid_mode": self.fid_mode,
                 **self.metric_opts.get(spec.name, {})}
        return {o.name: given.get(o.name) for o in spec.options}


FLAT_METRIC_OPTIONS = ("ae", "clipiqa_split_above", "fid_mode")  # EvalConfig fields that are metric options


def check_metric_options(options) -> None:
    """Refuse ``{metric: {option: value}}`` naming a metric or an option that does not exist, naming the valid
    ones (each metric's spec is the one place its options are defined)."""
    from ..metrics.registry import METRICS

    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise AesopBenchError(f"metric options {options!r}: give {{metric: {{option: value}}}}, e.g. "
                              "{'clipiqa': {'split_above': 1000000}}")
    for name, opts in options.items():
        if name not in METRICS:
            raise AesopBenchError(f"metric options for {name!r}: no such metric; the metrics: {', '.join(METRICS)}")
        METRICS[name].resolve_options(opts)  # names the metric's options when one is unknown


def image_key(path: Path) -> str:
    return path.stem


AUTO_BATCH = (16, 4_000_000)  # on a GPU: at most 16 images and 4 million HR pixels per batch


def batch_limits(cfg: "EvalConfig") -> tuple[int, int | None]:
    """Images per batch and HR pixels per batch (None: no bound) for ``cfg``: ``cfg.batch`` images when given,
    else :data:`AUTO_BATCH` on a GPU, and one image on the CPU (where a batch runs no faster)."""
    if cfg.batch is not None:
        return cfg.batch, None
    return AUTO_BATCH if str(cfg.device).startswith("cuda") else (1, None)


def batches(items: list, size: int, pixels: int | None = None, path=lambda item: item[0], same_size: bool = True):
    """``items`` (each naming its HR file through ``path``) in batches of at most ``size`` images and ``pixels``
    HR pixels (always one image at least), read from the files' headers: of one size each, or with
    ``same_size=False`` consecutive images of any size (for networks that resize them; a model still runs once
    per LR shape). Files whose header cannot be read go alone in a batch of one size (reading them says what is
    wrong)."""
    from ..imageio import image_size

    if size == 1:
        yield from ([item] for item in items)
        return
    if not same_size:
        group, used = [], 0
        for item in items:
            wh = image_size(path(item))
            px = wh[0] * wh[1] if wh else 0
            if group and (len(group) == size or (pixels is not None and used + px > pixels)):
                yield group
                group, used = [], 0
            group.append(item)
            used += px
        if group:
            yield group
        return
    by_size: dict = {}
    for item in items:
        by_size.setdefault(image_size(path(item)), []).append(item)
    for wh, group in by_size.items():
        n = 1 if wh is None else size if pixels is None else max(1, min(size, pixels // (wh[0] * wh[1])))
        for i in range(0, len(group), n):
            yield group[i:i + n]


def _source(cfg: "EvalConfig"):
    if cfg.sr_dir is not None:
        from .folders import FolderSource

        if cfg.model is not None:
            raise AesopBenchError("give either a model or an SR folder (--sr), not both")
        return FolderSource(cfg.sr_dir, len(cfg.sets), cfg.sr_suffix, protocol=cfg.protocol)
    if cfg.model is None:
        raise AesopBenchError("nothing to evaluate: give a model (--model) or a folder of SR images (--sr)")
    return NetworkSource(cfg)


def _resolve_or_download(name: str, cfg: EvalConfig, tried: set) -> ResolvedSet:
    """A set ready to evaluate, as the protocol reads it (:func:`aesop_bench.data.ldl.resolve_for`): a registered
    set is downloaded (or completed) when allowed and refused when it lacks images or holds others; a folder is
    taken as it is. LDL's test data is fetched once per run where the protocol reads it and it is missing; when
    that fails the set's own files are used, and the log and the run's record say so."""
    from ..data import ldl

    if ldl.reads_ldl(name, cfg.protocol) and ldl.set_dir(name, cfg.data_root, cfg.protocol.scale) is None \
            and cfg.download and "ldl" not in tried:
        tried.add("ldl")
        cfg.log(f"{name}: LDL's test data (which the paper's evaluation reads) is not under {cfg.data_root}; "
                "downloading")
        try:
            ldl.download(cfg.data_root, log=cfg.log, sets=[s for s in cfg.sets if ldl.reads_ldl(s, cfg.protocol)])
        except (AesopBenchError, OSError) as exc:  # OSError: a read-only data root
            cfg.log(f"{name}: {exc}")
    if ldl.reads_ldl(name, cfg.protocol) and ldl.set_dir(name, cfg.data_root, cfg.protocol.scale) is not None:
        return ldl.resolve_for(name, cfg.data_root, cfg.protocol)
    if name in SETS:
        from ..data.manage import download_set, incomplete, require_complete

        absent = set_folder(name, cfg.data_root) is None
        if cfg.download and (absent or incomplete(name, cfg.data_root)[0]) and (SETS[name].archive or absent or
                                                                                 fingerprints(name)):
            cfg.log(f"{name}: {'not under ' + str(cfg.data_root) if absent else 'incomplete'}; downloading")
            download_set(name, cfg.data_root, log=cfg.log)
        if set_folder(name, cfg.data_root) is not None:
            require_complete(name, cfg.data_root)
    return ldl.resolve_for(name, cfg.data_root, cfg.protocol)


def _fetch_weights(cfg: EvalConfig) -> None:
    """Download the weight files the run's metrics need and the cache lacks (``--no-download``: never)."""
    from .. import weights as wm

    for m in cfg.metrics:
        spec = get_spec(m)
        names = list(spec.needs)
        ae = cfg.metric_options(spec).get("ae")
        if ae:  # --ae replaces the released AE: a file is used as it is, a name is fetched instead
            names = [n for n in names if n != "aesop_ae"] + ([] if os.path.isfile(ae) else [ae])
        for n in names:
            if n in wm.manifest() and not wm.cache_path(wm.entry(n)).is_file():
                wm.download(n, log=cfg.log, validate=weights_validator(n))


def prefetch(cfg: EvalConfig) -> list[str]:
    """Download and verify what ``evaluate(cfg)`` needs (each set as the protocol reads it, LDL's data included,
    the metrics' weights, a zoo model's weights) and compute nothing; one line per set and weight file, then the
    total size on disk."""
    from .. import weights as wm

    if not cfg.download:
        raise AesopBenchError("--fetch-only downloads: leave out --no-download")
    lines, total, tried = [], 0, set()
    for name in cfg.sets:
        res = _resolve_or_download(name, cfg, tried)
        files = [*res.hr_files, *(f for f in (res.lr_file(h, cfg.protocol.scale) for h in res.hr_files) if f)] \
            if res.lr_source == "folder" else list(res.hr_files)
        size = sum(f.stat().st_size for f in files)
        total += size
        lines.append(f"{name}: {len(res.hr_files)} images, {size / 1e6:.1f} MB, {res.data.get('hr', res.root)}" +
                     (f" (LR: {res.data['lr']})" if res.data.get("source") == "ldl" else "") +
                     (" (fallback: LDL's test data not at hand)" if res.data.get("fallback") else ""))
    _fetch_weights(cfg)
    names = [n for m in cfg.metrics for n in get_spec(m).needs]
    if isinstance(cfg.model, str) and cfg.sr_dir is None:
        from ..models.zoo import ZOO, resolve_model

        resolve_model(cfg.model, cfg.arch, download=True)
        names += [ZOO[cfg.model].weights] if cfg.model in ZOO and ZOO[cfg.model].weights else []
    for n in dict.fromkeys(names):
        path = wm.cache_path(wm.entry(n)) if n in wm.manifest() else None
        if path is not None and path.is_file():
            total += path.stat().st_size
            lines.append(f"weights {n}: {path.stat().st_size / 1e6:.1f} MB, {path}")
    lines.append(f"total {total / 1e6:.1f} MB, verified; run the same command with --no-download to compute")
    return lines


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg`` and return the summary (also written to ``cfg.out_dir``)."""
    from ..determinism import deterministic

    with deterministic():
        return _evaluate(cfg)[0]


def evaluate_in_memory(cfg: EvalConfig) -> tuple[dict, list[dict]]:
    """Run ``cfg`` with ``out_dir=None``: the summary and the per-image rows (``store.PER_IMAGE_COLUMNS``), with
    nothing written (no run folder, no lock, no rows file) and nothing resumed."""
    from ..determinism import deterministic

    if cfg.out_dir is not None:
        raise AesopBenchError("evaluate_in_memory takes a config with out_dir=None")
    with deterministic():
        return _evaluate(cfg)


def _evaluate(cfg: EvalConfig) -> tuple[dict, list[dict] | None]:
    from ..metrics.metric import Metric

    rank, world, _ = (0, 1, 0) if cfg.alone else init()  # barriers only: gloo, CPU tensors on any device
    if cfg.out_dir is None and (world > 1 or cfg.save_sr):
        raise AesopBenchError("give an output folder (out=): " + ("under torchrun the ranks share one run folder"
                                                                  if world > 1 else "--save-sr writes into it"))
    threads.apply(cfg.threads)
    if world > 1 and cfg.device == "cuda":
        cfg.device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    source = _source(cfg)
    run_model = {"name": source.name, "identity": source.identity, "precision": cfg.precision, "source": source.kind}
    if cfg.name:
        run_model["label"] = cfg.name
    if cfg.download and rank == 0:
        _fetch_weights(cfg)
    barrier(world)
    metrics = [Metric(m, cfg.protocol, cfg.device, **cfg.metric_options(get_spec(m))) for m in cfg.metrics]
    if cfg.out_dir is None:
        store = MemoryStore(run_model, cfg.protocol.as_dict())
    elif rank == 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict())
    barrier(world)
    if rank != 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict(), rank=rank)
    current = {m.name: m.version for m in metrics}  # a summary averages only rows of these definitions
    set_images: dict[str, list[str]] = {}
    set_data: dict[str, dict] = {}  # set -> where its HR and LR came from, the area compared
    sources: dict[tuple[str, str], str] = {}  # (set, image) -> hash of its files (result folders)
    tried: set = set()
    ok = False
    try:
        for name in cfg.sets:
            if rank == 0:
                res = _resolve_or_download(name, cfg, tried)
                if res.data.get("fallback"):
                    cfg.log(f"{name}: {res.data['fallback']}")
            barrier(world)
            if rank != 0:
                res = resolve_for(name, cfg.data_root, cfg.protocol)
            set_data[name] = res.data
            keys = [image_key(f) for f in res.hr_files]
            if len(set(keys)) != len(keys):
                raise AesopBenchError(f"{res.hr_dir}: two images share a name stem; rename one of them")
            if res.hr_dir is None and any(m.spec.kind in ("full_reference", "distribution") for m in metrics):
                raise AesopBenchError(f"set {name!r} has no HR images; use no-reference metrics (and lr_psnr) "
                                      "only on it")
            if res.hr_dir is None and source.kind == "folder":
                raise AesopBenchError(f"set {name!r} has no HR images to match SR files against")
            source.prepare_set(name, res, cfg.log if rank == 0 else (lambda msg: None))
            set_images[name] = keys
            per_image = [m for m in metrics if m.spec.kind != "distribution"]
            todo = []
            for f, k in zip(res.hr_files, keys):
                src = source.row_source(name, f)
                if src is not None:
                    sources[(name, k)] = src
                if not all(store.has(name, k, m.name, m.version, src) for m in per_image):
                    todo.append((f, k, src))
            if rank == 0:
                _say_stale(cfg, store, name, keys, todo, per_image)
            mine = todo[rank::world]
            if mine and per_image:
                _evaluate_images(cfg, res, name, mine, per_image, store, source)
            if cfg.save_sr and source.kind == "model":
                _save_missing_sr(cfg, res, name, source, rank, world)
            barrier(world)
            store.reload()
            set_src = _set_source(source, name, res)
            if set_src is not None:
                sources[(name, SET_ROW)] = set_src
            dist = [m for m in metrics if m.spec.kind == "distribution"
                    and not store.has(name, SET_ROW, m.name, m.version, set_src)]
            if dist and world > 1:  # every rank makes the SR and features of its share (cached on disk) ...
                _share_features(cfg, res, name, dist, source, res.hr_files[rank::world])
                barrier(world)
            if dist and rank == 0:  # ... and rank 0 reads them back for the set's distance
                _evaluate_distribution(cfg, res, name, dist, store, source, set_src)
        ok = True
    finally:
        if ok:
            barrier(world)
        store.reload()
        extra = {"sr_folder": source.record()} if source.kind == "folder" and source.sets else {}
        extra["data"] = set_data
        try:
            if rank == 0 and (ok or store.rows):  # a run that failed before storing anything leaves no empty summary
                summary = store.finalize(set_images, extra, sources, current)
            else:
                summary = store.summary(set_images, sources, current)
        finally:
            store.close()
    return summary, getattr(store, "table", None)


def _say_stale(cfg, store, name, keys, todo, metrics) -> None:
    """Say which stored values no longer count: images whose files changed since (recomputed), and images no
    longer in the set (left out)."""
    changed = [k for _, k, src in todo if any(store.rows.get((name, k, m.name), (0, m.version, src))[2] != src
                                              for m in metrics)]
    gone = sorted({i for (s, i, _) in store.rows if s == name and i != SET_ROW} - set(keys))

    def shown(items):
        return ", ".join(items[:10]) + (f" (+{len(items) - 10} more)" if len(items) > 10 else "")

    if changed:
        cfg.log(f"{name}: {len(changed)} image(s) differ from the files their stored values came from; "
                f"recomputing: {shown(changed)}")
    if gone:
        cfg.log(f"{name}: {len(gone)} image(s) with stored values are no longer in the set; left out: {shown(gone)}")


def _set_source(source, set_name, res) -> str | None:
    """The hash of every file a set-level value comes from."""
    h = hashlib.sha256()
    for f in res.hr_files:
        h.update(source.row_source(set_name, f).encode())
    return h.hexdigest()[:20]


def _evaluate_images(cfg, res, name, todo, metrics, store, source) -> None:
    from tqdm import tqdm

    need_lr = any(m.spec.kind == "lr_reference" for m in metrics)  # a model source makes the LR regardless
    bar = tqdm(total=len(todo), desc=f"{name}", unit="img", disable=not cfg.progress, leave=False, file=sys.stderr)
    for group in batches(todo, *batch_limits(cfg)):
        triples = source.images(res, name, [f for f, _, _ in group], res.protocol(cfg.protocol), need_lr)
        shapes: dict[tuple, list] = {}  # a header's size can still hide a different crop or channel count
        for item, t in zip(group, triples):
            shapes.setdefault(tuple(None if x is None else tuple(x.shape) for x in t), []).append((item, t))
        for run in shapes.values():
            _score_batch(cfg, name, run, metrics, store, source)
        bar.update(len(group))
    bar.close()


def _score_batch(cfg, name, run, metrics, store, source) -> None:
    """Every metric missing from the store on a batch of images of one shape; each image's values are stored
    even when a later metric fails."""
    import torch

    from ..imageio import write_image

    if cfg.save_sr and source.kind == "model":
        for (_, key, _), (_, _, sr) in run:
            write_image(_sr_file(cfg, name, key), sr)
    # (sr, hr, lr) batches, the order of Metric.score, from the sources' (hr, lr, sr)
    stacked = [None if run[0][1][i] is None else torch.stack([t[i] for _, t in run]) for i in (2, 0, 1)]
    values: list[dict] = [{} for _ in run]
    try:
        for m in metrics:
            want = [j for j, ((_, key, src), _) in enumerate(run) if not store.has(name, key, m.name, m.version, src)]
            if want:
                _score(m, stacked, want, [f for (f, _, _), _ in run], values)
    finally:
        for ((_, key, src), _), vals in zip(run, values):
            if vals:
                store.add(name, key, vals, src)


def _score(m, stacked, want, files, values) -> None:
    """``m`` on the images ``want`` of a batch, into ``values``. When the batch fails, each image is scored alone:
    the others' values are kept, and the first failure is raised again naming its file."""
    def part(idx):
        return [None if x is None else x[idx] for x in stacked]
    try:
        got = m.score(*part(want))
    except AesopBenchError as exc:
        if len(want) == 1:
            raise AesopBenchError(f"{files[want[0]]}: {exc}") from None
        error = None
        for j in want:
            try:
                _score(m, stacked, [j], files, values)
            except AesopBenchError as one:
                error = error or one
        if error is not None:
            raise error from None
        return
    for j, v in zip(want, got):
        values[j][m.name] = (float(v), m.version)


def _sr_file(cfg, set_name: str, key: str) -> Path:
    """Where ``--save-sr`` writes an image's SR."""
    return cfg.out_dir / "sr" / Path(set_name).name / f"{key}.png"


def _save_missing_sr(cfg, res, name, source, rank, world) -> None:
    """``--save-sr`` on images whose metrics were stored earlier: their SR comes from the SR cache."""
    from ..imageio import write_image

    missing = [f for f in res.hr_files[rank::world] if not _sr_file(cfg, name, image_key(f)).is_file()]
    for group in batches(missing, *batch_limits(cfg), path=lambda f: f):
        for hr_file, (_, _, sr) in zip(group, source.images(res, name, group, res.protocol(cfg.protocol), True)):
            write_image(_sr_file(cfg, name, image_key(hr_file)), sr)


def _share_features(cfg, res, name, metrics, source, hr_files) -> None:
    """The SR images and the features of one rank's share of a set, for the caches (SR images, features) that
    rank 0 then reads instead of computing the whole set alone while the other ranks wait."""
    for group in batches(hr_files, *batch_limits(cfg), path=lambda f: f, same_size=False):
        triples = source.images(res, name, group, res.protocol(cfg.protocol), False)
        for m in metrics:
            m.features([sr for _, _, sr in triples])
            m.features([hr for hr, _, _ in triples])


def _evaluate_distribution(cfg, res, name, metrics, store, source, set_src) -> None:
    """Set-level metrics: features of every SR and HR image (cached), then one distance per set."""
    from tqdm import tqdm

    from ..metrics.distribution import set_distance

    sr_feats: dict[str, list] = {m.name: [] for m in metrics}
    hr_feats: dict[str, list] = {m.name: [] for m in metrics}
    bar = tqdm(total=len(res.hr_files), desc=f"{name} features", unit="img", disable=not cfg.progress,
               leave=False, file=sys.stderr)
    # images of any size together (the feature networks see 299x299 inputs), within the pixel bound all the same:
    # a model that has not run yet makes their SR images here
    for group in batches(res.hr_files, *batch_limits(cfg), path=lambda f: f, same_size=False):
        triples = source.images(res, name, group, res.protocol(cfg.protocol), False)
        for m in metrics:
            sr_feats[m.name] += m.features([sr for _, _, sr in triples])
            hr_feats[m.name] += m.features([hr for hr, _, _ in triples])
        bar.update(len(group))
    bar.close()
    store.add(name, SET_ROW, {m.name: (set_distance(sr_feats[m.name], hr_feats[m.name]), m.version)
                              for m in metrics}, set_src)
