"""Thread counts on a shared CPU: the bicubic evaluation of Set5, Set14 and BSD100 (PSNR, SSIM, LR-PSNR), cold
cache, with torch's default thread count (one per core: the behaviour before ``--threads``), with the default
of ``aesop_bench.threads`` (the cores other processes leave free) and with one thread; each on an idle machine
and with one core kept busy by another process (a Python busy loop, standing in for a CI neighbour).

Run: ``python benchmarks/bench_threads.py [--data-root DIR] [--repeat 1]``. Prints seconds per evaluation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {  # label -> AESOP_BENCH_THREADS (None: the project's default)
    "torch default (one thread per core)": str(os.cpu_count()),
    "aesop_bench default (free cores)": None,
    "1 thread": "1",
}


def run_eval(data_root: str, threads: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AESOP_BENCH_HOME=str(Path(tmp) / "home"), AESOP_BENCH_DATA=data_root)
        env.pop("AESOP_BENCH_THREADS", None)
        if threads is not None:
            env["AESOP_BENCH_THREADS"] = threads
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "aesop_bench", "eval", "--model", "bicubic", "--sets",
                        "set5,set14,bsd100", "--metrics", "psnr,ssim,lr_psnr", "--quiet", "--out",
                        str(Path(tmp) / "run")], env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA"))
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    rows = []
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            if hog:
                time.sleep(65)  # let the 1-minute load average see the neighbour, as it would on a shared runner
            for label, threads in CASES.items():
                best = min(run_eval(args.data_root, threads) for _ in range(args.repeat))
                rows.append((label, "one core busy" if busy else "idle", best))
        finally:
            if hog:
                hog.kill()
    print(f"{'threads':40s} {'machine':14s} {'seconds':>8s}   ({os.cpu_count()} cores)")
    for label, machine, sec in rows:
        print(f"{label:40s} {machine:14s} {sec:8.1f}")


if __name__ == "__main__":
    main()
