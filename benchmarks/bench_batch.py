"""The evaluator with one image per network call against batches of images of one size (``--batch``).

Run: ``python benchmarks/bench_batch.py [--device cuda|cpu] [--arch rrdb|swinir] [--set bsd100] [--images N]
[--batch 16] [--metrics psnr,lpips,dists,ae_psnr,fid,pfid] [--threads N]``.

For each batch size (1, then ``--batch``) the evaluator runs on the same images, every cache emptied first
(SR images, FID features, HR sides; the weights stay): first the model with PSNR only (the SR images are made
and cached), then each network metric on its own, on the cached SR images. The table gives the seconds of each
stage for both, the speed-up, and the largest per-image difference between the two runs (float32 convolutions
of a batch round differently from one image's; an 8-bit SR pixel can move by one level). BSD100's 100 images
have two sizes (480x320 and 320x480 after the modcrop), so they batch well; sets of many sizes run as before.

The model is the zoo architecture with deterministic random weights and the metric networks are stand-ins
(benchmarks/standins.py): the speed of a network does not depend on its weights' values.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _values(run: Path) -> dict:
    return {(r["image"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "per_image.csv"))}


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--arch", default="rrdb", choices=["rrdb", "swinir"])
    ap.add_argument("--set", default="bsd100")
    ap.add_argument("--images", type=int, default=None, help="the first N images of the set (default: all on "
                                                              "CUDA, 16 on the CPU)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--metrics", default="psnr,lpips,dists,ae_psnr,fid,pfid")
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA"))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["AESOP_BENCH_HOME"] = str(tmp / "home")
    from aesop_bench import threads
    from aesop_bench.api import evaluate
    from aesop_bench.data.sets import resolve
    from aesop_bench.models.zoo import ARCHS
    from aesop_bench.cache import CACHES
    from aesop_bench.paths import data_root
    from benchmarks.standins import make_standins

    n_threads = threads.apply(args.threads)
    make_standins(tmp / "standins", which=("alexnet", "vgg16", "pt_inception", "aesop_ae", "lpips_alex_v0.1",
                                           "dists_alpha_beta"))
    res = resolve(args.set, data_root(args.data_root))
    n = args.images or (len(res.hr_files) if args.device.startswith("cuda") else 16)
    subset = tmp / "set" / "HR"
    subset.mkdir(parents=True)
    for f in res.hr_files[:n]:
        (subset / f.name).symlink_to(f)
    torch.manual_seed(0)
    net = ARCHS[args.arch](4).eval()
    metrics = [m for m in args.metrics.split(",") if m != "psnr"]
    times: dict[int, dict[str, float]] = {}
    for batch in (1, args.batch):
        for c in CACHES.values():
            shutil.rmtree(c.root(), ignore_errors=True)
        times[batch] = {}
        for stage in ["model + psnr", *metrics]:
            t = time.perf_counter()
            evaluate(net, sets=[str(subset.parent)], metrics=["psnr"] if stage == "model + psnr" else [stage],
                     protocol="basicsr", out=tmp / f"run-{batch}-{stage}", device=args.device, download=False,
                     batch=batch, identity=f"bench-{args.arch}")
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[batch][stage] = time.perf_counter() - t
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {n_threads} threads"
    print(f"{args.arch} x4 (random weights), {n} images of {args.set}, {dev}; seconds per stage, every cache "
          "emptied before each batch size\n")
    print(f"| stage | batch 1 | batch {args.batch} | speed-up | largest difference |")
    print("|---|---:|---:|---:|---:|")
    for stage in ["model + psnr", *metrics]:
        a, b = times[1][stage], times[args.batch][stage]
        va, vb = _values(tmp / f"run-1-{stage}"), _values(tmp / f"run-{args.batch}-{stage}")
        diff = max((abs(va[k] - vb[k]) for k in va), default=0.0)
        print(f"| {stage} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {diff:.2g} |")
    total = [sum(times[b].values()) for b in (1, args.batch)]
    print(f"| all | {total[0]:.2f} | {total[1]:.2f} | {total[0] / total[1]:.2f}x | |")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
