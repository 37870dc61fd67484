"""What each model and metric costs on this machine's CPU, as the evaluator records it, beside the declared costs
that ``reproduce --dry-run`` estimates with; and each network's FLOP count, beside the declared one.

Run: ``python benchmarks/bench_costs.py [--data-root DIR] [--set set14] [--images 5] [--models rrdb,swinir,spsr,drct]
[--metrics all] [--no-flops] [--no-timings]``.

* Timings: each model (deterministic random weights: speed does not depend on them) is evaluated by
  ``aesop_bench.evaluate`` on the first ``--images`` HR images of ``--set`` (a folder set, the paper protocol,
  the harness's default threads), the first model with every metric of ``--metrics`` (stand-in weights,
  benchmarks/standins.py), the others with PSNR alone; the table gives the seconds per HR megapixel each run's
  ``summary.json`` records (``timings``: the calls after each part's first, which builds its networks) beside
  the CPU cost declared in ``aesop_bench/report/reproduce.py`` (models) and the metric registry (metrics).
* FLOPs: torch's FlopCounterMode (convolutions, matrix products, attention) over one forward pass of each model at
  a 64 x 64 LR input, and over each network metric's SR and HR sides at two image sizes (512 x 512 and 512 x 768;
  598 x 598 and 598 x 897, whole 299-pixel patches, for pFID), split into GFLOP per HR megapixel and GFLOP per
  image; beside the declared
  figures (``FORWARD_TFLOP_PER_MPIX`` in models/flops.py, ``gflop`` in the registry) and the GPU seconds per megapixel
  they give on an A100 and an H100 (``reproduce.gpu_seconds_per_mpix``).

The load average (``/proc/loadavg``) is printed before and after each part: the machine may be shared.

Measured on the project's 2-core machine (Intel Xeon) while other processes kept a load average of 3 to 4.3, so the
harness ran on one thread; the seconds per HR megapixel (steady calls, 0.86 MP of Set14 at 0.215 MP per image) beside
what was declared before (in brackets):

* models, two runs (load 3.8-4.3 -> 3.0, then 3.1 -> 3.5): RRDB 25.6, 27.6 [40]; SwinIR 76.7, 39.6 [90]; SPSR
  74.3, 103 [60]; DRCT 66.8, 61.9 [105]. The declared figures are now the lower of the two.
* metrics (first run): PSNR 0.031 [0.05], SSIM 0.096 [0.3], LR-PSNR 0.058 [0.3], LPIPS 0.83 [3.0], DISTS 13.9
  [16], AE-PSNR 58.3 [45], NIQE 0.37 [2.0], MANIQA 381 (82 s per image) [30], MUSIQ 3.8 [8], CLIP-IQA 3.2 [4],
  FID 2.6 [3], pFID 3.2 [6].
* FLOPs (load 3.3-5.7; the count does not depend on it), GFLOP per HR megapixel: RRDB 2241 [2240], SwinIR 1634
  [1630], SPSR 6550 [3360, taken as 1.5 x RRDB], DRCT 2269 [2270]; SR and HR sides together: LPIPS 57, DISTS 1224.5
  (two VGG16 passes), AE-PSNR 4852, MUSIQ 88.1 + 11.9 per image, CLIP-IQA 242.6, pFID 255.5; per image: MANIQA
  5156.5, FID 22.8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLOP_SIZES = ((512, 512), (512, 768))  # HR (h, w): multiples of 4 (the AE) and of MANIQA's 224 crops' stride
PFID_SIZES = ((598, 598), (598, 897))  # 4 and 6 whole 299-pixel patches


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return f"load average {_load()}"


def _net(arch: str, seed: int = 0):
    import torch

    from aesop_bench.models.zoo import ARCHS

    torch.manual_seed(seed)
    return ARCHS[arch](4).eval()


def _identity(arch: str, net) -> str:
    """A zoo-like identity (``ARCH[]-x4-HASH``) for a network of random weights: thread-invariant where the
    architecture is, and recorded under ``model:ARCH`` as a zoo model's would be."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().view(-1).float().numpy().tobytes()[:4096])
    return f"{arch}[]-x4-{h.hexdigest()[:16]}"


def model_flops(archs: list[str]) -> dict[str, float]:
    """GFLOP per HR megapixel of each model's forward pass at a 64 x 64 LR input."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    for arch in archs:
        if not arch:
            continue
        net = _net(arch)
        with torch.inference_mode(), FlopCounterMode(display=False) as fc:
            net(torch.rand(1, 3, 64, 64))
        out[f"model:{arch}"] = fc.get_total_flops() / 1e9 / (256 * 256 / 1e6)
    return out


def metric_flops(names: list[str]) -> dict[str, tuple[float, float]]:
    """(GFLOP per HR megapixel, GFLOP per image) of each network metric, SR and HR sides together, solved from
    the counts at the two sizes of :data:`FLOP_SIZES`."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from aesop_bench.metrics.iqa import no_timm_pretrained
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.metrics.registry import Kind, get_spec

    out = {}
    g = torch.Generator().manual_seed(0)
    for name in names:
        spec = get_spec(name)
        if not spec.weights or name == "niqe":
            continue
        m = Metric(name, "paper")
        warm = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8, generator=g)
        with no_timm_pretrained():  # builds the networks (CLIP-IQA also encodes its prompts): not counted
            m.features([warm[0]]) if spec.kind == Kind.DISTRIBUTION else m.score(warm, warm, None)
        counts = []
        sizes = PFID_SIZES if name == "pfid" else FLOP_SIZES
        for h, w in sizes:
            sr = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g)
            hr = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=g)
            with no_timm_pretrained(), FlopCounterMode(display=False) as fc:
                if spec.kind == Kind.DISTRIBUTION:
                    m.features([sr[0]]), m.features([hr[0]])
                else:
                    m.score(sr, hr if spec.kind == Kind.FULL_REFERENCE else None, None)
            counts.append(fc.get_total_flops() / 1e9)
        (h1, w1), (h2, w2) = sizes
        mp1, mp2 = h1 * w1 / 1e6, h2 * w2 / 1e6
        per_mpix = (counts[1] - counts[0]) / (mp2 - mp1)
        out[name] = (max(per_mpix, 0.0), max(counts[0] - per_mpix * mp1, 0.0))
    return out


