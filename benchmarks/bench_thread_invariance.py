"""What the thread-count-invariant reductions cost: each metric computed with torch's own reductions (the way
before them) and with the fixed-order ones (the way now), side by side in one run, at each thread count.

Run: ``python benchmarks/bench_thread_invariance.py [--data-root DIR] [--sets set14,bsd100] [--net-sets set14]
[--metrics psnr,ssim,...] [--threads 1,2] [--repeat 3]``; with ``--networks``, the networks instead.

The SR images are the 8-bit bicubic x4 of the paper protocol's LR. PSNR, SSIM, LR-PSNR and NIQE (the real LIVE
model, from ``$AESOP_BENCH_SHARED``) run on ``--sets``; LPIPS (with the ``lpips`` package's heads), DISTS and MUSIQ
(where IQA-PyTorch is installed), with seeded random backbones (their speed and their arithmetic do not depend on
the weights), on ``--net-sets``. "before" swaps the replaced computations back in: torch's mean for
:func:`~aesop_bench.determinism.fixed_mean` (PSNR, SSIM, LR-PSNR), ``torch.cov`` for NIQE's covariance, the
1x1-convolution heads then the mean for LPIPS, MUSIQ's patch embedding on every thread; DISTS has nothing replaced
(its row is the noise of the measurement). Seconds are the best of ``--repeat`` passes over the images, before
and after alternating; "rows differing" counts the images whose value at the first thread count differs from the
value at any other, in the last bit.

``--networks`` measures the float32 forward passes on the CPU: the SR networks (small and full RRDB and SwinIR),
the metrics' backbones and the ops found to differ, each with oneDNN (torch's default), with oneDNN off and with
deterministic algorithms on: whether the output is the same in every bit at each thread count (1, 2 and 4 unless
``--threads`` says otherwise), the largest difference, and the time of a forward at one and at two threads (best
of three, in ms). MKL's strict reproducibility mode is a setting of the process: compare a run under
``MKL_CBWR=AUTO,STRICT`` (printed in the header) with one without.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aesop_bench.data.sets import resolve  # noqa: E402
from aesop_bench.data.transforms import mod_crop, protocol_lr, to_rgb  # noqa: E402
from aesop_bench.imageio import quantize, read_image  # noqa: E402
from aesop_bench.metrics import fidelity, iqa, niqe, perceptual  # noqa: E402
from aesop_bench.models.bicubic import Bicubic  # noqa: E402
from aesop_bench.protocols import get_protocol  # noqa: E402


def _torch_mean(x, start_dim=1):
    return x.flatten(start_dim).mean(dim=-1)


def _lpips_conv_heads(self, x, fy):
    total = 0
    for lin, fx, f in zip(self.lins, self.features(x), fy):
        total = total + lin((fx - f) ** 2).mean(dim=(2, 3))
    return total.flatten()


@contextlib.contextmanager
def before():
    """The computations as they were before the fixed-order reductions."""
    with mock.patch.object(fidelity, "fixed_mean", _torch_mean), \
            mock.patch.object(niqe, "_cov", lambda f: torch.cov(f.T)), \
            mock.patch.object(perceptual.LPIPSAlex, "distance", _lpips_conv_heads), \
            mock.patch.object(iqa.OneThread, "forward", lambda self, x: self.layer(x)):
        yield


def _triples(data_root: Path, sets: str, protocol):
    out = []
    for s in sets.split(","):
        for f in resolve(s, data_root).hr_files:
            hr = mod_crop(to_rgb(read_image(f))[None], protocol.effective_modcrop)
            lr = protocol_lr(hr, protocol)
            out.append((quantize(Bicubic(protocol.scale)(lr.float() / 255)), hr, lr))
    return out


def _lpips_net() -> perceptual.LPIPSAlex:
    """A seeded random AlexNet with the ``lpips`` package's heads (random non-negative heads without it)."""
    torch.manual_seed(0)
    try:
        import lpips

        heads = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu",
                           weights_only=True)
        return perceptual.LPIPSAlex(lin_state=heads)
    except ImportError:
        net = perceptual.LPIPSAlex()
        for lin in net.lins:
            torch.nn.init.uniform_(lin.weight, 0.0, 0.1)
        return net


