"""Throughput of Real-ESRGAN's degradation: aesop_bench's against BasicSR's functions chained as feed_data does.

Run: ``python benchmarks/bench_degradations.py [--batch 12] [--size 256] [--threads 2] [--repeats 5]``.

On the CPU, for a batch of ``--batch`` random GT patches of ``--size`` pixels (12 x 256: the authors' batch per
GPU and GT size), each stage alone and the whole synthesis (the dataset's three kernels per image, then
``feed_data``), ours and BasicSR 1.4.2's (imported through the tests' torchvision shim; its chain is the tests'
transcription of ``feed_data``). Both whole runs of a repeat use the same draws (each repeat its own seed), so
they do the same work and their LQ are compared (``identical``); the two sides alternate within each repeat.
The table gives the median milliseconds per batch and patches per second. The load average is printed before and
after: the numbers mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _clock(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    import pytest
    import torch

    from aesop_bench.data import degradations as D
    from aesop_bench.data.jpeg import jpeg
    from tests.references import basicsr_degradations
    from tests.test_degradations import (
        authors_opt,
        dataset_kernels,
        realesrgan_from_draws,
        realesrgan_tools,
    )

    torch.set_num_threads(args.threads)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ref, opt = basicsr_degradations(), authors_opt()
    deg = D.RealDegradation(D.DegradationConfig.from_dict(opt))
    tools = realesrgan_tools(ref)
    jpeger, usm = tools
    n, patch = args.batch, pytest.MonkeyPatch()
    gt = torch.rand(n, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    quality = torch.empty(n).uniform_(50, 95, generator=torch.Generator().manual_seed(1))
    rd = ref.degradations

    def ref_kernels(g):
        u = torch.rand(n, 3, D.KERNEL_DRAWS, dtype=torch.float64, generator=g)
        return [dataset_kernels(ref, opt, u[i], patch) for i in range(n)]

    def seeded(seed, fn):  # BasicSR's noise draws from the global RNG
        torch.manual_seed(seed)
        return fn()

    stages = {
        "kernels (3 per image)": (lambda s: deg.draw(n, torch.Generator().manual_seed(s)),
                                  lambda s: ref_kernels(torch.Generator().manual_seed(s))),
        "USM sharpening": (lambda s: D.usm_sharp(gt), lambda s: usm(gt)),
        "Gaussian noise": (lambda s: D.add_gaussian_noise(gt, (1, 30), 0.4, torch.Generator().manual_seed(s)),
                           lambda s: seeded(s, lambda: rd.random_add_gaussian_noise_pt(gt, [1, 30], 0.4))),
        "Poisson noise": (lambda s: D.add_poisson_noise(gt, (0.05, 2), 0.4, torch.Generator().manual_seed(s)),
                          lambda s: seeded(s, lambda: rd.random_add_poisson_noise_pt(gt, [0.05, 2], 0.4))),
        "DiffJPEG": (lambda s: jpeg(gt, quality), lambda s: jpeger(gt, quality.clone())),
    }
    rows, identical = [], True
    for name, (ours, theirs) in stages.items():
        ours(0), theirs(0)  # warm-up
        t_ours, t_ref = [], []
        for r in range(args.repeats):
            t_ours.append(_clock(ours, r)[0])
            t_ref.append(_clock(theirs, r)[0])
        rows.append((name, statistics.median(t_ours), statistics.median(t_ref)))

    def theirs(seed):
        twin = torch.Generator().manual_seed(seed)
        draws = deg.draw(n, twin)  # the uniforms only; BasicSR makes the kernels from them
        return realesrgan_from_draws(ref, gt, draws, twin.get_state(), opt, patch, tools)

    t_ours, t_ref = [], []
    for r in range(args.repeats):
        t, lq = _clock(deg, gt, torch.Generator().manual_seed(100 + r))
        t_ours.append(t)
        t, want = _clock(theirs, 100 + r)
        t_ref.append(t)
        identical &= torch.equal(lq, want)
    rows.append(("whole degradation", statistics.median(t_ours), statistics.median(t_ref)))

    print(f"\nbatch {n} x 3 x {args.size} x {args.size}, CPU, median of {args.repeats}\n")
    print("| stage | ours ms/batch | BasicSR ms/batch | ours patches/s | BasicSR patches/s | BasicSR / ours |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, a, b in rows:
        print(f"| {name} | {a * 1e3:.1f} | {b * 1e3:.1f} | {n / a:.1f} | {n / b:.1f} | {b / a:.2f} |")
    print(f"\nwhole degradation: LQ identical to BasicSR's in every repeat: {'yes' if identical else 'NO'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
