"""The evaluator: LR -> SR -> metrics -> results store, for any model and set.

For each image of each set:

1. HR is read (8-bit), grayscale handled by the protocol, cropped to a
   multiple of ``modcrop``;
2. LR is made with MATLAB-exact bicubic from that HR (``lr_source=make``) or
   read from the set's LR folder (``lr_source=folder``, checked for size);
3. SR comes from the SR cache (keyed by the model's identity and the LR's
   bytes) or from the model, quantised to 8 bits;
4. each metric not yet in the results store is computed and stored.

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

from ..data.sets import ResolvedSet, SETS, resolve, set_folder
from ..errors import AesopBenchError
from ..paths import sr_cache_dir
from .protocol import Protocol
from .store import SET_ROW, ResultStore


@dataclass
class EvalConfig:
    model: str
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
    log: object = field(default=lambda msg: print(msg, file=sys.stderr))


def image_key(path: Path) -> str:
    return path.stem


class _LazyModel:
    """Builds the network on the first SR cache miss, so cached runs never load weights."""

    def __init__(self, cfg: "EvalConfig"):
        from ..models.zoo import model_identity

        self.cfg = cfg
        self.name, self.scale = cfg.model, cfg.protocol.scale
        self._model = None
        self.identity = model_identity(cfg.model, self.scale, cfg.arch, cfg.precision, cfg.tile, cfg.tile_overlap)

    def get(self):
        if self._model is None:
            from ..models.zoo import load_model

            c = self.cfg
            self._model = load_model(c.model, self.scale, c.device, c.arch, c.precision, c.tile, c.tile_overlap)
            if self._model.identity != self.identity:
                raise AesopBenchError(f"model identity changed while loading: {self.identity} -> "
                                      f"{self._model.identity}")
        return self._model


def _resolve_or_download(name: str, cfg: EvalConfig) -> ResolvedSet:
    if set_folder(name, cfg.data_root) is None and cfg.download and name in SETS:
        from ..data.manage import download_set

        cfg.log(f"{name}: not under {cfg.data_root}; downloading")
        download_set(name, cfg.data_root, log=cfg.log)
    return resolve(name, cfg.data_root)


def _sr_cache_path(identity: str, scale: int, lr) -> Path:
    h = hashlib.sha256()
    h.update(str(tuple(lr.shape)).encode())
    h.update(lr.contiguous().numpy().tobytes())
    key = h.hexdigest()
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in identity)
    return sr_cache_dir() / safe / f"x{scale}" / key[:2] / f"{key}.png"


def _load_pair(res: ResolvedSet, hr_file: Path, protocol: Protocol):
    from ..data.imresize import imresize
    from ..data.transforms import mod_crop, to_rgb
    from ..imageio import read_image

    hr = read_image(hr_file)
    if protocol.grayscale == "rgb":
        hr = to_rgb(hr)
    if res.hr_dir is None:  # real-world LR inputs, no ground truth
        return None, hr
    hr = mod_crop(hr, protocol.effective_modcrop)
    s = protocol.scale
    if protocol.lr_source == "make":
        return hr, imresize(hr, 1.0 / s)
    lr_file = res.lr_file(hr_file, s)
    if lr_file is None:
        raise AesopBenchError(
            f"{hr_file}: no LR image for x{s} in {res.lr_dirs.get(s, res.root / 'LR_bicubic' / f'X{s}')} "
            f"(looked for {hr_file.stem}x{s}.png and {hr_file.name}); run `aesop-bench data make-lr` "
            "or use --lr-source make"
        )
    lr = read_image(lr_file)
    if protocol.grayscale == "rgb":
        lr = to_rgb(lr)
    elif lr.shape[0] != hr.shape[0]:
        raise AesopBenchError(f"{lr_file}: {lr.shape[0]} channels but its HR {hr_file} has {hr.shape[0]}")
    want = (hr.shape[-2] // s, hr.shape[-1] // s)
    if tuple(lr.shape[-2:]) != want:
        raise AesopBenchError(
            f"{lr_file}: LR size {lr.shape[-1]}x{lr.shape[-2]} does not match HR {hr_file.name} "
            f"({hr.shape[-1]}x{hr.shape[-2]} after modcrop {protocol.effective_modcrop}) / {s} = "
            f"{want[1]}x{want[0]}; check --modcrop or regenerate the LR with `aesop-bench data make-lr`"
        )
    return hr, lr


def _super_resolve(model: _LazyModel, lr, device: str):
    import torch

    from ..imageio import quantize, read_image, to_float, write_image

    path = _sr_cache_path(model.identity, model.scale, lr)
    want = (lr.shape[0], lr.shape[1] * model.scale, lr.shape[2] * model.scale)
    if path.is_file():
        try:
            sr = read_image(path)
            if tuple(sr.shape) == want:
                return sr
        except AesopBenchError:
            pass  # a damaged cache entry is recomputed
    net = model.get()
    with torch.inference_mode():
        out = net(to_float(lr).unsqueeze(0).to(device))
    sr = quantize(out[0].cpu())
    if tuple(sr.shape) != want:
        raise AesopBenchError(f"model {model.name!r} returned shape {tuple(sr.shape)} for LR {tuple(lr.shape)}; "
                              f"expected {want}")
    write_image(path, sr)
    return sr


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg`` and return the summary (also written to ``cfg.out_dir``)."""
    from ..metrics.registry import METRICS

    rank, world = _ranks()
    if world > 1 and cfg.device == "cuda":
        cfg.device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}"
    if str(cfg.device).startswith("cuda"):
        _deterministic_cuda()
    model = _LazyModel(cfg)
    run_model = {"name": cfg.model, "identity": model.identity, "precision": cfg.precision}
    if rank == 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict())
    _barrier(world)
    if rank != 0:
        store = ResultStore(cfg.out_dir, run_model, cfg.protocol.as_dict(), rank=rank)
    specs = [METRICS[m] for m in cfg.metrics]
    options = {"ae": cfg.ae, "clipiqa_split_above": cfg.clipiqa_split_above, "fid_mode": cfg.fid_mode}
    versions = {s.name: s.version_for(options) for s in specs}
    set_images: dict[str, list[str]] = {}
    ok = False
    try:
        for name in cfg.sets:
            if rank == 0:
                res = _resolve_or_download(name, cfg)
            _barrier(world)
            if rank != 0:
                res = resolve(name, cfg.data_root)
            keys = [image_key(f) for f in res.hr_files]
            if len(set(keys)) != len(keys):
                raise AesopBenchError(f"{res.hr_dir}: two images share a name stem; rename one of them")
            set_images[name] = keys
            if res.hr_dir is None and any(s.kind in ("full_reference", "distribution") for s in specs):
                raise AesopBenchError(f"set {name!r} has no HR images; use no-reference metrics (and lr_psnr) "
                                      "only on it")
            per_image = [s for s in specs if s.kind != "distribution"]
            todo = [(f, k) for f, k in zip(res.hr_files, keys)
                    if not all(store.has(name, k, s.name, versions[s.name]) for s in per_image)]
            mine = todo[rank::world]
            if mine and per_image:
                _evaluate_images(cfg, res, name, mine, per_image, store, model, versions, options)
            _barrier(world)
            store.reload()
            dist = [s for s in specs
                    if s.kind == "distribution" and not store.has(name, SET_ROW, s.name, versions[s.name])]
            if dist and rank == 0:
                _evaluate_distribution(cfg, res, name, dist, store, model, versions, options)
        ok = True
    finally:
        if ok:
            _barrier(world)
        store.reload()
        summary = store.finalize(set_images) if rank == 0 else store.summary(set_images)
    return summary