def _metrics(protocol, pristine):
    lp = _lpips_net()
    ds = perceptual.DISTS()
    p = protocol
    out = {
        "psnr": lambda sr, hr, lr: fidelity.psnr(sr, hr, p.effective_crop_border, True, p.y_round, p.psnr_eps),
        "ssim": lambda sr, hr, lr: fidelity.ssim(sr, hr, p.effective_crop_border, True, p.y_round),
        "lr_psnr": lambda sr, hr, lr: fidelity.lr_psnr(sr, lr, p.y_round, p.psnr_eps),
        "niqe": lambda sr, hr, lr: niqe.niqe(sr, p.effective_niqe_crop, pristine=pristine),
        "lpips": lambda sr, hr, lr: perceptual.lpips(sr, hr, lp),
        "dists": lambda sr, hr, lr: perceptual.dists(sr, hr, ds),
    }
    try:
        from pyiqa.archs.musiq_arch import MUSIQ
    except ImportError:
        return out
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(MUSIQ(pretrained=False).state_dict(), Path(tmp) / "musiq.pth")
        musiq = iqa.build("musiq", str(Path(tmp) / "musiq.pth"))
    out["musiq"] = lambda sr, hr, lr: iqa.score("musiq", sr, net=musiq)
    return out


def _pass(fn, triples) -> tuple[float, list[float]]:
    t = time.perf_counter()
    values = [float(fn(*x)[0]) for x in triples]
    return time.perf_counter() - t, values


def _measure(fn, triples, threads, repeat):
    """{(way, threads): (best seconds, values)}."""
    out = {}
    for n in threads:
        torch.set_num_threads(n)
        for _ in range(repeat):
            for way in ("before", "after"):
                with before() if way == "before" else contextlib.nullcontext():
                    sec, values = _pass(fn, triples)
                best = out.get((way, n), (float("inf"), None))[0]
                out[(way, n)] = (min(best, sec), values)
    return out


def _differing(out, way, threads) -> int:
    first = out[(way, threads[0])][1]
    return sum(any(out[(way, n)][1][i] != v for n in threads[1:]) for i, v in enumerate(first))


def _networks(data_root: Path):
    """(name, module, input): seeded random networks on crops of a Set14 image, and single ops."""
    import torch.nn.functional as F
    import torchvision

    from aesop_bench.metrics.distribution import build_fid_inception
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
    from aesop_bench.models.archs.swinir_arch import SwinIR

    img = read_image(data_root / "Set14" / "HR" / "baboon.png")[None].float() / 255

    def crop(n):
        return img[..., 100:100 + n, 100:100 + n].contiguous()

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    yield "RRDBNet small (16 features, 2 blocks), LR 64", RRDBNet(num_feat=16, num_block=2, num_grow_ch=8), crop(64)
    yield "RRDBNet (64 features, 23 blocks), LR 32", RRDBNet(), crop(32)
    yield "SwinIR small (dim 36, 2x2 blocks), LR 48", SwinIR(img_size=48, depths=(2, 2), embed_dim=36,
                                                             num_heads=(2, 2)), crop(48)
    yield "SwinIR-M, LR 32", SwinIR(img_size=32), crop(32)
    yield "AE small (16 features, 2 blocks), 128", AutoEncoder(num_feat=16, num_block=2, num_grow_ch=8), crop(128)
    yield "AlexNet features (LPIPS), 256", torchvision.models.alexnet(weights=None).features, crop(256)
    yield "VGG16 features (DISTS), 256", torchvision.models.vgg16(weights=None).features[:30], crop(256)
    yield "FID Inception, 299", build_fid_inception(), F.interpolate(crop(299), size=(299, 299))
    head = torch.randn(1, 64, 1, 1, generator=g)
    yield "op: conv 1x1, 64 -> 1 channel (LPIPS head), 80x120", lambda x: F.conv2d(x, head), \
        torch.randn(1, 64, 80, 120, generator=g)
    wide = torch.randn(3, 180, 3, 3, generator=g)
    yield "op: conv 3x3, 180 -> 3 channels, 80x120", lambda x: F.conv2d(x, wide, padding=1), \
        torch.randn(1, 180, 80, 120, generator=g)
    embed = torch.randn(384, 16384, generator=g)
    yield "op: linear 16384 -> 384, 257 rows (MUSIQ embedding)", lambda x: F.linear(x, embed), \
        torch.randn(257, 16384, generator=g)
    yield "op: float64 (36 x 1000) @ (1000 x 36)", lambda x: x @ x.T, torch.randn(36, 1000, dtype=torch.float64,
                                                                                  generator=g)


