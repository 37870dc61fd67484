"""Every metric's throughput next to its reference implementation's, with the largest value difference.

Run: ``python benchmarks/bench_metrics.py [--data-root DIR] [--set set14] [--images 6] [--heavy-images 3]
[--device cpu|cuda] [--threads N]``.

On the same images, in one run, each metric is computed by aesop-bench (``Metric``, as the evaluator computes
it) and by its reference (same weights): BasicSR's PSNR/SSIM, a loop-based MATLAB ``imresize`` port with
BasicSR's PSNR for LR-PSNR, pyiqa's NIQE, MANIQA, MUSIQ and CLIP-IQA, the ``lpips`` and ``DISTS_pytorch``
packages, pytorch-fid's Inception for the FID/pFID features, and for AE-PSNR the AE applied to both images with
BasicSR's ``calculate_psnr_pt`` (the authors' computation). Weights are deterministic stand-ins
(benchmarks/standins.py) where the real files are not at hand: speed does not depend on their values.

"model 1" is the bicubic x4 SR of the set's HR images; "model 2" the bicubic x2 SR of the same HR images, a
second model evaluated after the first; "model 3" the x4 SR mirrored, a third. For the full-reference network
metrics (LPIPS, DISTS, AE-PSNR) the project keeps each HR's side on disk from the second model on, so model 3 pays
only its SR side; the references recompute it. Each
metric first runs on one warm-up image (building networks, loading weights; it is not timed, and its HR side is
cached like the others'). The heavy network metrics run on ``--heavy-images`` images.

Each row gives the throughput in images/s and in seconds per HR megapixel (what ``reproduce --dry-run`` estimates
from), the CPU seconds per megapixel (all threads; with one thread, the time on a core, which other processes on a
busy machine change less than the wall time), and the 1-minute load average when its timings ended. The metrics
without an HR side are timed ``--repeat`` times, ours and the reference's passes in turn, and the fastest pass of
each counts (the least disturbed one on a shared machine); the others once, as their cache's state changes from
model to model. After the rows of a metric whose HR side is cached, its HR cache is described: entries, bytes per
HR megapixel on disk and as tensors.

The thread count and the machine's load average (``/proc/loadavg``) are printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEAVY = {"maniqa", "musiq", "clipiqa", "ae_psnr", "dists"}
HR_SIDE = ("lpips", "dists", "ae_psnr")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _bgr(x: torch.Tensor) -> np.ndarray:  # BasicSR's metrics take OpenCV's channel order
    return np.ascontiguousarray(_hwc(x)[..., ::-1])


def _down(sr: torch.Tensor) -> np.ndarray:  # MATLAB's double path on the 8-bit SR, as lr_psnr downscales it
    from benchmarks.reference_impls import matlab_imresize_numpy

    return np.ascontiguousarray(matlab_imresize_numpy(_hwc(sr).astype(np.float64), 0.25)[..., ::-1])


def _describe_hr_cache(name: str, entries: list[Path], mpix: float) -> None:
    """One line: the HR cache entries a metric's rows wrote, their bytes per HR megapixel on disk and as the
    tensors they hold (DISTS's zeros packed on disk)."""
    from aesop_bench.metrics.hrcache import SPARSE_TENSORS

    if not entries:
        print(f"  {name}: no HR cache entry written", flush=True)
        return
    on_disk = sum(p.stat().st_size for p in entries)
    # SPARSE_TENSORS reads plain lists of tensors too (a tensor is kept as it is)
    held = sum(t.numel() * t.element_size() for p in entries for t in SPARSE_TENSORS.read(p))
    print(f"  {name}: {len(entries)} HR cache entries of {mpix:.2f} HR megapixels: {on_disk / mpix / 1e9:.3f} GB "
          f"per megapixel on disk, {held / mpix / 1e9:.3f} GB as tensors", flush=True)


def references(device: str, niqe_mat: str) -> dict:
    """name -> fn(sr, hr, lr) on uint8 (1, 3, H, W) tensors: a float, or for fid/pfid the features."""
    import pyiqa
    import torchvision
    from pyiqa.archs import clipiqa_arch
    from pyiqa.archs.clip_model import build_model
    from pyiqa.archs.niqe_arch import calculate_niqe

    import DISTS_pytorch
    import lpips as lpips_pkg
    from pytorch_fid import inception as fid_mod

    from aesop_bench import weights as wm
    from aesop_bench.metrics.iqa import no_timm_pretrained
    from aesop_bench.metrics.niqe import load_pristine
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from tests.references import basicsr_archs

    basicsr_archs()  # the torchvision shim BasicSR's imports need
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_psnr_pt, calculate_ssim

    def state(name):
        return torch.load(wm.get(name, download_missing=False), map_location="cpu", weights_only=True)

    refs = {
        "psnr": lambda sr, hr, lr: calculate_psnr(_bgr(sr), _bgr(hr), 4, "HWC", test_y_channel=True),
        "ssim": lambda sr, hr, lr: calculate_ssim(_bgr(sr), _bgr(hr), 4, "HWC", test_y_channel=True),
        "lr_psnr": lambda sr, hr, lr: calculate_psnr(_down(sr), _bgr(lr), 0, "HWC", test_y_channel=True),
    }
    mu, cov = load_pristine(niqe_mat)
    refs["niqe"] = lambda sr, hr, lr: calculate_niqe(sr.float() / 255, 4, mu_pris_param=mu,
                                                     cov_pris_param=cov).item()

    lp = lpips_pkg.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
    alex = state("alexnet")
    lp.net.load_state_dict({k: alex[f"features.{k.split('.', 1)[1]}"] for k in lp.net.state_dict()})
    lp = lp.to(device)
    refs["lpips"] = lambda sr, hr, lr: lp(sr.to(device).float() / 255, hr.to(device).float() / 255,
                                          normalize=True).item()

    vgg = torchvision.models.vgg16(weights=None)
    vgg.features.load_state_dict({k.split(".", 1)[1]: v for k, v in state("vgg16").items()
                                  if k.startswith("features.")})
    DISTS_pytorch.DISTS_pt.models.vgg16 = lambda *a, **k: vgg
    ds = DISTS_pytorch.DISTS(load_weights=False).eval()
    ab = state("dists_alpha_beta")
    ds.alpha.data, ds.beta.data = ab["alpha"], ab["beta"]
    ds = ds.to(device)
    refs["dists"] = lambda sr, hr, lr: ds(sr.to(device).float() / 255, hr.to(device).float() / 255,
                                          batch_average=False).item()

    ae = AutoEncoder()
    ae.load_state_dict(state("aesop_ae")["params_ema"])
    ae = ae.to(device).eval()

    def ae_psnr(sr, hr, lr):
        with torch.no_grad():
            a, b = ae(sr.to(device).float() / 255).double().cpu(), ae(hr.to(device).float() / 255).double().cpu()
        return calculate_psnr_pt(a, b, crop_border=4, test_y_channel=True).item()
    refs["ae_psnr"] = ae_psnr

    with no_timm_pretrained():
        for name, weights in (("maniqa", "maniqa_koniq"), ("musiq", "musiq_koniq")):
            m = pyiqa.create_metric(name, device=device, pretrained_model_path=str(wm.get(weights,
                                                                                        download_missing=False)))
            refs[name] = lambda sr, hr, lr, m=m: m(sr.float() / 255).item()
    clip_sd = state("clip_rn50")
    clipiqa_arch.load = lambda *a, **k: build_model(clip_sd).float()
    ci = pyiqa.create_metric("clipiqa", device=device)
    refs["clipiqa"] = lambda sr, hr, lr: ci(sr.float() / 255).item()

    incep_sd = state("pt_inception")
    fid_mod.load_state_dict_from_url = lambda *a, **k: incep_sd
    inc = fid_mod.InceptionV3([3], resize_input=True, normalize_input=True, use_fid_inception=True).eval().to(device)

    def fid_features(sr, hr, lr):
        with torch.no_grad():
            return inc(sr.to(device).float() / 255)[0].flatten(1).double().cpu().numpy()

    def pfid_features(sr, hr, lr):
        x = sr.float() / 255
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (0, max(0, 299 - w), 0, max(0, 299 - h)))
        h, w = x.shape[-2:]
        tiles = [x[..., i:i + 299, j:j + 299] for i in range(0, h - 298, 299) for j in range(0, w - 298, 299)]
        with torch.no_grad():
            return inc(torch.cat(tiles).to(device))[0].flatten(1).double().cpu().numpy()
    refs["fid"], refs["pfid"] = fid_features, pfid_features
    return refs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA", "../shared/data/benchmarks"))
    ap.add_argument("--niqe-mat", default="../shared/data/weights/niqe/modelparameters.mat")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--set", default="set14")
    ap.add_argument("--images", type=int, default=6, help="timed images of the light metrics")
    ap.add_argument("--heavy-images", type=int, default=3, help="timed images of the network metrics")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: the project's choice)")
    ap.add_argument("--metrics", default="all")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes of the metrics without an HR side")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AESOP_BENCH_HOME"] = str(Path(tmp) / "home")
        run(args, Path(tmp))


