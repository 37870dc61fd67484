"""The Frechet distance on large feature sets (pFID on DIV2K-val or LSDIR: thousands of patches): this
project's exact route against clean-fid's (scipy ``sqrtm`` of the covariance product) on the same features.

Run: ``python benchmarks/bench_frechet.py [--n 5000] [--d 2048]``. Prints seconds and both values.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesop_bench.metrics.frechet import frechet_distance_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--d", type=int, default=2048)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((args.n, args.d))
    b = rng.standard_normal((args.n, args.d)) * 1.1 + 0.05
    t0 = time.perf_counter()
    ours = frechet_distance_features(a, b)
    t_ours = time.perf_counter() - t0
    from cleanfid.fid import frechet_distance

    t0 = time.perf_counter()
    ref = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    t_ref = time.perf_counter() - t0
    print(f"n={args.n} d={args.d}")
    print(f"{'aesop_bench (QR route, n > d)':34s} {t_ours:8.2f} s   FD {ours:.6f}")
    print(f"{'clean-fid (scipy sqrtm)':34s} {t_ref:8.2f} s   FD {ref:.6f}")
    print(f"relative difference {abs(ours - ref) / abs(ref):.2e}")


if __name__ == "__main__":
    main()
