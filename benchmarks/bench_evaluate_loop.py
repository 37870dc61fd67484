"""`aesop_bench.evaluate(module)` called in a loop, as a training script validates: time per call, write system
calls and bytes written per call (from /proc/self/io), and files left in the cache home afterwards.

    python benchmarks/bench_evaluate_loop.py [--calls 20]   # needs ../shared/data/benchmarks (Set5)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-loop-home-"))
    os.environ["AESOP_BENCH_HOME"] = str(home)
    os.environ.setdefault("AESOP_BENCH_DATA", str(REPO.parent / "shared" / "data" / "benchmarks"))
    import torch

    import aesop_bench as ab

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Upsample(scale_factor=4, mode="bicubic"))
    ab.evaluate(net, sets="set5", metrics=["psnr", "ssim"], download=False)  # warm-up: imports, first reads
    before, t = _io(), time.perf_counter()
    for _ in range(args.calls):
        ab.evaluate(net, sets="set5", metrics=["psnr", "ssim"], download=False)
    seconds, after = (time.perf_counter() - t) / args.calls, _io()
    files = sum(len(f) for _, _, f in os.walk(home))
    print(f"{'calls':>6} {'s/call':>8} {'write calls/call':>17} {'bytes written/call':>19} {'files in home':>14}")
    print(f"{args.calls:>6} {seconds:>8.3f} {(after['syscw'] - before['syscw']) / args.calls:>17.1f} "
          f"{(after['wchar'] - before['wchar']) / args.calls:>19.0f} {files:>14}")


if __name__ == "__main__":
    main()
