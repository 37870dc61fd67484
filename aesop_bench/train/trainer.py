"""The trainer: AE pretraining (``kind: ae``) and GAN-based SR training (``kind: sr``).

One step: the generator's objective (the config's weighted loss terms) -> backward -> optional gradient
clipping -> Adam; then, with a ``gan`` term, the discriminator's relativistic step (real half, fake half);
then the EMA update (decay 0.999) and the schedulers. bf16 autocast and channels_last are opt-in.

Checkpoints (``ckpt/step_NNNNNNN/``, written to a temporary folder and renamed, the last N kept):
``net_g.safetensors``, ``net_g_ema.safetensors``, ``net_d.safetensors`` and ``state.pt`` (step, optimiser
and scheduler states, RNG states; tensors and plain values only, read back with ``weights_only=True``).
The latest EMA weights are also exported as ``RUN/ema.safetensors`` (``ae_ema.safetensors`` for an AE),
with the architecture in the file's metadata, so ``aesop-bench eval --model RUN/ema.safetensors`` works.

Resuming restores everything and rebuilds the data stream at the next step, so a run killed and resumed
continues exactly as an uninterrupted one (on CPU with a fixed seed, to float equality).

Batches as the official runs (16 images per GPU on 4 GPUs): ``data.batch`` is the global batch (64) and
``data.micro_batch`` (16) the images of one official GPU. Under ``torchrun`` (WORLD_SIZE > 1) the generator
and discriminator are wrapped in DDP (NCCL on GPUs, gloo on CPU) and each rank takes its share of every
global batch; a rank holding several micro-batches accumulates their gradients, so 1, 2 or 4 processes
train the same way: every loss is a mean over one micro-batch, the relativistic GAN's means and per-process
BatchNorm statistics (the 128 discriminator) are taken per micro-batch, and the step's gradient is the mean
over the micro-batches. The 256 discriminator pools its BatchNorm statistics over the whole global batch, as
the authors' ``nn.SyncBatchNorm`` does: it sees each rank's share in one pass. Only rank 0 writes.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ..errors import AesopBenchError
from ..fileutil import atomic_write_json
from . import losses as L
from .config import TrainConfig, to_dict
from .data import PairedPatches, StepSampler, list_images


def _dist():
    import torch.distributed as dist

    return dist


def _world() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def build_generator(cfg: TrainConfig) -> nn.Module:
    g = cfg.generator
    if cfg.kind == "ae":
        from ..models.archs.autoencoder_arch import AutoEncoder

        net = AutoEncoder(**g.opts)
        if g.init:
            net.decoder.load_state_dict(_init_state(g.init, g.key, "rrdb"), strict=True)
        return net
    from ..models.zoo import ARCHS

    if g.arch not in ARCHS:
        raise AesopBenchError(f"config generator.arch {g.arch!r}; choose one of {', '.join(ARCHS)}")
    net = ARCHS[g.arch](cfg.data.scale, **g.opts)
    if g.init:
        from ..models.loading import load_strict

        load_strict(net, _init_state(g.init, g.key, g.arch), g.init)
    return net


def _init_state(init: str, key: str | None, arch: str) -> dict:
    """Initial weights from a zoo name, a weights-manifest name or a checkpoint path."""
    from .. import weights as wm
    from ..models.zoo import ZOO, ModelSpec, resolve_model

    if init in ZOO:
        return resolve_model(init).state_dict()
    path = Path(init) if os.path.isfile(init) else wm.get(init)
    keys = (key,) if key else ("params_ema", "params")
    return ModelSpec(Path(init).stem, arch, path, keys).state_dict()


def build_discriminator(cfg: TrainConfig) -> nn.Module | None:
    d = cfg.discriminator
    if d is None:
        return None
    from ..models.archs.discriminator_arch import UNetDiscriminatorSN, VGGStyleDiscriminator

    if d.arch in ("vgg128", "vgg256"):
        return VGGStyleDiscriminator(3, d.opts.get("num_feat", 64), int(d.arch[3:]), pooled_bn=cfg.sync_bn)
    if d.arch == "unet":
        return UNetDiscriminatorSN(3, **d.opts)
    raise AesopBenchError(f"config discriminator.arch {d.arch!r}; choose vgg128, vgg256 or unet")


def _per_micro(loss_fn, m: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A relativistic GAN loss whose means are taken per micro-batch of ``m`` images, averaged."""
    return torch.stack([loss_fn(x, y) for x, y in zip(a.split(m), b.split(m))]).mean()


