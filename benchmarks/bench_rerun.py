"""A finished run repeated: ``aesop-bench eval --model bicubic --sets set5,set14,bsd100 --metrics psnr,ssim`` with
every value stored, as a fresh process each time (what a user or a script waits for), beside Python's own
start-up and ``import torch`` for scale; and whether torch was imported at all.

    python benchmarks/bench_rerun.py [--repeat 5]   # needs ../shared/data/benchmarks (Set5, Set14, BSD100)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = ["-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", "set5,set14,bsd100", "--metrics", "psnr,ssim",
        "--no-download", "--quiet"]
# the same command in one process, reporting whether torch was imported
PROBE = ("import sys; from aesop_bench.cli import main; rc = main(sys.argv[1:]); "
         "print('torch imported:', 'torch' in sys.modules, file=sys.stderr); sys.exit(rc)")


def _time(cmd: list[str], env: dict, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-rerun-"))
    env = {**os.environ, "AESOP_BENCH_HOME": str(work / "home"),
           "AESOP_BENCH_DATA": os.environ.get("AESOP_BENCH_DATA", str(REPO.parent / "shared/data/benchmarks"))}
    out = ["--out", str(work / "run")]
    subprocess.run([sys.executable, *EVAL, *out], env=env, check=True, capture_output=True)  # the first run
    probe = subprocess.run([sys.executable, "-c", PROBE, *EVAL[2:], *out], env=env, check=True, capture_output=True,
                           text=True).stderr.strip().splitlines()[-1]
    rows = [("python -c pass", _time([sys.executable, "-c", "pass"], env, args.repeat)),
            ("python -c 'import torch'", _time([sys.executable, "-c", "import torch"], env, args.repeat)),
            ("finished rerun (3 sets, psnr+ssim)", _time([sys.executable, *EVAL, *out], env, args.repeat))]
    print(f"{'command':40s} {'median s':>9s}")
    for name, t in rows:
        print(f"{name:40s} {t:9.2f}")
    print(probe)


if __name__ == "__main__":
    main()
