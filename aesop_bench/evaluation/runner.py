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
rows, and rank 0 computes the set-level metrics and writes the results.
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..data.sets import SETS, ResolvedSet, fingerprints, resolve, set_folder
from ..distributed import barrier, init
from .. import threads
from ..errors import AesopBenchError
from ..metrics.registry import get_spec, weights_validator
from ..protocols import Protocol
from .sources import NetworkSource
from .store import SET_ROW, ResultStore


@dataclass
class EvalConfig:
    model: "str | object | None"  # a name/path, a model object, or None with sr_dir
    sets: list[str]
    metrics: list[str]
    protocol: Protocol
    data_root: Path
    out_dir: Path
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
    log: object = field(default=lambda msg: print(msg, file=sys.stderr))
    sr_dir: Path | None = None  # a folder of SR results instead of a model
    sr_suffix: str = ""
    name: str | None = None  # the run's label in tables and plots

    def __post_init__(self):
        from ..models.inference import check_tiling

        check_tiling(self.tile, self.tile_overlap)

    def metric_options(self, spec) -> dict:
        """The options of this run that ``spec`` declares (None: the metric's default)."""
        given = {"ae": self.ae, "split_above": self.clipiqa_split_above, "fid_mode": self.fid_mode}
        return {o.name: given.get(o.name) for o in spec.options}


def image_key(path: Path) -> str:
    return path.stem


def _source(cfg: "EvalConfig"):
    if cfg.sr_dir is not None:
        from .folders import FolderSource

        if cfg.model is not None:
            raise AesopBenchError("give either a model or an SR folder (--sr), not both")
        return FolderSource(cfg.sr_dir, len(cfg.sets), cfg.sr_suffix)
    if cfg.model is None:
        raise AesopBenchError("nothing to evaluate: give a model (--model) or a folder of SR images (--sr)")
    return NetworkSource(cfg)


def _resolve_or_download(name: str, cfg: EvalConfig) -> ResolvedSet:
    """A set ready to evaluate: a registered set is downloaded (or completed) when allowed and refused when
    it lacks images or holds others; a folder is taken as it is."""
    if name in SETS:
        from ..data.manage import download_set, incomplete, require_complete

        absent = set_folder(name, cfg.data_root) is None
        if cfg.download and (absent or incomplete(name, cfg.data_root)[0]) and (SETS[name].archive or absent or
                                                                                 fingerprints(name)):
            cfg.log(f"{name}: {'not under ' + str(cfg.data_root) if absent else 'incomplete'}; downloading")
            download_set(name, cfg.data_root, log=cfg.log)
        if set_folder(name, cfg.data_root) is not None:
            require_complete(name, cfg.data_root)
    return resolve(name, cfg.data_root)


def _fetch_weights(cfg: EvalConfig) -> None:
    """Download the weight files the run's metrics need and the cache lacks (``--no-download``: never)."""
    from .. import weights as wm

    for m in cfg.metrics:
        spec = get_spec(m)
        names = list(spec.needs)
        ae = cfg.metric_options(spec).get("ae")
        if ae and not os.path.isfile(ae):
            names = [ae if n == "aesop_ae" else n for n in names]
        for n in names:
            if n in wm.manifest() and not wm.cache_path(wm.entry(n)).is_file():
                wm.download(n, log=cfg.log, validate=weights_validator(n))


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg`` and return the summary (also written to ``cfg.out_dir``)."""
    from ..determinism import deterministic

    with deterministic():
        return _evaluate(cfg)


def _evaluate(cfg: EvalConfig) -> dict:
    from ..metrics.metric import Metric

    rank, world, _ = init()  # barriers only: gloo, CPU tensors on any device
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
    if rank == 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict())
    barrier(world)
    if rank != 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict(), rank=rank)
    set_images: dict[str, list[str]] = {}
    sources: dict[tuple[str, str], str] = {}  # (set, image) -> hash of its files (result folders)
    ok = False
    try:
        for name in cfg.sets:
            if rank == 0:
                res = _resolve_or_download(name, cfg)
            barrier(world)
            if rank != 0:
                res = resolve(name, cfg.data_root)
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
            if dist and rank == 0:
                _evaluate_distribution(cfg, res, name, dist, store, source, set_src)
        ok = True
    finally:
        if ok:
            barrier(world)
        store.reload()
        extra = {"sr_folder": source.record()} if source.kind == "folder" and source.sets else None
        try:
            if rank == 0 and (ok or store.rows):  # a run that failed before storing anything leaves no empty summary
                summary = store.finalize(set_images, extra, sources)
            else:
                summary = store.summary(set_images, sources)
        finally:
            store.close()
    return summary


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

    from ..imageio import write_image

    need_lr = any(m.spec.kind == "lr_reference" for m in metrics)  # a model source makes the LR regardless
    bar = tqdm(todo, desc=f"{name}", unit="img", disable=not cfg.progress, leave=False, file=sys.stderr)
    for hr_file, key, src in bar:
        hr, lr, sr = source.images(res, name, hr_file, cfg.protocol, need_lr)
        if cfg.save_sr and source.kind == "model":
            write_image(cfg.out_dir / "sr" / Path(name).name / f"{key}.png", sr)
        batch = [None if x is None else x.unsqueeze(0) for x in (sr, hr, lr)]
        values = {}
        for m in metrics:
            if store.has(name, key, m.name, m.version, src):
                continue
            try:
                values[m.name] = (float(m.score(*batch)[0]), m.version)
            except AesopBenchError as exc:
                raise AesopBenchError(f"{hr_file}: {exc}") from None
        store.add(name, key, values, src)


def _save_missing_sr(cfg, res, name, source, rank, world) -> None:
    """``--save-sr`` on images whose metrics were stored earlier: their SR comes from the SR cache."""
    from ..imageio import write_image

    for hr_file in res.hr_files[rank::world]:
        path = cfg.out_dir / "sr" / Path(name).name / f"{image_key(hr_file)}.png"
        if not path.is_file():
            _, _, sr = source.images(res, name, hr_file, cfg.protocol, True)
            write_image(path, sr)


def _evaluate_distribution(cfg, res, name, metrics, store, source, set_src) -> None:
    """Set-level metrics: features of every SR and HR image (cached), then one distance per set."""
    from tqdm import tqdm

    from ..metrics.distribution import set_distance

    sr_feats: dict[str, list] = {m.name: [] for m in metrics}
    hr_feats: dict[str, list] = {m.name: [] for m in metrics}
    for hr_file in tqdm(res.hr_files, desc=f"{name} features", unit="img", disable=not cfg.progress,
                        leave=False, file=sys.stderr):
        hr, lr, sr = source.images(res, name, hr_file, cfg.protocol, False)
        for m in metrics:
            sr_feats[m.name].append(m.features(sr))
            hr_feats[m.name].append(m.features(hr))
    store.add(name, SET_ROW, {m.name: (set_distance(sr_feats[m.name], hr_feats[m.name]), m.version)
                              for m in metrics}, set_src)
