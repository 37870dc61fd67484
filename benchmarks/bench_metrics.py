"""Speed of every metric, the Frechet distance against clean-fid's, and `--metrics all` end to end.

Run: ``python benchmarks/bench_metrics.py [--data-root DIR] [--device cpu|cuda] [--heavy-images 3]``.

Weights: the real files where the cache holds them, else deterministic stand-ins (benchmarks/standins.py);
speed does not depend on the weight values. Each metric runs on the bicubic SR of Set14 and BSD100
(heavy network metrics on the first ``--heavy-images`` images of each set), after one warm-up image.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEAVY = {"maniqa", "musiq", "clipiqa", "ae_psnr", "dists"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA", "../shared/data/benchmarks"))
    ap.add_argument("--niqe-mat", default="../shared/data/weights/niqe/modelparameters.mat")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--heavy-images", type=int, default=3)
    ap.add_argument("--all-set", default="set5", help="set for the --metrics all end-to-end timing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_all(args, Path(tmp))


def run_all(args, tmp: Path) -> None:
    os.environ.setdefault("AESOP_BENCH_HOME", str(tmp / "home"))

    from benchmarks.standins import make_standins
    from aesop_bench.data.imresize import imresize
    from aesop_bench.data.sets import resolve
    from aesop_bench.data.transforms import mod_crop, to_rgb
    from aesop_bench.protocols import get_protocol
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.metrics.registry import METRICS

    make_standins(tmp / "standins", args.niqe_mat)
    protocol = get_protocol("basicsr")
    print(f"device {args.device}, {torch.get_num_threads()} threads")
    print("| metric | set | images | images/s |")
    print("|---|---|---:|---:|")
    for set_name in ("set14", "bsd100"):
        files = resolve(set_name, Path(args.data_root)).hr_files
        items = []
        for f in files:
            hr = mod_crop(to_rgb(read_image(f)), 4)[None]
            lr = imresize(hr, 0.25)
            items.append((imresize(lr, 4.0), hr, lr))
        for name, spec in METRICS.items():
            use = items[: args.heavy_images + 1] if name in HEAVY else items
            metric = Metric(name, protocol, args.device)

            def run(item, metric=metric):
                sr, hr, lr = item
                if metric.spec.kind == "distribution":  # per-image cost: the features (each image is new to the cache)
                    return metric.features(sr[0])
                return metric.score(sr, hr, lr)
            run(use[0])  # warm-up: builds networks, loads weights
            t = time.perf_counter()
            for it in use[1:]:
                run(it)
            dt = time.perf_counter() - t
            print(f"| {name} | {set_name} | {len(use) - 1} | {(len(use) - 1) / dt:.2f} |")

    from cleanfid.fid import frechet_distance as cleanfid_fd
    from aesop_bench.metrics.frechet import frechet_distance_features, gaussian_stats

    rng = np.random.default_rng(0)
    print()
    print("| Frechet distance (2048-d) | samples | aesop-bench s | clean-fid s | speed-up | relative difference |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in (100, 1000):
        a, b = rng.normal(size=(n, 2048)), rng.normal(size=(n, 2048)) * 1.1 + 0.1
        t = time.perf_counter()
        ours = frechet_distance_features(a, b)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        mu1, s1 = gaussian_stats(a)
        mu2, s2 = gaussian_stats(b)
        ref = cleanfid_fd(mu1, s1, mu2, s2)
        t_ref = time.perf_counter() - t
        print(f"| random features | {n} | {t_ours:.3f} | {t_ref:.3f} | {t_ref / t_ours:.0f}x | "
              f"{abs(ours - ref) / abs(ref):.1e} |")

    cmd = [sys.executable, "-m", "aesop_bench", "eval", "--model", "bicubic", "--sets", args.all_set,
           "--metrics", "all", "--quiet", "--device", args.device, "--out", str(tmp / "all"),
           "--data-root", args.data_root]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ))
    print()
    print(f"| `--metrics all` on {args.all_set}, cold cache | {time.perf_counter() - t:.1f} s |")
    print("|---|---:|")


if __name__ == "__main__":
    main()