def save_weights(net: nn.Module, path: Path, meta: dict | None = None) -> None:
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(sd, str(tmp), metadata={k: json.dumps(v) for k, v in (meta or {}).items()})
    os.replace(tmp, path)


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "python_pos": random.getstate()[2] if random.getstate()[2] is not None else -1,
            "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2])}


def _set_rng_state(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    random.setstate((3, tuple(s["python"]), None if s["python_pos"] == -1 else s["python_pos"]))
    np.random.set_state(("MT19937", s["numpy_keys"].numpy().astype(np.uint32), s["numpy_pos"], 0, 0.0))


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data_root: str | Path | None = None,
                 device: str = "cpu", resume: bool = False, log=print):
        self.cfg, self.out, self.log = cfg, Path(out_dir), log
        self.rank, self.world, local = _world()
        if self.world > 1 and not _dist().is_initialized():
            backend = "nccl" if device.startswith("cuda") else "gloo"
            _dist().init_process_group(backend)
        self.device = torch.device(f"cuda:{local}" if device.startswith("cuda") and self.world > 1 else device)
        self.main = self.rank == 0
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        random.seed(cfg.seed)
        self.data_root = Path(data_root) if data_root else Path(os.environ.get("AESOP_BENCH_TRAIN_DATA", "."))

        self.net_g = build_generator(cfg).to(self.device)
        self.net_d = build_discriminator(cfg)
        if self.net_d is not None:
            self.net_d = self.net_d.to(self.device)
        self.net_g_ema = copy.deepcopy(self.net_g).eval().requires_grad_(False)
        if cfg.channels_last:
            self.net_g = self.net_g.to(memory_format=torch.channels_last)
        self.terms = {t.type: t.weight for t in cfg.losses}
        if "gan" in self.terms and self.net_d is None:
            raise AesopBenchError("config: a gan loss term needs a discriminator")
        self._check_validation_metrics()
        self.aesop = self._load_aesop_ae() if "aesop" in self.terms else None
        self.vgg = self._load_vgg() if "perceptual" in self.terms else None

        self.g = self.net_g
        self.d = self.net_d
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g = DDP(self.net_g, device_ids=ids)
            if self.net_d is not None:
                self.d = DDP(self.net_d, device_ids=ids)
        og, od = cfg.optim_g, cfg.optim_d
        self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=og.lr, betas=tuple(og.betas), eps=og.eps)
        self.sched_g = torch.optim.lr_scheduler.MultiStepLR(self.opt_g, og.milestones or [10 ** 12], og.gamma)
        self.opt_d = self.sched_d = None
        if self.net_d is not None:
            self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=od.lr, betas=tuple(od.betas), eps=od.eps)
            self.sched_d = torch.optim.lr_scheduler.MultiStepLR(self.opt_d, od.milestones or [10 ** 12], od.gamma)
        self.step = 0
        if resume:
            self._resume()
        elif self.main:
            if (self.out / "ckpt").is_dir() and any((self.out / "ckpt").iterdir()):
                raise AesopBenchError(f"{self.out} already holds checkpoints; resume with --resume {self.out} "
                                      "or choose another --out")
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "config.json", to_dict(cfg))

    # -- components -------------------------------------------------------------------------------
    def _check_validation_metrics(self) -> None:
        """Refuse at the start, not at the first validation, a validation metric whose weights are missing."""
        from .. import weights as wm
        from ..metrics.registry import expand_metrics, get_spec

        if not self.cfg.val.every:
            return
        for m in expand_metrics(self.cfg.val.metrics):
            for name in get_spec(m).needs:
                if wm.check(wm.entry(name)).status == "missing":
                    raise AesopBenchError(f"config val.metrics: {m} needs the weights {name!r}, which are not in "
                                          f"the cache; run `aesop-bench weights download {name}` (or "
                                          f"`aesop-bench weights add {name} FILE`), or remove {m} from val.metrics")


    def _load_aesop_ae(self) -> L.FrozenAE:
        from ..metrics.ae import DEFAULT_AE, build_ae

        return L.FrozenAE(build_ae(self.cfg.ae or DEFAULT_AE)).to(self.device)

    def _load_vgg(self) -> L.VGGFeatures:
        from .. import weights as wm

        return L.VGGFeatures(wm.load_state_dict(wm.get("vgg19"))).to(self.device)

    def _batches(self):
        c = self.cfg.data
        hr_files = list_images([self.data_root / d for d in c.hr_dirs])
        ds = PairedPatches(hr_files, c.patch, c.scale, c.modcrop, self.cfg.seed,
                           [self.data_root / d for d in c.lr_dirs], c.flip, c.rot, c.make_lr)
        sampler = StepSampler(len(ds), c.batch, self.cfg.seed, self.step, self.rank, self.world)
        loader = torch.utils.data.DataLoader(ds, batch_size=c.batch // self.world, sampler=sampler,
                                             num_workers=c.workers, persistent_workers=c.workers > 0)
        for lr, hr in loader:
            yield lr.to(self.device), hr.to(self.device)

    # -- one step ---------------------------------------------------------------------------------
    def _micro(self, n_local: int) -> int:
        m = self.cfg.data.micro_batch or n_local
        if n_local % m:
            raise AesopBenchError(f"config data.micro_batch {m} must divide the {n_local} images each of the "
                                  f"{self.world} process(es) holds (data.batch {self.cfg.data.batch})")
        return m

    def _pooled_d(self) -> bool:
        """Whether the discriminator pools BatchNorm statistics over the global batch (decided once)."""
        if not hasattr(self, "_pooled"):
            from ..models.archs.discriminator_arch import PooledBatchNorm2d

            self._pooled = self.net_d is not None and any(isinstance(m, PooledBatchNorm2d)
                                                          for m in self.net_d.modules())
        return self._pooled

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        cfg, t = self.cfg, self.terms
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp_bf16)
        if cfg.channels_last:
            lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        m = self._micro(len(lr))
        # with pooled BatchNorm the discriminator must see the rank's whole share at once; the generator (no
        # BatchNorm) then runs on it in one pass too, and only the GAN's means are taken per micro-batch
        group = len(lr) if self._pooled_d() else m
        groups = list(zip(lr.split(group), hr.split(group)))
        if self.net_d is not None:
            self.net_d.requires_grad_(False)
        sums: dict[str, float] = {}
        srs = []
        self.opt_g.zero_grad(set_to_none=True)
        for k, (l, h) in enumerate(groups):
            share = len(l) / len(lr)
            with self._no_sync(self.g, k < len(groups) - 1), amp:
                if cfg.kind == "ae":
                    out, z = self.g(h, return_bottleneck=True)
                    parts = {"ae_recon": L.l1(out, h), "ae_lr": L.l1(z, l)}
                else:
                    sr = self.g(l)
                    parts = {}
                    if "l1" in t:
                        parts["l1"] = L.l1(sr, h)
                    if "aesop" in t:
                        parts["aesop"] = self.aesop(sr, h)
                    if "perceptual" in t:
                        parts["perceptual"] = L.perceptual(self.vgg, sr, h)
                    if "ldl" in t:
                        with torch.no_grad():
                            sr_ema = self.net_g_ema(l)
                        parts["ldl"] = L.ldl(h, sr, sr_ema)
                    if "gan" in t:
                        real = self.d(h).detach()
                        parts["gan"] = _per_micro(L.gan_generator, m, real, self.d(sr))
                    srs.append(sr.detach())
                total = sum(t.get(k2, 1.0) * v.float() for k2, v in parts.items())
                if not torch.isfinite(total):
                    raise FloatingPointError(", ".join(f"{k2}={v.item():.4g}" for k2, v in parts.items()))
                (total * share).backward()
            for k2, v in parts.items():
                sums[k2] = sums.get(k2, 0.0) + v.item() * share
            sums["total_g"] = sums.get("total_g", 0.0) + total.item() * share
        if cfg.optim_g.clip:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), cfg.optim_g.clip)
        self.opt_g.step()
        logs = dict(sums)
        if "gan" in t:
            self.net_d.requires_grad_(True)
            self.opt_d.zero_grad(set_to_none=True)
            d_real = d_fake = 0.0
            for k, ((_, h), sr) in enumerate(zip(groups, srs)):
                share = len(h) / len(lr)
                with self._no_sync(self.d, k < len(groups) - 1):
                    with amp:
                        fake_pred = self.d(sr).detach()
                        real_pred = self.d(h)
                        l_real = _per_micro(L.gan_discriminator_real, m, real_pred.float(), fake_pred.float())
                    (l_real * share).backward()
                    with amp:
                        l_fake = _per_micro(L.gan_discriminator_fake, m, self.d(sr).float(),
                                            real_pred.detach().float())
                    (l_fake * share).backward()
                d_real += l_real.item() * share
                d_fake += l_fake.item() * share
            if cfg.optim_d.clip:
                torch.nn.utils.clip_grad_norm_(self.net_d.parameters(), cfg.optim_d.clip)
            self.opt_d.step()
            logs["d_real"], logs["d_fake"] = d_real, d_fake
            self.sched_d.step()
        self._ema_update()
        self.sched_g.step()
        return logs

    def _no_sync(self, net, skip: bool):
        """DDP's gradient all-reduce only on a rank's last micro-batch."""
        import contextlib

        return net.no_sync() if skip and hasattr(net, "no_sync") else contextlib.nullcontext()

    @torch.no_grad()
    def _ema_update(self) -> None:
        d = self.cfg.ema
        ema = dict(self.net_g_ema.named_parameters())
        for k, p in self.net_g.named_parameters():
            ema[k].mul_(d).add_(p.detach(), alpha=1 - d)
        ema_b = dict(self.net_g_ema.named_buffers())
        for k, b in self.net_g.named_buffers():
            ema_b[k].copy_(b)

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, steps: int | None = None, progress: bool = True) -> list[dict]:
        from tqdm import tqdm

        end = steps if steps is not None else self.cfg.steps
        history = []
        if self.step >= end:
            return history
        batches = self._batches()
        bar = tqdm(total=end - self.step, disable=not (progress and self.main), file=sys.stderr, unit="step")
        t0 = time.perf_counter()
        while self.step < end:
            lr, hr = next(batches)
            self.net_g.train()
            if self.net_d is not None:
                self.net_d.train()
            try:
                logs = self.train_step(lr, hr)
            except FloatingPointError as exc:
                last = self._latest_checkpoint()
                raise AesopBenchError(
                    f"non-finite loss at step {self.step + 1} ({exc}); the run stopped. The last good checkpoint "
                    f"is {last or 'none yet'}; lower the learning rate or check the data, then --resume."
                ) from None
            self.step += 1
            logs["step"] = self.step
            logs["lr"] = self.opt_g.param_groups[0]["lr"]
            logs["sec_per_step"] = (time.perf_counter() - t0)
            t0 = time.perf_counter()
            history.append(logs)
            bar.update(1)
            bar.set_postfix(loss=f"{logs['total_g']:.4f}")
            if self.main and (self.step % self.cfg.log_every == 0 or self.step == end):
                self._log(logs)
            if self.step % self.cfg.checkpoint_every == 0 or self.step == end:
                self.save_checkpoint()
            if self.cfg.val.every and self.step % self.cfg.val.every == 0 and self.main:
                self.validate()
        bar.close()
        return history

    def _log(self, logs: dict) -> None:
        path = self.out / "train_log.csv"
        new = not path.is_file()
        keys = sorted(logs)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(logs)
        self._tb("train", logs)

    def _tb(self, prefix: str, values: dict) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional; the CSV logs are always written
            return
        if not hasattr(self, "_writer"):
            self._writer = SummaryWriter(str(self.out / "tb"))
        for k, v in values.items():
            if isinstance(v, (int, float)) and k != "step":
                self._writer.add_scalar(f"{prefix}/{k}", v, self.step)
        self._writer.flush()

    # -- validation -------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """The EMA network on the validation set under the paper's protocol. An SR network goes through the
        evaluator itself (``aesop_bench.evaluate``), so a validation value equals what ``aesop-bench eval``
        reports for the exported checkpoint; an AE is scored on its reconstruction of the protocol's HR with
        the same metric objects. SR images are not cached (every validation has new weights)."""
        from ..api import CallableModel, evaluate
        from ..data.sets import resolve
        from ..data.transforms import mod_crop, to_rgb
        from ..protocol import get_protocol
        from ..imageio import quantize, read_image
        from ..metrics.metric import Metric
        from ..paths import data_root

        v = self.cfg.val
        protocol = get_protocol("paper", scale=self.cfg.data.scale)
        net = self.net_g_ema
        if self.cfg.kind == "sr":
            res = evaluate(CallableModel(net, protocol.scale, name=f"{self.cfg.name}@{self.step}"), sets=[v.set],
                           metrics=v.metrics, protocol=protocol, device=str(self.device),
                           data_root=data_root(v.data_root))
            means = {m: res.mean(v.set, m) for m in v.metrics if res.mean(v.set, m) is not None}
        else:
            metrics = [Metric(m, protocol, self.device) for m in v.metrics if m != "lr_psnr"]
            sums: dict[str, list[float]] = {}
            for f in resolve(v.set, data_root(v.data_root)).hr_files:
                hr = mod_crop(to_rgb(read_image(f)), protocol.effective_modcrop)[None]
                out = quantize(net(hr.float().div(255).to(self.device)).cpu())
                for m in metrics:
                    sums.setdefault(m.name, []).append(float(m.score(out, hr, None)[0]))
            means = {m: sum(vals) / len(vals) for m, vals in sums.items()}
        path = self.out / "val.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as fh:
            w = csv.writer(fh)
            if new:
                w.writerow(["step", "set", "metric", "value"])
            for m, val in means.items():
                w.writerow([self.step, v.set, m, val])
        self._tb(f"val_{v.set}", means)
        self.log(f"validation at step {self.step} on {v.set}: " + ", ".join(f"{m} {x:.4f}" for m, x in means.items()))
        return means

    # -- checkpoints ------------------------------------------------------------------------------
    def _ckpt_root(self) -> Path:
        return self.out / "ckpt"

    def _latest_checkpoint(self) -> Path | None:
        root = self._ckpt_root()
        done = sorted(p for p in root.glob("step_*") if (p / "state.pt").is_file()) if root.is_dir() else []
        return done[-1] if done else None

    def _meta(self) -> dict:
        g = self.cfg.generator
        return {"arch": "ae" if self.cfg.kind == "ae" else g.arch, "opts": g.opts, "scale": self.cfg.data.scale,
                "step": self.step}

    def save_checkpoint(self) -> Path | None:
        if self.world > 1:
            _dist().barrier()
        if not self.main:
            return None
        root = self._ckpt_root()
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"step_{self.step:07d}"
        tmp = root / f".tmp_step_{self.step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(self.net_g, tmp / "net_g.safetensors", self._meta())
        save_weights(self.net_g_ema, tmp / "net_g_ema.safetensors", self._meta())
        if self.net_d is not None:
            save_weights(self.net_d, tmp / "net_d.safetensors")
        state = {"step": self.step, "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
                 "rng": _rng_state()}
        if self.opt_d is not None:
            state.update(opt_d=self.opt_d.state_dict(), sched_d=self.sched_d.state_dict())
        torch.save(state, tmp / "state.pt")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        export = self.out / ("ae_ema.safetensors" if self.cfg.kind == "ae" else "ema.safetensors")
        save_weights(self.net_g_ema, export, self._meta())
        kept = sorted(p for p in root.glob("step_*"))
        for old in kept[:-max(1, self.cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _resume(self) -> None:
        from safetensors.torch import load_file

        last = self._latest_checkpoint()
        if last is None:
            raise AesopBenchError(f"--resume {self.out}: no complete checkpoint in {self._ckpt_root()}")
        self.net_g.load_state_dict(load_file(str(last / "net_g.safetensors")))
        self.net_g_ema.load_state_dict(load_file(str(last / "net_g_ema.safetensors")))
        if self.net_d is not None:
            self.net_d.load_state_dict(load_file(str(last / "net_d.safetensors")))
        state = torch.load(last / "state.pt", map_location="cpu", weights_only=True)
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.log(f"resumed from {last} (step {self.step})")


__all__ = ["Trainer", "save_weights", "build_generator"]