def timings(args, tmp: Path) -> tuple[dict, dict]:
    """``{part: s/MP}`` and ``{part: (MP timed, threads)}`` from the evaluator's timings of each model's run."""
    import json

    import aesop_bench as ab
    from aesop_bench.data.sets import resolve
    from aesop_bench.metrics.iqa import no_timm_pretrained

    folder = tmp / "images"
    folder.mkdir()
    for f in resolve(args.set, Path(args.data_root)).hr_files[: args.images]:
        shutil.copy(f, folder / f.name)
    rates, seen = {}, {}
    for i, arch in enumerate(args.models.split(",")):
        net = _net(arch)
        metrics = args.metrics if i == 0 else "psnr"
        t = time.perf_counter()
        before = _load()
        with no_timm_pretrained():
            result = ab.evaluate(net, sets=str(folder), metrics=metrics, out=tmp / f"run-{arch}", download=False,
                                 identity=_identity(arch, net))
        timed = next(iter(result.summary["timings"].values()))
        parts = {f"model:{arch}": timed["model"], **(timed.get("metrics") or {} if i == 0 else {})}
        rows = (tmp / f"run-{arch}" / "rows.jsonl").read_text().splitlines()
        threads = sorted({json.loads(r)["on"].rsplit(", ", 1)[-1] for r in rows})
        for key, e in parts.items():
            rates[key] = e["s_per_mpix"]
            n = e["steady_images"] or e["images"]
            seen[key] = (e["steady_mpix"] or e["mpix"], "/".join(threads), (e["steady_mpix"] or e["mpix"]) / n)
        print(f"  {arch}: {time.perf_counter() - t:.0f} s ({metrics}), load {before} -> {_load()}, "
              f"threads {'/'.join(threads)}", flush=True)
    return rates, seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA"))
    ap.add_argument("--set", default="set14")
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--models", default="rrdb,swinir,spsr,drct")
    ap.add_argument("--metrics", default="all")
    ap.add_argument("--niqe-mat", default=None, help="NIQE's pristine model (default: the shared test data's)")
    ap.add_argument("--no-flops", action="store_true")
    ap.add_argument("--no-timings", action="store_true")
    args = ap.parse_args()
    niqe = args.niqe_mat or Path(args.data_root or ".").parent / "weights" / "niqe" / "modelparameters.mat"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["AESOP_BENCH_HOME"] = str(tmp / "home")
        from benchmarks.standins import make_standins

        make_standins(tmp / "standins", niqe if Path(niqe).is_file() else None)
        from aesop_bench.metrics.registry import METRICS, expand_metrics
        from aesop_bench.report import reproduce as rp

        print(_uptime())
        print(f"{os.cpu_count()} cores; set {args.set}, first {args.images} images")
        if not args.no_timings:
            print("timings (load before -> after each run):")
            rates, seen = timings(args, tmp)
            print(f"after the timings: {_uptime()}")
            print("| part | measured s/MP | MP timed | MP/image | threads | declared s/MP | declared / measured |")
            print("|---|---:|---:|---:|---|---:|---:|")
            for key, rate in rates.items():
                declared = rp.CPU_SECONDS_PER_MPIX.get(key)
                ratio = f"{declared / rate:.1f}" if declared and rate else "-"
                mp, threads, size = seen[key]
                print(f"| {key} | {rate:.3g} | {mp:.2f} | {size:.3f} | {threads} | {declared} | {ratio} |")
        if not args.no_flops:
            archs = args.models.split(",")
            print(f"FLOP counts (load {_load()}):")
            mf = model_flops(archs)
            print("| network | GFLOP/MP | declared | GFLOP/image | declared | A100 s/MP | H100 SXM s/MP |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for key, gf in mf.items():
                arch = key.split(":")[1]
                declared = rp.MODEL_TFLOP_PER_MPIX.get(arch, 0) * 1e3
                gpu = [rp.gpu_seconds_per_mpix(key, g) for g in ("A100", "H100 SXM")]
                print(f"| {key} | {gf:.0f} | {declared:.0f} | - | - | {gpu[0]:.3g} | {gpu[1]:.3g} |")
            for name, (per_mp, per_img) in metric_flops(expand_metrics(args.metrics)).items():
                d = METRICS[name].gflop or (0.0, 0.0)
                gpu = [rp.gpu_seconds_per_mpix(name, g) for g in ("A100", "H100 SXM")]
                print(f"| {name} | {per_mp:.1f} | {d[0]:.1f} | {per_img:.1f} | {d[1]:.1f} | {gpu[0]:.3g} | "
                      f"{gpu[1]:.3g} |")
            print(f"after the FLOP counts: {_uptime()}")


if __name__ == "__main__":
    main()