def _ranks() -> tuple[int, int]:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")  # barriers only: CPU tensors on any device
    return rank, world


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _deterministic_cuda() -> None:
    """Network metrics and models in true float32: no TF32, no autotuned (non-deterministic) kernels."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _evaluate_images(cfg, res, name, todo, specs, store, model, versions, options) -> None:
    from tqdm import tqdm

    from ..imageio import write_image
    from ..metrics.registry import MetricInputs

    bar = tqdm(todo, desc=f"{name}", unit="img", disable=not cfg.progress, leave=False, file=sys.stderr)
    for hr_file, key in bar:
        hr, lr = _load_pair(res, hr_file, cfg.protocol)
        sr = _super_resolve(model, lr, cfg.device)
        if cfg.save_sr:
            write_image(cfg.out_dir / "sr" / Path(name).name / f"{key}.png", sr)
        inputs = MetricInputs(sr=sr.unsqueeze(0), hr=None if hr is None else hr.unsqueeze(0),
                              lr=lr.unsqueeze(0), protocol=cfg.protocol,
                             device=cfg.device, options=options)
        values = {}
        for spec in specs:
            if store.has(name, key, spec.name, versions[spec.name]):
                continue
            try:
                values[spec.name] = (float(spec.fn(inputs)[0]), versions[spec.name])
            except ValueError as exc:
                raise AesopBenchError(f"{hr_file}: {spec.name} failed: {exc}") from None
        store.add(name, key, values)


def _evaluate_distribution(cfg, res, name, specs, store, model, versions, options) -> None:
    """Set-level metrics: features of every SR and HR image (cached), then one distance per set."""
    from tqdm import tqdm

    from ..metrics.distribution import set_distance

    sr_feats: dict[str, list] = {s.name: [] for s in specs}
    hr_feats: dict[str, list] = {s.name: [] for s in specs}
    for hr_file in tqdm(res.hr_files, desc=f"{name} features", unit="img", disable=not cfg.progress,
                        leave=False, file=sys.stderr):
        hr, lr = _load_pair(res, hr_file, cfg.protocol)
        sr = _super_resolve(model, lr, cfg.device)
        for spec in specs:
            sr_feats[spec.name].append(spec.fn(sr, cfg.device, options))
            hr_feats[spec.name].append(spec.fn(hr, cfg.device, options))
    store.add(name, SET_ROW, {s.name: (set_distance(sr_feats[s.name], hr_feats[s.name]), versions[s.name])
                              for s in specs})
