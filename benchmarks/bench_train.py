"""Training speed and peak memory: aesop_rrdb against ldl_rrdb (the AESOP loss adds an AE forward and
backward), at the paper's HR patch 128, on this machine.

Run: ``python benchmarks/bench_train.py [--device cpu|cuda] [--batch 2] [--steps 3]``
(paper: batch 16 per GPU). Weights are deterministic stand-ins (benchmarks/standins.py): speed does not
depend on their values. Each configuration runs in its own process so peak memory is its own.
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
REPO = Path(__file__).resolve().parents[1]


def one(config: str, device: str, batch: int, steps: int, tmp: Path) -> dict:
    import torch

    from aesop_bench.train.config import load_config
    from aesop_bench.train.trainer import Trainer
    from benchmarks.standins import make_standins

    make_standins(tmp / "standins", which=("vgg19", "aesop_ae"))
    cfg = load_config(config,
                      [f"data.batch={batch}", f"data.micro_batch={batch}", "data.workers=0", "val.every=0",
                       "generator.init=null"])
    tr = Trainer(cfg, tmp / "run", None, device, log=lambda m: None)
    lr = torch.rand(batch, 3, cfg.data.patch // 4, cfg.data.patch // 4, device=tr.device)
    hr = torch.rand(batch, 3, cfg.data.patch, cfg.data.patch, device=tr.device)
    tr.train_step(lr, hr)  # warm-up
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for _ in range(steps):
        tr.train_step(lr, hr)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize(device)
    dt = (time.perf_counter() - t) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if str(device).startswith("cuda") else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"sec_per_step": dt, "peak_mib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["AESOP_BENCH_HOME"] = str(Path(tmp) / "home")
            print(json.dumps(one(args.one, device, args.batch, args.steps, Path(tmp))))
        return
    print(f"device {device}, HR patch 128, batch {args.batch}, {args.steps} timed steps after one warm-up")
    print("| config | s/step | steps/s | peak MiB |")
    print("|---|---:|---:|---:|")
    res = {}
    for config in ("ldl_rrdb", "aesop_rrdb"):
        out = subprocess.run([sys.executable, __file__, "--one", config, "--device", device, "--batch",
                              str(args.batch), "--steps", str(args.steps)], check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        res[config] = json.loads(out)
        r = res[config]
        print(f"| {config} | {r['sec_per_step']:.2f} | {1 / r['sec_per_step']:.3f} | {r['peak_mib']:.0f} |")
    ratio = res["aesop_rrdb"]["sec_per_step"] / res["ldl_rrdb"]["sec_per_step"]
    print(f"\nAESOP / LDL time per step: {ratio:.2f}")


if __name__ == "__main__":
    main()