def run(args, tmp: Path) -> None:
    from aesop_bench import threads
    from aesop_bench.data.imresize import imresize
    from aesop_bench.data.sets import resolve
    from aesop_bench.data.transforms import mod_crop, to_rgb
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.iqa import no_timm_pretrained
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.metrics.registry import expand_metrics
    from benchmarks.standins import make_standins

    n_threads = threads.apply(args.threads)
    make_standins(tmp / "standins", args.niqe_mat)
    refs = references(args.device, args.niqe_mat)
    files = resolve(args.set, Path(args.data_root)).hr_files
    hrs = [mod_crop(to_rgb(read_image(f)), 4)[None] for f in files]
    hrs = hrs[: max(args.images, args.heavy_images) + 1]
    lrs = [imresize(h, 0.25) for h in hrs]
    models = {"model 1": [imresize(lr, 4.0) for lr in lrs],
              "model 2": [imresize(imresize(h, 0.5), 2.0) for h in hrs],
              "model 3": [imresize(lr, 4.0).flip(-1) for lr in lrs]}
    device = args.device
    print(f"set {args.set}, device {device}, {n_threads} torch threads of {os.cpu_count()} cores, "
          f"load average {_load()}")
    print("| metric | SR | images | HR MP | aesop-bench img/s | reference img/s | speed-up | aesop-bench s/MP | "
          "reference s/MP | CPU s/MP (aesop-bench / reference) | largest difference | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    kept = Path(os.environ["AESOP_BENCH_HOME"]) / "hr_features"
    for name in expand_metrics(args.metrics):
        n = args.heavy_images if name in HEAVY else args.images
        # BasicSR's protocol; AE-PSNR with the MSE offset of the authors' calculate_psnr_pt (the paper protocol)
        metric = Metric(name, "paper" if name == "ae_psnr" else "basicsr", device)
        before = set(kept.rglob("*.pt"))
        for label, srs in models.items():
            if label != "model 1" and name not in HR_SIDE:
                continue
            items = list(zip(srs, hrs, lrs))
            timed = items[1: n + 1]
            mpix = sum(hr.shape[-2] * hr.shape[-1] for _, hr, _ in timed) / 1e6

            def ours(sr, hr, lr):
                if metric.spec.kind == "distribution":
                    return metric.features(sr[0])
                return metric.score(sr, hr, lr).item()

            t_ours = t_ref = c_ours = c_ref = float("inf")
            with no_timm_pretrained():
                if label == "model 1":
                    ours(*items[0]), refs[name](*items[0])  # warm-up
                for _ in range(1 if name in HR_SIDE else max(1, args.repeat)):
                    t, c = time.perf_counter(), time.process_time()
                    got = [ours(*it) for it in timed]
                    t_ours, c_ours = min(t_ours, time.perf_counter() - t), min(c_ours, time.process_time() - c)
                    t, c = time.perf_counter(), time.process_time()
                    want = [refs[name](*it) for it in timed]
                    t_ref, c_ref = min(t_ref, time.perf_counter() - t), min(c_ref, time.process_time() - c)
            diff = max(float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())
                       for a, b in zip(got, want))
            print(f"| {name} | {label} | {n} | {mpix:.2f} | {n / t_ours:.2f} | {n / t_ref:.2f} | "
                  f"{t_ref / t_ours:.1f}x | {t_ours / mpix:.2f} | {t_ref / mpix:.2f} | "
                  f"{c_ours / mpix:.2f} / {c_ref / mpix:.2f} | {diff:.1e} | {_load().split()[0]} |", flush=True)
        if name in HR_SIDE:
            _describe_hr_cache(name, sorted(set(kept.rglob("*.pt")) - before),
                               sum(hr.shape[-2] * hr.shape[-1] for hr in hrs[1: n + 1]) / 1e6)
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
