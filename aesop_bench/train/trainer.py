"""The trainer: AE pretraining (``kind: ae``) and GAN-based SR training (``kind: sr``).

One step: the generator's objective (the config's weighted loss terms) -> backward -> optional gradient
clipping -> Adam; then, with a ``gan`` term, the discriminator's relativistic step (real half, fake half);
then the EMA update (decay 0.999) and the schedulers. bf16 autocast and channels_last are opt-in. The losses stay
on the device and are read back once per log step (and before each checkpoint and validation), so a GPU is not
made to wait every micro-batch; a non-finite loss stops the run at that read-back, before any checkpoint could
hold its weights.

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
the authors' ``nn.SyncBatchNorm`` does: it sees each rank's share in one pass, and the generator's gradient
from the GAN term is taken over that share (with respect to its SR images) and fed into each micro-batch's
backward pass, so the generator, VGG19 and the AE keep their micro-batches. Only rank 0 writes.

Real-world training (a config with ``degradation:``, the authors' ``train_RealWorld_AESOP.yml``): the LR of each
micro-batch is synthesised on the device from HR crops (:mod:`.real`), the pairs pass through the
training-pair queue, the targets listed in ``gt_usm`` are the USM-sharpened HR, and the GAN may be the plain
(vanilla) one of Real-ESRGAN. The degradation and queue generators and the queues are saved in every checkpoint
(``state.pt``'s ``pairs``), so a resumed run trains on the pairs an uninterrupted run would have. Generator parts
held fixed (``generator.freeze``, the real-world AE's decoder) need no gradient: the optimiser holds no state
for them, DDP does not reduce them, the EMA copies them.

SPSR's recipe (the configs ``spsr``, ``spsr_aesop``; see the config module) adds what the trainer takes from any
config: several discriminators by name, each trained in its own step after the generator's (the GAN terms in the
loss table's order, each against its own discriminator: ``d``, then SPSR's gradient discriminator ``d_grad`` fed
gradient maps), each with its own optimiser, scheduler, checkpoint file ``net_NAME.safetensors`` (``net_d`` for
``d``), state entries ``opt_NAME``/``sched_NAME`` and DDP wrapper; the generator's auxiliary outputs (SPSR's
gradient branch) passed to the terms that read them; the discriminator loss in its split or coupled form; and a
warm-up that trains only some parameters for the first steps, DDP-safely: every parameter stays in DDP and takes
part in every backward pass, and the gradients of those held are cleared before the optimiser's step, so Adam
neither moves them nor makes state for them (as the authors' ``requires_grad`` switch does on one process).

GAN means over the whole batch (``means: batch``, as DataParallel takes them over all of SPSR's 30 images while each
GPU's BatchNorm sees its half of 15): the generator then runs once over the rank's whole share (its loss terms
couple the micro-batches), each discriminator once per micro-batch (its BatchNorm group), and the logits of every
micro-batch of every rank are gathered (with their gradients) before the means are taken. One process with 2
micro-batches of 15 and two processes with 15 each train the same; the memory is the whole share's.

Length: one training step and its variants (DDP, micro-batches, the pooled GAN), checkpoints and validation share
the Trainer's state.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from pathlib import Path

import torch

from .. import threads
from ..distributed import barrier, init
from ..errors import AesopBenchError, ConfigError
from ..fileutil import atomic_write_json
from ..models.archs.discriminator_arch import PooledBatchNorm2d
from . import checkpoint as ck
from . import losses as L
from .config import TrainConfig, all_discriminators, to_dict
from .data import PairedPatches, StepSampler, training_images
from .nets import build_discriminator, build_discriminators, build_generator, warmup_held
from .logs import RunLog
from .objective import TERMS, Networks, StepInputs, aux_read, networks_read, objective
from .validation import check_validation_metrics, prepare_validation_set, validate


class Trainer:
    """One training run. ``net_g``/``net_d`` are the networks as trained (wrapped in DDP under torchrun; the
    bare network is ``checkpoint.bare(net)``), ``net_g_ema`` the EMA generator; ``discs`` every discriminator by
    name (``net_d`` is ``discs["d"]``), ``opt_ds``/``sched_ds`` their optimisers and schedulers."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, data_root: str | Path | None = None,
                 device: str = "cpu", resume: bool = False, log=print):
        self.cfg, self.out, self.log = cfg, Path(out_dir), log
        self.rank, self.world, local = init(device)
        self.device = torch.device(f"cuda:{local}" if device.startswith("cuda") and self.world > 1 else device)
        # on the CPU: $AESOP_BENCH_THREADS, else the cores other processes leave free (a resumed run takes its
        # checkpoint's count where nothing fixes one: a step's values may depend on it, see _resume_threads)
        self.threads = threads.apply() if self.device.type == "cpu" else None
        self.main = self.rank == 0
        ck.seed_all(cfg.seed)  # the initial weights: one seed for every rank (DDP starts from rank 0's anyway)
        self.data_root = Path(data_root) if data_root else Path(os.environ.get("AESOP_BENCH_TRAIN_DATA", "."))

        net_g = build_generator(cfg, log=log if self.main else None).to(self.device)
        discs = {name: d.to(self.device) for name, d in build_discriminators(cfg).items()}
        net_d = discs.get("d")
        self.net_g_ema = copy.deepcopy(net_g).eval().requires_grad_(False)
        if cfg.channels_last:
            net_g = net_g.to(memory_format=torch.channels_last)
        self.weights = {t.type: t.weight for t in cfg.losses}
        self.term_opts = {t.type: t.options() for t in cfg.losses if t.options()}
        self.usm = frozenset(t for t in cfg.gt_usm if t in self.weights)  # of the terms trained
        check_validation_metrics(cfg)
        if self.main:
            prepare_validation_set(cfg, log)
        wanted = networks_read(self.weights)
        aesop_ae = self._load_aesop_ae() if "aesop_ae" in wanted else None
        vgg19 = self._load_vgg() if "vgg19" in wanted else None
        self.nriqa = self._load_nriqa() if "nriqa" in wanted else None
        self._pooled = net_d is not None and any(isinstance(m, PooledBatchNorm2d) for m in net_d.modules())
        self._gan_terms = [n for n in TERMS if n in self.weights and TERMS[n].discriminator]
        self._batch_means = any(self.term_opts.get(n, {}).get("means") == "batch" for n in self._gan_terms)
        self._check_pooled(discs)
        self._aux = bool(aux_read(self.weights))
        w = cfg.generator.warmup
        self._held = [p for _, p in warmup_held(net_g, w.train_only)] if w is not None and cfg.kind == "sr" else []

        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            net_g = DDP(net_g, device_ids=ids)
            discs = {name: DDP(d, device_ids=ids) for name, d in discs.items()}
        self.discs = discs
        self.net_g, self.net_d = net_g, discs.get("d")
        self.nets = Networks(aesop_ae=aesop_ae, vgg19=vgg19, discriminator=self.net_d, generator_ema=self.net_g_ema,
                             discriminators=discs, nriqa=self.nriqa)
        og = cfg.optim_g
        trained = [p for p in net_g.parameters() if p.requires_grad]  # without the parts held fixed
        self.opt_g = torch.optim.Adam(trained, lr=og.lr, betas=tuple(og.betas), eps=og.eps)
        self.sched_g = torch.optim.lr_scheduler.MultiStepLR(self.opt_g, og.milestones or [10 ** 12], og.gamma)
        self.opt_ds, self.sched_ds = {}, {}
        for name, d in discs.items():
            o = self._optim_d(name)
            self.opt_ds[name] = torch.optim.Adam(d.parameters(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)
            self.sched_ds[name] = torch.optim.lr_scheduler.MultiStepLR(self.opt_ds[name], o.milestones or [10 ** 12],
                                                                        o.gamma)
        self.opt_d, self.sched_d = self.opt_ds.get("d"), self.sched_ds.get("d")
        self.step = 0
        self._checked_grads = False
        self.pairs = self._pair_stream()
        # from here each rank draws its own random numbers (SwinIR's DropPath masks, ...): seed + rank, BasicSR's rule
        ck.seed_all(cfg.seed + self.rank)
        self.logs = RunLog(self.out, self)
        if self.main:
            for p in ck.clean_partial(self.out):
                self.log(f"removed {p}, left by an interrupted run")
        if resume:
            self._resume()
        elif self.main:
            if ck.latest(self._ckpt_root()) is not None:
                raise AesopBenchError(f"{self.out} already holds checkpoints; resume with --resume {self.out} "
                                      "or choose another --out")
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.out / "config.json", to_dict(cfg))
            self.logs.truncate(0)  # rows of a run killed before its first checkpoint: this run starts again

    # -- components -------------------------------------------------------------------------------
    def _optim_d(self, name: str):
        """A discriminator's optimiser settings: its own ``optim``, else ``optim_d``."""
        return all_discriminators(self.cfg)[name].optim or self.cfg.optim_d

    def _check_pooled(self, discs: dict) -> None:
        """BatchNorm statistics pooled over the global batch (the 256 discriminator) for ``d`` alone, and with the GAN
        means per micro-batch (its one pass over the share is how those statistics are taken)."""
        for name, d in discs.items():
            if any(isinstance(m, PooledBatchNorm2d) for m in d.modules()) and (name != "d" or self._batch_means):
                raise ConfigError(
                    f"config discriminators.{name}: BatchNorm statistics pooled over the global batch (vgg256, or "
                    "sync_bn: true) are taken for the discriminator d with the GAN means per micro-batch only; set "
                    "sync_bn: false" if name != "d" else
                    "config losses: means: batch takes BatchNorm statistics per micro-batch; the discriminator pools "
                    "them over the global batch (vgg256, or sync_bn: true): set sync_bn: false or means: micro")

    def _load_aesop_ae(self) -> L.FrozenAE:
        from ..models.ae import DEFAULT_AE, build_ae

        return L.FrozenAE(build_ae(self.cfg.ae or DEFAULT_AE)).to(self.device)

    def _load_vgg(self) -> L.VGGFeatures:
        from .. import weights as wm

        layers = self.term_opts.get("perceptual", {}).get("layer_weights") or L.PERCEPTUAL_WEIGHTS
        return L.VGGFeatures(wm.load_state_dict(wm.get("vgg19")), layers=tuple(layers)).to(self.device)

    def _load_nriqa(self):
        from .nriqa import NRIQALoss

        return NRIQALoss(self.term_opts.get("nriqa", {}).get("metric", "musiq"), device=self.device)

    def _online_best(self):
        """AMO's picker: the ``nriqa`` term's network where it is the same metric, else that metric's own."""
        from .multigt import OnlineBest
        from .nriqa import NRIQALoss

        metric = self.cfg.data.multigt.metric
        net = self.nriqa if self.nriqa is not None and self.nriqa.metric == metric else NRIQALoss(metric,
                                                                                                 device=self.device)
        return OnlineBest(net.score, net.lower_better)

    def _pair_stream(self):
        """The real-world pairs of this rank's micro-batch slots (None without degradation and queue)."""
        from .real import PairStream

        c = self.cfg.data
        if self.cfg.degradation is None and c.queue_size is None:
            return None
        if c.batch % self.world:
            raise AesopBenchError(f"data.batch {c.batch} must be divisible by the {self.world} processes")
        n_local = c.batch // self.world
        m = self._micro(n_local)
        if c.queue_size is not None and c.queue_size % m:
            raise ConfigError(f"config data.queue_size {c.queue_size} must be a multiple of the {m} images of a "
                              "micro-batch (one official GPU's batch, data.micro_batch)")
        per = n_local // m
        return PairStream(self.cfg, list(range(self.rank * per, (self.rank + 1) * per)), m, self.device)

    def _batches(self):
        c = self.cfg.data
        best = None
        if c.multigt is not None:
            from .multigt import MultiGTPatches, sampler_of, training_items

            items = training_items(self.data_root / c.multigt.root)
            ds = MultiGTPatches(items, c, self.cfg.seed, sampler_of(c.multigt, items, self.data_root))
            best = self._online_best() if c.multigt.sampler == "amo" else None
        elif self.cfg.degradation is not None:
            from .real import HRCrops

            ds = HRCrops(training_images([self.data_root / d for d in c.hr_dirs]), c, self.cfg.seed)
        else:
            ds = PairedPatches(training_images([self.data_root / d for d in c.hr_dirs]), c, self.cfg.seed,
                               [self.data_root / d for d in c.lr_dirs])
        sampler = StepSampler(len(ds), c.batch, self.cfg.seed, self.step, self.rank, self.world)
        # the loader's own generator: starting its iterator draws a worker seed, which must not move the global
        # RNG (a resumed run starts its iterator mid-run, an uninterrupted one did so at step 0)
        cuda = self.device.type == "cuda"  # page-locked batches, copied while the GPU computes
        loader = torch.utils.data.DataLoader(ds, batch_size=c.batch // self.world, sampler=sampler,
                                             num_workers=c.workers, persistent_workers=c.workers > 0,
                                             pin_memory=cuda,
                                             generator=torch.Generator().manual_seed(self.cfg.seed + self.step))
        if self.cfg.degradation is not None:  # HR crops: the pairs are synthesised on the device
            for gt in loader:
                yield self.pairs(gt.to(self.device, non_blocking=cuda))
            return
        for lr, hr in loader:
            lr, hr = lr.to(self.device, non_blocking=cuda), hr.to(self.device, non_blocking=cuda)
            if best is not None:  # AMO: hr holds each image's five GT patches; the best-scored one is its target
                hr = best(hr)
            yield self.pairs(lr, hr) if self.pairs is not None else (lr, hr)

    # -- one step ---------------------------------------------------------------------------------
    def _micro(self, n_local: int) -> int:
        m = self.cfg.data.micro_batch or n_local
        if n_local % m:
            raise AesopBenchError(f"config data.micro_batch {m} must divide the {n_local} images each of the "
                                  f"{self.world} process(es) holds (data.batch {self.cfg.data.batch})")
        return m

    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp_bf16)
        if cfg.channels_last:
            lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        m = self._micro(len(lr))
        # the generator's passes: one per micro-batch, or one over the share where GAN means couple the micro-batches
        gm = len(lr) if self._batch_means else m
        groups = list(zip(lr.split(gm), hr.split(gm)))
        hr_usm = None
        if self.usm:  # the targets of the terms in gt_usm, sharpened from the HR the step trains on
            from ..data.degradations import usm_sharp

            hr_usm = usm_sharp(hr)
        usm_groups = hr_usm.split(gm) if hr_usm is not None else [None] * len(groups)
        for d in self.discs.values():
            d.requires_grad_(False)
        sums: dict[str, torch.Tensor] = {}  # detached, on the device: read back once per log step (fit)
        srs = []
        self.opt_g.zero_grad(set_to_none=True)
        weights, grad_sr = self.weights, None
        if self._pooled and "gan" in self.weights and cfg.kind == "sr":
            # the pooled discriminator normalises over the rank's whole share: the GAN term and its gradient with
            # respect to the SR images come from one pass over the share, while the generator, VGG19 and the AE
            # keep their micro-batches (the generator runs once more, without a graph, to make the share's SR)
            grad_sr, srs, states = self._pooled_gan(lr, hr, hr_usm, groups, m, amp, sums)
            weights = {k: w for k, w in self.weights.items() if k != "gan"}
        for k, (l, h) in enumerate(groups):
            share = len(l) / len(lr)
            if grad_sr is not None:
                ck.restore_rng(states[k], self.device)  # DropPath draws the masks of the pass that made srs[k]
            with self._no_sync(self.net_g, k < len(groups) - 1), amp:
                if cfg.kind == "ae":
                    out, z = self.net_g(h, return_bottleneck=True)
                    x = StepInputs(l, h, out, z)
                else:
                    out, aux = self.net_g(l, aux=True) if self._aux else (self.net_g(l), {})
                    x = StepInputs(l, h, out, micro=m, hr_usm=usm_groups[k], usm=self.usm, aux=aux,
                                   d_chunk=m if self._batch_means else 0)
                    if grad_sr is None:
                        srs.append(x.out.detach())
                total, parts = objective(x, self.nets, weights, self.term_opts) if weights else \
                    (x.out.sum() * 0, {})
                if grad_sr is not None:  # the GAN term's gradient joins this micro-batch's backward pass
                    torch.autograd.backward([total * share, x.out], [None, grad_sr[k * m:(k + 1) * m]])
                elif total.requires_grad:  # a loss with no graph (a constant) is only checked, below
                    (total * share).backward()
            if not self._checked_grads:
                self._check_all_trained()
            for k2, v in [*parts.items(), ("total_g", total)]:
                sums[k2] = sums.get(k2, 0.0) + v.detach().float() * share
        if self._held and self.step + 1 < cfg.generator.warmup.until:  # steps counted from 1, as the authors'
            for p in self._held:  # the warm-up: reduced by DDP like every gradient, then dropped before the step
                p.grad = None
        if cfg.optim_g.clip:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), cfg.optim_g.clip)
        self.opt_g.step()
        fake = torch.cat(srs) if self._gan_terms else None
        for term in self._gan_terms:  # each discriminator's step, in the loss table's order
            # its real images are the HR, or the sharpened HR where gt_usm lists the term
            real = hr_usm if term in self.usm else hr
            name = TERMS[term].discriminator
            sums[f"{name}_real"], sums[f"{name}_fake"] = self._discriminator_step(term, real, fake, m, amp)
        self._ema_update()
        self.sched_g.step()
        return sums  # device tensors: read back by fit once per log step (_settle), not here

    def _pooled_gan(self, lr, hr, hr_usm, groups, m: int, amp, sums: dict):
        """The GAN term over the rank's whole share (pooled BatchNorm statistics), added to ``sums``: returns its
        gradient with respect to the share's SR images, the SR images of each micro-batch, and the random state
        before each micro-batch's generator pass (to replay it with a graph)."""
        states, srs = [], []
        with torch.no_grad(), amp:
            for l, _ in groups:
                states.append(ck.rng_state(self.device))
                srs.append(self.net_g(l).detach())
        sr = torch.cat(srs).requires_grad_(True)
        with amp:
            gan = TERMS["gan"].compute(StepInputs(lr, hr, sr, micro=m, hr_usm=hr_usm, usm=self.usm), self.nets,
                                       **self.term_opts.get("gan", {}))
        (grad,) = torch.autograd.grad(self.weights["gan"] * gan.float(), sr)
        sums["gan"] = gan.detach().float()
        sums["total_g"] = self.weights["gan"] * gan.detach().float()
        return grad, srs, states

    def _check_all_trained(self) -> None:
        """Refuse, after the first backward pass, an objective that leaves generator parameters without a gradient:
        they would never train, and under DDP the second step fails inside the gradient reduction."""
        self._checked_grads = True
        idle = [n for n, p in ck.bare(self.net_g).named_parameters() if p.requires_grad and p.grad is None]
        if idle:
            raise AesopBenchError(
                f"config losses {', '.join(self.weights)}: {len(idle)} generator parameter(s) get no gradient from "
                f"this objective ({', '.join(idle[:5])}{', ...' if len(idle) > 5 else ''}); they would never train "
                "(and DDP stops at the second step). Add a loss term that uses them (an AE needs ae_recon)")

    def _discriminator_step(self, term: str, real: torch.Tensor, fake: torch.Tensor, m: int, amp) -> tuple:
        """The step of the discriminator of GAN term ``term`` on the rank's share (``real`` and the generator's
        detached ``fake``, as its ``Term.d_input`` shows them to it): relativistic, split (the real half, then the fake
        half, each against the other's detached logits) or coupled (both halves in one backward pass, neither mean
        detached), with means per micro-batch or over the global batch; or vanilla (BCE of D(HR) against real, then
        of D(SR) against fake, Real-ESRGAN's order). The pooled discriminator sees the whole share at once, another
        one micro-batch at a time. Returns the two halves (the relativistic ones x0.5: their sum is the loss)."""
        t, opts = TERMS[term], self.term_opts.get(term, {})
        name = t.discriminator
        d, opt = self.discs[name], self.opt_ds[name]
        see = t.d_input or (lambda images: images)
        d.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        if opts.get("means") == "batch":
            d_real, d_fake = self._discriminator_batch(d, see(real), see(fake), m, amp, opts.get("d_loss") == "coupled")
        else:
            d_real, d_fake = self._discriminator_micro(d, see, real, fake, m, amp, opts, name == "d" and self._pooled)
        o = self._optim_d(name)
        if o.clip:
            torch.nn.utils.clip_grad_norm_(d.parameters(), o.clip)
        opt.step()
        self.sched_ds[name].step()
        return d_real, d_fake

    def _discriminator_micro(self, d, see, real, fake, m: int, amp, opts: dict, whole: bool) -> tuple:
        """The discriminator's loss per micro-batch (``whole``: the share in one pass, its means still per
        micro-batch), each micro-batch's gradient accumulated (DDP reduces on the last)."""
        n = len(real)
        groups = [(real, fake)] if whole else list(zip(real.split(m), fake.split(m)))
        d_real = d_fake = 0.0  # detached tensors after the first micro-batch, read back with the step's losses
        for k, (h, sr) in enumerate(groups):
            share = len(h) / n
            h, sr = see(h), see(sr)
            with self._no_sync(d, k < len(groups) - 1):
                if opts.get("gan_type") == "vanilla":
                    with amp:
                        l_real = L.gan_vanilla(d(h).float(), True)
                    (l_real * share).backward()
                    with amp:
                        l_fake = L.gan_vanilla(d(sr).float(), False)
                    (l_fake * share).backward()
                elif opts.get("d_loss") == "coupled":
                    with amp:
                        real_pred, fake_pred = d(h).float(), d(sr).float()
                    halves = [L.gan_discriminator_coupled(r, f) for r, f in zip(real_pred.split(m), fake_pred.split(m))]
                    l_real = torch.stack([a for a, _ in halves]).mean()
                    l_fake = torch.stack([b for _, b in halves]).mean()
                    ((l_real + l_fake) * share).backward()
                else:
                    with amp:
                        fake_pred = d(sr).detach()
                        real_pred = d(h)
                        l_real = L.per_micro(L.gan_discriminator_real, m, real_pred.float(), fake_pred.float())
                    (l_real * share).backward()
                    with amp:
                        l_fake = L.per_micro(L.gan_discriminator_fake, m, d(sr).float(), real_pred.detach().float())
                    (l_fake * share).backward()
            d_real = d_real + l_real.detach() * share
            d_fake = d_fake + l_fake.detach() * share
        return d_real, d_fake

    def _discriminator_batch(self, d, real, fake, m: int, amp, coupled: bool) -> tuple:
        """The relativistic discriminator loss with its means over the global batch: the discriminator once per
        micro-batch of ``m`` (its BatchNorm group; the real images first, as SPSR's step), the logits of every rank
        gathered, one backward pass."""
        with amp:
            r = torch.cat([d(c) for c in real.split(m)]).float()
            f = torch.cat([d(c) for c in fake.split(m)]).float()
        r, f = L.gather_batch(r), L.gather_batch(f)
        if coupled:
            l_real, l_fake = L.gan_discriminator_coupled(r, f)
        else:
            l_real, l_fake = L.gan_discriminator_real(r, f.detach()), L.gan_discriminator_fake(f, r.detach())
        (l_real + l_fake).backward()
        return l_real.detach(), l_fake.detach()

    def _no_sync(self, net, skip: bool):
        """DDP's gradient all-reduce only on a rank's last micro-batch."""
        return net.no_sync() if skip and hasattr(net, "no_sync") else contextlib.nullcontext()

    @torch.no_grad()
    def _ema_update(self) -> None:
        d = self.cfg.ema
        ema = dict(self.net_g_ema.named_parameters())
        for k, p in ck.bare(self.net_g).named_parameters():
            if p.requires_grad:
                ema[k].mul_(d).add_(p.detach(), alpha=1 - d)
            else:  # a part held fixed: its EMA is itself (d x p + (1 - d) x p would move it by rounding)
                ema[k].copy_(p)
        ema_b = dict(self.net_g_ema.named_buffers())
        for k, b in ck.bare(self.net_g).named_buffers():
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
        pending: list[dict] = []  # steps whose losses are still on the device (read back together, see _settle)
        t0 = time.perf_counter()
        while self.step < end:
            lr, hr = next(batches)
            self.net_g.train()
            for d in self.discs.values():
                d.train()
            logs = self.train_step(lr, hr)
            self.step += 1
            logs["step"] = self.step
            logs["lr"] = self.opt_g.param_groups[0]["lr"]
            history.append(logs)
            pending.append(logs)
            bar.update(1)
            log_due = self.step % self.cfg.log_every == 0 or self.step == end
            ckpt_due = self.step % self.cfg.checkpoint_every == 0 or self.step == end
            if log_due or ckpt_due or self._val_due():
                # one read-back for the steps since the last: the losses become numbers, and a non-finite one
                # stops the run here, before any checkpoint could hold its weights
                self._settle(pending, time.perf_counter() - t0)
                t0 = time.perf_counter()
                bar.set_postfix(loss=f"{logs['total_g']:.4f}")
                pending = []
            if self.main and log_due:
                self._log(logs)
            final = None
            if ckpt_due:
                final = self.save_checkpoint()
            if self._val_due():
                if self.main:
                    self.validate()
                    if final is not None:  # a resume from this checkpoint need not validate again
                        ck.mark(final, "val")
                barrier(self.world)  # the other ranks wait here, in no collective, while rank 0 validates
        bar.close()
        return history

    def _settle(self, rows: list[dict], seconds: float) -> None:
        """The losses of ``rows`` (steps' logs holding device tensors) as numbers, in one read-back, and
        ``sec_per_step`` as the mean over them; raise when any rank's total loss of any of them is not finite
        (every rank raises together: one stopping alone would leave the others waiting)."""
        keys = [k for k, v in rows[0].items() if isinstance(v, torch.Tensor)]
        flat = torch.stack([torch.stack([r[k].float().reshape(()) for k in keys]) for r in rows])
        bad = (~torch.isfinite(flat[:, keys.index("total_g")])).float()
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(bad)
        values, bad = flat.cpu().tolist(), bad.cpu().tolist()
        for r, v in zip(rows, values):
            r.update(zip(keys, v))
            r["sec_per_step"] = seconds / len(rows)
        first = next((r for r, b in zip(rows, bad) if b), None)
        if first is not None:
            last = self._latest_checkpoint()
            parts = ", ".join(f"{k}={first[k]:.4g}" for k in keys)
            raise AesopBenchError(
                f"non-finite loss at step {first['step']} ({parts}); the run stopped. The last good checkpoint "
                f"is {last or 'none yet'}; lower the learning rate or check the data, then --resume.")

    def _log(self, logs: dict) -> None:
        self.logs.train(logs)

    # -- validation -------------------------------------------------------------------------------
    def _val_due(self) -> bool:
        return bool(self.cfg.val.every) and self.step % self.cfg.val.every == 0

    def validate(self) -> dict[str, float]:
        """The EMA network on the validation set (:func:`.validation.validate`), logged. A validation that fails on
        what the network returned (an early network's output of another range, say) is logged, and the run goes
        on: a validation never stops a training."""
        try:
            means = validate(self.cfg, self.net_g_ema, self.step, self.device)
        except AesopBenchError as exc:
            self.log(f"validation at step {self.step} on {self.cfg.val.set} failed, training goes on: {exc}")
            return {}
        self.logs.val(self.step, self.cfg.val.set, means)
        self.log(f"validation at step {self.step} on {self.cfg.val.set}: " +
                 ", ".join(f"{m} {x:.4f}" for m, x in means.items()))
        return means

    # -- checkpoints ------------------------------------------------------------------------------
    def _ckpt_root(self) -> Path:
        return self.out / "ckpt"

    def _latest_checkpoint(self) -> Path | None:
        return ck.latest(self._ckpt_root())

    def _meta(self) -> dict:
        g = self.cfg.generator
        return {"arch": "ae" if self.cfg.kind == "ae" else g.arch, "opts": g.opts, "scale": self.cfg.data.scale,
                "step": self.step}

    def _nets(self) -> dict:
        return {"net_g": self.net_g, "net_g_ema": self.net_g_ema, "net_d": self.net_d,
                **{f"net_{name}": d for name, d in self.discs.items() if name != "d"}}

    def save_checkpoint(self) -> Path | None:
        barrier(self.world)
        rngs = ck.gather_rng_states(self.world, self.device)  # every rank's generators, CPU and CUDA
        pairs = ck.gather_to_main(self.pairs.state(), self.world) if self.pairs is not None else None
        if not self.main:
            return None
        state = {"step": self.step, "opt_g": self.opt_g.state_dict(), "sched_g": self.sched_g.state_dict(),
                 "rng": rngs[0], "rng_ranks": rngs, "threads": self.threads}
        if pairs is not None:  # every slot's degradation and queue generators and its queue
            state["pairs"] = [s for rank in pairs for s in rank]
        for name, opt in self.opt_ds.items():  # opt_d and sched_d for d
            state.update({f"opt_{name}": opt.state_dict(), f"sched_{name}": self.sched_ds[name].state_dict()})
        final = ck.write(self._ckpt_root(), self.step, self._nets(), state, self._meta(), self.cfg.keep_checkpoints)
        self._export(final)
        return final

    def _export(self, final: Path) -> None:
        """The EMA weights as ``RUN/ema.safetensors``, then recorded as done in the checkpoint."""
        export = self.out / ("ae_ema.safetensors" if self.cfg.kind == "ae" else "ema.safetensors")
        net = self.net_g_ema
        if self.cfg.generator.lora is not None:  # the adapters folded in: a plain network of its architecture
            from ..models.lora import merge_lora

            net = merge_lora(net)
        ck.save_weights(net, export, self._meta())
        ck.mark(final, "export")

    def _resume(self) -> None:
        last = self._latest_checkpoint()
        if last is None:
            raise AesopBenchError(f"--resume {self.out}: no complete checkpoint in {self._ckpt_root()}")
        state = ck.read(last, self._nets())
        self._resume_threads(state.get("threads"))
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        for name, opt in self.opt_ds.items():
            opt.load_state_dict(state[f"opt_{name}"])
            self.sched_ds[name].load_state_dict(state[f"sched_{name}"])
        self.step = int(state["step"])
        self._resume_pairs(state)
        saved = state.get("rng_ranks") or [state["rng"]]
        if len(saved) == self.world:
            ck.set_rng_state(saved[self.rank], self.device)
        else:  # another number of processes: rank r continues from seed + r + the step
            ck.seed_all(self.cfg.seed + self.rank + self.step)
            if self.main:
                self.log(f"the checkpoint holds the random states of {len(saved)} process(es), this run has "
                         f"{self.world}: each rank is seeded with seed + rank + step instead (the run goes on, not "
                         "bit for bit as it would have)")
        done = ck.completed(last)
        redo_val = self._val_due() and "val" not in done
        if self.main:  # a validation at the checkpoint's step that did not finish is run again below
            self.logs.truncate(self.step, val_through=self.step - 1 if redo_val else self.step)
        self.log(f"resumed from {last} (step {self.step})")
        if self.main and "export" not in done:
            self.log(f"exporting the EMA weights of step {self.step} (the run stopped before it had)")
            self._export(last)
        if redo_val:
            if self.main:
                self.validate()
                ck.mark(last, "val")
            barrier(self.world)

    def _resume_threads(self, saved: int | None) -> None:
        """A CPU run resumed with the thread count its checkpoint was made with: a convolution's or a matrix
        product's sums may be split by thread, so a step's last bits may follow the count (SPSR's and DRCT's
        outputs are known to). A count fixed by ``$AESOP_BENCH_THREADS`` (or ``$OMP_NUM_THREADS``) stands, and the
        log says the run may not equal an uninterrupted one."""
        if self.threads is None or saved is None or int(saved) == self.threads:
            return
        if threads.fixed_count() is not None:
            if self.main:
                self.log(f"the checkpoint was made with {saved} CPU thread(s), this run has {self.threads} (fixed by "
                         "the environment): its values may differ in their last bits from an uninterrupted run's")
            return
        self.threads = int(saved)
        threads.set_pools(self.threads)
        if self.main:
            self.log(f"{self.threads} CPU thread(s), as the checkpoint was made with")

    def _resume_pairs(self, state: dict) -> None:
        """The real-world pairs' generators and queues, as saved; a checkpoint of another number of micro-batch
        slots (another global batch or micro-batch) cannot give them back, and the run goes on with fresh ones."""
        if self.pairs is None:
            return
        saved = state.get("pairs") or []
        if {int(s["slot"]) for s in saved} >= set(self.pairs.slots):
            self.pairs.load(saved)
        elif self.main:
            self.log(f"the checkpoint holds the pair queues and degradation generators of {len(saved)} micro-batch "
                     "slot(s), not those of this run's: they start afresh (the run goes on, not bit for bit as it "
                     "would have)")


__all__ = ["Trainer", "build_generator", "build_discriminator"]
