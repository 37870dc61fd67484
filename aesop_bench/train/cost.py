"""A training's rough GPU time, from its config: what ``reproduce --dry-run`` says of a column whose network was
never released and has to be trained.

The count: each network's forward FLOPs per HR megapixel (counted with torch's FlopCounterMode on a 64 x 64 LR or
256 x 256 HR input), times how often a step runs it, times the step's HR megapixels (global batch x patch^2),
times the steps. A backward pass that computes weight gradients costs twice its forward; one that only passes
gradients to its input (a frozen loss network, the discriminator in the generator's step) costs one forward.

* SR step: generator forward and backward (3); with the LDL term, the EMA generator's forward (1); the AESOP
  loss's AE on SR (forward and input backward, 2) and on HR (1); VGG19 likewise (3); the relativistic GAN:
  the discriminator on the fake and the real batch in the generator's step (2 + 1) and in its own step (3 + 3);
  the vanilla GAN (real-world training) runs it on the fake batch alone in the generator's step (2); each further
  discriminator (SPSR's gradient discriminator) as the relativistic one.
* AE step: the auto-encoder forward and backward (3); a part held fixed (the real-world AE's decoder) passes
  gradients to its input only (2).

The real-world degradation and the pair queue (a few image filters per step) are left out.

The frozen AE of an SR training is counted as the paper's (RRDB decoder) whatever file the config names.

Each network's FLOPs and the GPU class's sustained rate are :mod:`aesop_bench.models.flops`'s, as in the
evaluation estimates (default class: the A100's FP32 peak; training leaves TF32 at torch's defaults, so this is an
upper bound where convolutions use it). Data loading, validation and checkpoints are left out: an estimate to
plan with, not a measurement.
"""

from __future__ import annotations

from ..models.flops import FORWARD_TFLOP_PER_MPIX, sustained_gflops


def step_tflop(cfg) -> float:
    """TFLOP of one training step of ``cfg`` (a :class:`~aesop_bench.train.config.TrainConfig`)."""
    mpix = cfg.data.batch * cfg.data.patch ** 2 / 1e6
    g = _forward(cfg.generator.arch)
    terms = {t.type for t in cfg.losses}
    if cfg.kind == "ae":
        opts = cfg.generator.opts
        frozen = set(cfg.generator.freeze)
        enc = FORWARD_TFLOP_PER_MPIX["ae_encoder"] if opts.get("encoder", "rrdb") == "rrdb" else 0.0
        dec = FORWARD_TFLOP_PER_MPIX[opts.get("decoder", "rrdb")]
        return ((2 if "encoder" in frozen else 3) * enc + (2 if "decoder" in frozen else 3) * dec) * mpix
    flops = 3 * g + (g if "ldl" in terms else 0.0)
    if "aesop" in terms:
        flops += 3 * FORWARD_TFLOP_PER_MPIX["ae"]
    if "perceptual" in terms:
        flops += 3 * FORWARD_TFLOP_PER_MPIX["vgg19"]
    if cfg.discriminator is not None and "gan" in terms:
        vanilla = any(t.type == "gan" and t.gan_type == "vanilla" for t in cfg.losses)
        flops += (8 if vanilla else 9) * _forward(cfg.discriminator.arch)
    for d in cfg.discriminators.values():  # more discriminators, each with its relativistic GAN term (SPSR's d_grad)
        flops += 9 * _forward(d.arch)
    return flops * mpix


def gpu_seconds(cfg, gpu: str | None = None) -> float:
    """Seconds on one GPU of ``gpu``'s class for the whole of ``cfg``'s training (see the module's note)."""
    return cfg.steps * step_tflop(cfg) * 1e3 / sustained_gflops(cfg.generator.arch, gpu)


def _forward(arch: str) -> float:
    if arch in FORWARD_TFLOP_PER_MPIX:
        return FORWARD_TFLOP_PER_MPIX[arch]
    return FORWARD_TFLOP_PER_MPIX["rrdb"]  # an architecture not counted yet: taken as RRDB