@contextlib.contextmanager
def _deterministic_algorithms():
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


SETTINGS = {"oneDNN (default)": contextlib.nullcontext,
            "oneDNN off": lambda: torch.backends.mkldnn.flags(enabled=False),
            "deterministic algorithms": _deterministic_algorithms}


def _forward(net, x, threads: int, setting: str) -> tuple[torch.Tensor, float]:
    """The output, and the best of three timed forwards after one untimed."""
    torch.set_num_threads(threads)
    best = float("inf")
    with torch.no_grad(), SETTINGS[setting]():
        for k in range(4):
            t = time.perf_counter()
            y = net(x)
            best = best if k == 0 else min(best, time.perf_counter() - t)
    return (y if isinstance(y, torch.Tensor) else y[0]), best


def networks_table(data_root: Path, threads: list[int]) -> None:
    saved = torch.get_num_threads()
    print(f"{os.cpu_count()} cores, MKL_CBWR={os.environ.get('MKL_CBWR')}, threads {threads}")
    print("| network or op | setting | same bits | largest difference | relative to largest output | ms at 1 thread "
          "| ms at 2 threads |")
    print("|---|---|---|---:|---:|---:|---:|")
    try:
        for name, net, x in _networks(data_root):
            if isinstance(net, torch.nn.Module):
                net.eval()
            for setting in SETTINGS:
                runs = {n: _forward(net, x, n, setting) for n in sorted({*threads, 1, 2})}
                ref = runs[threads[0]][0]
                diff = max(float((runs[n][0] - ref).abs().max()) for n in threads)
                print(f"| {name} | {setting} | {'yes' if diff == 0 else 'no'} | {diff:.2g} | "
                      f"{diff / float(ref.abs().max()):.1g} | {runs[1][1] * 1e3:.1f} | {runs[2][1] * 1e3:.1f} |",
                      flush=True)
    finally:
        torch.set_num_threads(saved)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=os.environ.get("AESOP_BENCH_DATA", "../shared/data/benchmarks"))
    ap.add_argument("--shared", default=os.environ.get("AESOP_BENCH_SHARED", "../shared/data"))
    ap.add_argument("--sets", default="set14,bsd100")
    ap.add_argument("--net-sets", default="set14")
    ap.add_argument("--metrics", default="psnr,ssim,lr_psnr,niqe,lpips,dists,musiq")
    ap.add_argument("--threads", default=None, help="default: 1,2 (--networks: 1,2,4)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--networks", action="store_true")
    args = ap.parse_args()
    threads = [int(t) for t in (args.threads or ("1,2,4" if args.networks else "1,2")).split(",")]
    if args.networks:
        return networks_table(Path(args.data_root), threads)
    protocol = get_protocol("paper")
    pristine = niqe.load_pristine(Path(args.shared) / "weights" / "niqe" / "modelparameters.mat")
    sets = {"fidelity": _triples(Path(args.data_root), args.sets, protocol),
            "nets": _triples(Path(args.data_root), args.net_sets, protocol)}
    saved = torch.get_num_threads()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; best of {args.repeat}")
    print("| metric | images | threads | before s | after s | after / before | rows differing before | after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for name, fn in _metrics(protocol, pristine).items():
            if name not in args.metrics.split(","):
                continue
            triples = sets["nets" if name in ("lpips", "dists", "musiq") else "fidelity"]
            out = _measure(fn, triples, threads, args.repeat)
            diff = {w: _differing(out, w, threads) for w in ("before", "after")}
            for n in threads:
                b, a = out[("before", n)][0], out[("after", n)][0]
                print(f"| {name} | {len(triples)} | {n} | {b:.3f} | {a:.3f} | {a / b:.2f} | {diff['before']} | "
                      f"{diff['after']} |", flush=True)
    finally:
        torch.set_num_threads(saved)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
