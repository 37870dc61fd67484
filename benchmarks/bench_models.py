"""Inference speed and peak memory of RRDB and SwinIR on an Urban100-sized image (1024x768 HR,
256x192 LR), whole and tiled, fp32 and bf16, and the tiled-vs-whole difference.

Run: ``python benchmarks/bench_models.py [--device cpu|cuda] [--tile 128] [--overlap 32]``.

Each configuration runs in a fresh process, so that peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``, on CPU the process's peak resident set size minus the resident size
before the first forward pass. Weights are deterministic random ones (speed and memory do not depend on
them); so is the tiling difference, which with random weights is an upper bound of what trained,
smoother networks show.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_one(arch: str, device: str, precision: str, tile: int | None, overlap: int, repeat: int) -> dict:
    import torch

    from aesop_bench.models.inference import NetModel
    from aesop_bench.models.options import RunOptions
    from aesop_bench.models.zoo import ARCHS

    torch.manual_seed(0)
    net = ARCHS[arch](4)
    model = NetModel(arch, net, 4, arch,
                     RunOptions(device=device, precision=precision, tile=tile, tile_overlap=overlap))
    x = torch.rand(1, 3, 192, 256)
    base = _rss_kb()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(repeat):
        out = model(x)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
    dt = (time.perf_counter() - t) / repeat
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if str(device).startswith("cuda") else \
        (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    torch.save(out.cpu(), os.environ["BENCH_OUT"])
    return {"seconds": dt, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--archs", default="rrdb,swinir")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        arch, precision, tile = args.one.split(":")
        print(json.dumps(run_one(arch, device, precision, int(tile) or None, args.overlap, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        compare(args, device, Path(tmp))


def compare(args, device: str, tmp: Path) -> None:
    import torch

    print(f"device {device}; LR 256x192 -> HR 1024x768; tile {args.tile} overlap {args.overlap}")
    print("| arch | precision | mode | images/s | peak MiB | max abs diff vs whole (random weights) |")
    print("|---|---|---|---:|---:|---:|")
    for arch in args.archs.split(","):
        for precision in ("fp32", "bf16"):
            outs = {}
            for tile in (0, args.tile):
                out_file = tmp / f"bench_{arch}_{precision}_{tile}.pt"
                env = dict(os.environ, BENCH_OUT=str(out_file))
                cmd = [sys.executable, __file__, "--one", f"{arch}:{precision}:{tile}", "--device", device,
                       "--overlap", str(args.overlap), "--repeat", str(args.repeat)]
                res = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True,
                                                text=True).stdout.strip().splitlines()[-1])
                outs[tile] = torch.load(out_file)
                diff = "-" if tile == 0 else f"{(outs[tile] - outs[0]).abs().max().item():.4f}"
                mode = "whole" if tile == 0 else f"tiled {tile}"
                print(f"| {arch} | {precision} | {mode} | {1 / res['seconds']:.3f} | {res['peak_mib']:.0f} | {diff} |")


if __name__ == "__main__":
    main()
