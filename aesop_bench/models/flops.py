"""What a network costs in floating-point work, and what a GPU class sustains: the figures the declared time
estimates of ``reproduce --dry-run`` (evaluation) and :mod:`aesop_bench.train.cost` (training) are made of.

Forward TFLOP per HR megapixel at x4, counted with torch's FlopCounterMode on a 64 x 64 LR input
(benchmarks/bench_costs.py prints them beside these figures); the discriminators and loss networks at their own
training patch size. Each GPU class by its FP32 peak without tensor cores: evaluation turns TF32 off
(:func:`aesop_bench.determinism.deterministic`), and a training estimate takes the same rate, so both are upper
bounds where TF32 is on. Dense 3x3 convolutions sustain about half the peak, windowed attention (small matrix
products, memory-bound reshapes) about a quarter: declared shares, replaced by measurements wherever a run has
made them.
"""

from __future__ import annotations

import re

# SR networks; the AE on the HR image (its RRDB encoder 0.19 and its decoder, RRDB 2.24 or SRResNet (BasicSR's
# MSRResNet, 16 blocks) 0.32); VGG19 up to conv5_4; the discriminators (VGG-style at 128 and 256, the U-Net)
FORWARD_TFLOP_PER_MPIX = {
    "rrdb": 2.24, "swinir": 1.63, "drct": 2.27, "spsr": 6.55, "bicubic": 0.0, "srresnet": 0.32,
    "ae": 2.43, "ae_encoder": 0.19, "vgg19": 0.78, "vgg128": 0.27, "vgg256": 0.28, "unet": 0.79,
}
ATTENTION = {"swinir", "drct"}  # windowed attention (MUSIQ and MANIQA attend over hundreds of tokens: dense)
EFFICIENCY = {"conv": 0.5, "attention": 0.25}  # the sustained share of the FP32 peak (declared)
# FP32 peak without tensor cores, TFLOP/s, of the GPUs a device name may match (the first pattern that matches);
# from NVIDIA's datasheets: H100 (SXM 67, PCIe 51, NVL 60), H200 (SXM 67), A100 (SXM and PCIe 19.5), L40S 91.6,
# L4 30.3, A10 31.2, T4 8.1, V100 (SXM2 15.7, PCIe 14), RTX A6000 38.7, GeForce RTX 4090 82.6
GPU_FP32_TFLOPS = (
    (r"H100.*PCIe", "H100 PCIe", 51.0), (r"H100.*NVL", "H100 NVL", 60.0), (r"H100", "H100 SXM", 67.0),
    (r"H200", "H200", 67.0), (r"A100", "A100", 19.5), (r"L40S", "L40S", 91.6), (r"\bL4\b", "L4", 30.3),
    (r"\bA10G?\b", "A10", 31.2), (r"\bT4\b", "T4", 8.1), (r"V100.*PCIe", "V100 PCIe", 14.0),
    (r"V100", "V100", 15.7), (r"A6000", "RTX A6000", 38.7), (r"4090", "RTX 4090", 82.6),
)
DEFAULT_GPU = "A100"  # a GPU none of the patterns names (or none named: a dry run without one) is taken as this


def gpu_class(name: str | None) -> tuple[str, float, bool]:
    """(class, FP32 TFLOP/s, whether ``name`` was recognised) of a GPU's device name (a class name works too).

    >>> gpu_class("NVIDIA A100-SXM4-80GB"), gpu_class("NVIDIA H100 PCIe")[:2], gpu_class("Tesla T4")[:2]
    (('A100', 19.5, True), ('H100 PCIe', 51.0), ('T4', 8.1))
    >>> gpu_class("Some Future GPU")
    ('A100', 19.5, False)
    """
    for pattern, cls, tflops in GPU_FP32_TFLOPS:
        if name and re.search(pattern, name, re.I):
            return cls, tflops, True
    return DEFAULT_GPU, next(t for _, c, t in GPU_FP32_TFLOPS if c == DEFAULT_GPU), False


def sustained_gflops(name: str, gpu: str | None = None) -> float:
    """Declared sustained GFLOP/s of network ``name`` (an architecture or a metric) on ``gpu``'s class."""
    return gpu_class(gpu)[1] * 1e3 * EFFICIENCY["attention" if name in ATTENTION else "conv"]
