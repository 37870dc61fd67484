"""What the NR-IQA loss term costs next to the generator it trains: seconds and FLOPs per 256x256 SR patch for the
forward and backward of each differentiable metric (:data:`aesop_bench.train.nriqa.DIFFERENTIABLE`), against one
RRDB training step's generator forward and backward on the 64x64 LR patch of that 256x256 HR patch (full RRDBNet
x4, 23 blocks; L1 loss), plus the same with LoRA adapters on a frozen base, all in one run on this machine.

MANIQA, refused as a loss, is measured with ``--maniqa-crops`` crops (default 2; MANIQA scores 20) and its
cost per 20-crop patch extrapolated linearly (the crops are one batch through the same network), so that the
refusal's reason is a number.

Run: ``python benchmarks/bench_nriqa_loss.py [--batch 2] [--repeat 3] [--device cpu] [--maniqa-crops 2]``.
Weights are deterministic stand-ins (benchmarks/standins.py): speed does not depend on their values. Times are the
best of ``--repeat`` after one warm-up; FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one
forward and backward (matrix products and convolutions only, as it counts). The load average (``/proc/loadavg``)
and thread count are printed before and after: the machine may be shared.

Measured on the project's 2-core x86 machine, 2 threads, batch 1, best of 1, load average 0.8 before and 1.3 after
(seconds, GFLOP, share of the RRDB step's seconds): MUSIQ 0.565, 39.4, 0.16; CLIP-IQA 0.364, 31.9, 0.10;
TOPIQ-NR 0.619, 36.9, 0.18; RRDB generator 3.502, 440.6, 1.00; RRDB with rank-8 LoRA on a frozen base 4.944, 380.9,
1.41 (fewer FLOPs without the base's weight gradients, more time in the adapters' small convolutions).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _time_and_flops(step, device, repeat: int) -> tuple[float, float]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize(device)

    step()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        sync()
        t = time.perf_counter()
        step()
        sync()
        best = min(best, time.perf_counter() - t)
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return best, counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=2, help="patches per forward (costs are divided by it)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--maniqa-crops", type=int, default=2, help="MANIQA crops measured (0: skip MANIQA)")
    ap.add_argument("--lora-rank", type=int, default=8)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from aesop_bench.metrics import iqa
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
    from aesop_bench.models.lora import add_lora, freeze_base, lora_parameters
    from aesop_bench.train.nriqa import DIFFERENTIABLE, NRIQALoss
    from benchmarks.standins import make_standins

    dev, b = torch.device(args.device), args.batch
    os.environ.setdefault("AESOP_BENCH_HOME", tempfile.mkdtemp(prefix="bench-nriqa-home-"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-nriqa-"))
    need = {"musiq": "musiq_koniq", "clipiqa": "clip_rn50", "topiq_nr": "topiq_nr_koniq", "maniqa": "maniqa_koniq"}
    make_standins(tmp / "standins", which=tuple(need[m] for m in (*DIFFERENTIABLE, "maniqa") if m in need))
    print(f"device {dev}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, batch {b}, best of "
          f"{args.repeat}; load average before: {_load()}")
    g = torch.Generator().manual_seed(0)
    sr = torch.rand(b, 3, 256, 256, generator=g).to(dev)
    rows = []

    for name in DIFFERENTIABLE:
        loss = NRIQALoss(name, 1.0, dev)
        x = sr.clone().requires_grad_(True)

        def step(loss=loss, x=x):
            x.grad = None
            loss(x).backward()
        sec, flops = _time_and_flops(step, dev, args.repeat)
        rows.append((f"{name} loss (fwd+bwd, 256x256 SR)", sec / b, flops / b))

    torch.manual_seed(0)
    lr = torch.rand(b, 3, 64, 64, generator=g).to(dev)
    hr = torch.rand(b, 3, 256, 256, generator=g).to(dev)
    for lora in (False, True):
        net = RRDBNet().to(dev).train()
        params = list(net.parameters())
        if lora:
            add_lora(net, args.lora_rank, generator=torch.Generator().manual_seed(0))
            freeze_base(net)
            params = lora_parameters(net)

        def step(net=net, params=params):
            for p in params:
                p.grad = None
            F.l1_loss(net(lr), hr).backward()
        sec, flops = _time_and_flops(step, dev, args.repeat)
        label = f"RRDB + LoRA r{args.lora_rank}, frozen base" if lora else "RRDB generator"
        rows.append((f"{label} (fwd+bwd, 64x64 LR)", sec / b, flops / b))
        del net

    if args.maniqa_crops > 0:
        net = iqa.build("maniqa", test_sample=args.maniqa_crops).to(dev).requires_grad_(False).eval()
        x = sr.clone().requires_grad_(True)

        def step(x=x):
            x.grad = None
            (-net(x).mean()).backward()
        sec, flops = _time_and_flops(step, dev, args.repeat)
        k = 20 / args.maniqa_crops
        rows.append((f"maniqa ({args.maniqa_crops} crop(s), refused as a loss)", sec / b, flops / b))
        rows.append(("maniqa (20 crops, extrapolated)", sec / b * k, flops / b * k))

    rrdb = next(r for r in rows if r[0].startswith("RRDB generator"))
    print(f"\n| {'per patch':<48} | {'seconds':>8} | {'GFLOP':>8} | {'x RRDB step':>11} |")
    print(f"|{'-' * 50}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for label, sec, flops in rows:
        print(f"| {label:<48} | {sec:8.3f} | {flops / 1e9:8.1f} | {sec / rrdb[1]:11.2f} |")
    print(f"\nload average after: {_load()}")


if __name__ == "__main__":
    main()
