"""The GPU check: what only a CUDA machine can show, in one run that prints a table and exits non-zero on a
failure.

    python benchmarks/gpu_check.py [--train-data ../shared/data/train] [--data ../shared/data/benchmarks]
    python benchmarks/gpu_check.py --device cpu --quick   # the same code paths on the CPU, in seconds (CI)

Checks (each line says what it compares):

* ``nccl-devices``: under ``torchrun`` each rank's current CUDA device is its LOCAL_RANK and the process group
  is bound to it (``torch.cuda.set_device`` + ``device_id``);
* ``train-ddp-val``: ``torchrun --nproc_per_node=<all GPUs>`` trains a smoke config with validation every 2 steps
  (rank 0 validates alone, the others wait), killed after its first checkpoint and resumed;
* ``cuda-rng``: a CUDA generator state saved and restored (as a checkpoint holds one per rank) gives the draws
  of an uninterrupted run (SwinIR's DropPath masks after a resume), where re-seeding replayed step 0's;
* ``bf16-tiles``: tiled bf16 inference accumulates overlapping tiles in float32 (output dtype float32, equal to
  the untiled bf16 output within bf16's resolution);
* ``pooled-bn-bf16``: the pooled BatchNorm normalises in float32 under bf16 autocast (against float32 within
  bf16's resolution);
* ``niqe-device``: NIQE of a CUDA tensor equals NIQE of the same image on the CPU;
* ``metrics-device``: every per-image metric on CUDA against the CPU on three Set14 images (stand-in weights
  for the networks; the largest differences are printed);
* ``evaluator``: ``aesop_bench.evaluate`` of an RRDB on Set14 with every metric at batch 1 and at the default
  batch (time, peak memory; the values must agree);
* ``train-speed``: AE pretraining, AESOP and LDL training on RRDB (the paper's configs), fp32 and bf16, 100
  steps each: seconds per step and peak memory;
* ``train-real``: real-world AESOP training (``real_aesop_rrdb``: degradation on the GPU, pair queue, U-Net
  discriminator) at the paper's 12 images per GPU, fp32 and bf16: seconds per step and peak memory;
* ``train-spsr``: SPSR's own recipe (``spsr``: two discriminators, gradient branch, means over the batch) at the
  paper's batch of 30 in one process (two micro-batches of 15, the authors' two GPUs), fp32 and bf16: seconds per
  step and peak memory (quick CPU mode: one step of ``smoke_spsr``, fp32);
* ``speed``: seconds per x4 SR of a 256x192 LR by RRDB and SwinIR, fp32 and bf16;
* ``projection``: ``eval --sets all --metrics all`` for one RRDB and one SwinIR model (one pass over the paper's
  seven sets, at their typical sizes), from the seconds per HR megapixel measured above.

On a GPU (not ``--quick``) the measured seconds per HR megapixel (networks in fp32, every per-image metric) are
written to ``$AESOP_BENCH_HOME/gpu_costs.json`` (one record per GPU and torch version), where ``reproduce --dry-run
--device cuda`` reads the latest in place of its declared costs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


MEASURED: dict[str, float] = {}  # seconds per HR megapixel on the device: "model:ARCH" and metric names


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_devices(n: int, device: str) -> tuple[bool, str]:
    cuda = device.startswith("cuda")
    code = ("import os, torch, torch.distributed as dist; from aesop_bench.distributed import init; "
            f"r, w, l = init({device!r}); ok = {'torch.cuda.current_device() == l' if cuda else 'True'}; "
            f"t = torch.ones(1, device={'cuda' if cuda else 'cpu'!r}) * r; dist.all_reduce(t); dist.barrier(); "
            "print('RANKOK' if ok and int(t.item()) == w * (w - 1) // 2 else 'RANKBAD', r, l); "
            "dist.destroy_process_group()")
    script = Path(tempfile.mkdtemp(prefix="gpu-check-")) / "ranks.py"
    script.write_text(code.replace("; ", "\n"))
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port",
                        str(_port()), str(script)], capture_output=True, text=True, timeout=300, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    good = p.returncode == 0 and p.stdout.count("RANKOK") == n
    return good, f"{p.stdout.count('RANKOK')}/{n} ranks on their own device" + ("" if good else p.stderr[-500:])


def check_train(n: int, train_data: Path, data: Path, device: str) -> tuple[bool, str]:
    import torch

    out = Path(tempfile.mkdtemp(prefix="gpu-check-train-"))
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_port"]
    # no VGG19 (the machine may have no internet): L1 and the GAN with the U-Net discriminator
    opts = ["steps=4", "checkpoint_every=2", "log_every=1", "val.every=2", f"val.data_root={data}",
            "data.batch=" + str(4 * n), "losses=[{type: l1, weight: 1.0}, {type: gan, weight: 0.005}]"]
    args = ["-m", "aesop_bench", "train", "sr", "--config", "smoke_ldl", "--data-root", str(train_data), "--device",
            device, "--quiet", "--out", str(out / "run")] + [a for o in opts for a in ("--opt", o)]
    if not device.startswith("cuda"):
        opts += ["data.hr_dirs=[BSD200]"]  # 1 process on the CPU: patches from the larger images only
        args += ["--opt", opts[-1]]
    t = time.perf_counter()
    first = subprocess.run(base + [str(_port())] + args + ["--opt", "steps=2"], capture_output=True, text=True,
                           timeout=900, cwd=REPO)
    if first.returncode:
        return False, first.stderr[-800:]
    state = torch.load(out / "run" / "ckpt" / "step_0000002" / "state.pt", weights_only=True)
    ranks = state.get("rng_ranks", [])
    cuda_saved = len(ranks) == n and all(("cuda" in r) == device.startswith("cuda") for r in ranks)
    second = subprocess.run(base + [str(_port())] + args + ["--resume", str(out / "run")], capture_output=True,
                            text=True, timeout=900, cwd=REPO)
    import csv

    val_file = out / "run" / "val.csv"
    steps = sorted({r["step"] for r in csv.DictReader(open(val_file))}) if val_file.is_file() else []
    good = second.returncode == 0 and steps == ["2", "4"] and cuda_saved
    return good, (f"{n} process(es) on {device}, {time.perf_counter() - t:.0f} s; RNG states saved for {len(ranks)} "
                  f"rank(s); validations at steps {', '.join(steps)}" + ("" if good else second.stderr[-800:]))


def check_cuda_rng(device: str) -> tuple[bool, str]:
    import torch

    from aesop_bench.train import checkpoint as ck

    dev = torch.device(device if device != "cuda" else "cuda:0")
    ck.seed_all(3)
    torch.rand(5, device=dev)
    saved = ck.rng_state(dev)
    want = torch.rand(5, device=dev)
    ck.seed_all(0)  # what a resume did before: CUDA re-seeded, step-0 masks replayed
    ck.set_rng_state(saved, dev)
    got = torch.rand(5, device=dev)
    return bool(torch.equal(got, want)), f"{dev.type} draws after a restore equal the uninterrupted ones"


def check_bf16_tiles(device: str) -> tuple[bool, str]:
    import torch

    from aesop_bench.models.inference import NetModel
    from aesop_bench.models.options import RunOptions
    from aesop_bench.models.zoo import ARCHS

    torch.manual_seed(0)
    net = ARCHS["rrdb"](4, num_feat=32, num_block=2, num_grow_ch=16)
    x = torch.rand(1, 3, 96, 128)
    whole = NetModel("rrdb", net, 4, "a", RunOptions(device=device, precision="bf16"))(x)
    tiled = NetModel("rrdb", net, 4, "b", RunOptions(device=device, precision="bf16", tile=48, tile_overlap=16))(x)
    err = float((whole.float() - tiled.float()).abs().max())
    return tiled.dtype == torch.float32 and err < 2 ** -6, f"tiled output {tiled.dtype}, max |tiled - whole| {err:.2e}"


def check_pooled_bn(device: str) -> tuple[bool, str]:
    import torch

    from aesop_bench.models.archs.discriminator_arch import PooledBatchNorm2d

    torch.manual_seed(0)
    kind = "cuda" if device.startswith("cuda") else "cpu"
    bn = PooledBatchNorm2d(8).to(device).train()
    x = (torch.randn(4, 8, 16, 16, device=device) * 3 + 100)  # a large mean: bf16 rounding of it would show
    import torch.distributed as dist

    if not dist.is_initialized():  # a group of one: the pooled path (statistics through the all-reduce)
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_port()))
        kw = {"device_id": torch.device(device if device != "cuda" else "cuda:0")} if kind == "cuda" else {}
        dist.init_process_group("nccl" if kind == "cuda" else "gloo", rank=0, world_size=1, **kw)
    saved = dist.get_world_size
    dist.get_world_size = lambda *a: 2  # take the pooled branch with one process
    try:
        xb = x.bfloat16()
        with torch.no_grad():
            ref = bn(xb.float())  # the same (bf16) input normalised in float32
            with torch.autocast(kind, dtype=torch.bfloat16):
                out = bn(xb)
    finally:
        dist.get_world_size = saved
    err = float((out.float() - ref).abs().max())
    return err < 0.02, f"max |bf16 - fp32| {err:.3g} after normalisation (a bf16-rounded mean: ~0.1)"


def check_niqe(data: Path, device: str) -> tuple[bool, str]:

    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.niqe import niqe
    from aesop_bench.metrics.niqe import load_pristine

    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    mat = shared / "weights" / "niqe" / "modelparameters.mat"  # the official NIQE model file
    pristine = load_pristine(mat)
    img = read_image(data / "Set5" / "HR" / "baby.png")[None]
    cpu = float(niqe(img, pristine=pristine)[0])
    gpu = float(niqe(img.to(device), pristine=tuple(p.to(device) for p in pristine))[0])
    return abs(cpu - gpu) < 1e-6, f"CPU {cpu:.6f}, {device} {gpu:.6f}"


# largest |device - CPU| accepted per metric: float64 fidelity metrics exactly, networks in float32
METRIC_TOLERANCE = {"psnr": 1e-6, "ssim": 1e-8, "lr_psnr": 1e-6, "niqe": 1e-5}
NETWORK_TOLERANCE = 1e-3


def check_metrics(data: Path, device: str, quick: bool) -> tuple[bool, str]:
    """Every per-image metric on ``device`` against the same metric on the CPU, on three Set14 images (crops in
    quick mode), with deterministic stand-in weights for the networks (the machine may have no internet; both
    devices use the same weights)."""

    from aesop_bench.data.imresize import imresize
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.metrics.registry import METRICS
    from benchmarks.standins import make_standins

    os.environ["AESOP_BENCH_HOME"] = tempfile.mkdtemp(prefix="gpu-check-home-")  # stand-ins apart from real files
    names = [m for m, spec in METRICS.items() if spec.kind != "distribution"]
    if quick:  # the large IQA networks take minutes on a CPU
        names = [m for m in names if m not in ("maniqa", "musiq", "clipiqa")]
    needs = tuple(sorted({n for m in names for n in METRICS[m].weights}))
    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    make_standins(Path(os.environ["AESOP_BENCH_HOME"]) / "standins",
                  shared / "weights" / "niqe" / "modelparameters.mat", which=needs)
    worst, failed = [], []
    stems = ("baboon",) if quick else ("baboon", "comic", "zebra")
    for stem in stems:
        hr = read_image(data / "Set14" / "HR" / f"{stem}.png")[None]
        h, w = hr.shape[-2:]
        hr = hr[..., : (96 if quick else h) // 12 * 12, : (192 if quick else w) // 12 * 12]  # NIQE: 2 blocks
        lr = imresize(hr[0], 0.25)[None]
        sr = imresize(lr[0], 4.0)[None]
        mpix = hr.shape[-1] * hr.shape[-2] / 1e6
        for m in names:
            got = [float(Metric(m, "paper", "cpu")(sr, hr, lr)[0])]
            metric = Metric(m, "paper", device)
            metric(sr, hr, lr)  # once to load the weights and warm up
            _sync(device)
            t = time.perf_counter()
            got.append(float(metric(sr, hr, lr)[0]))
            _sync(device)
            MEASURED[m] = max(MEASURED.get(m, 0.0), (time.perf_counter() - t) / mpix)
            diff = abs(got[1] - got[0])
            tol = METRIC_TOLERANCE.get(m, NETWORK_TOLERANCE) * max(1.0, abs(got[0]))
            worst.append((diff, m))
            if not diff <= tol:
                failed.append(f"{m} on {stem}: CPU {got[0]:.6g}, {device} {got[1]:.6g}")
    per_metric: dict[str, float] = {}
    for d, m in worst:
        per_metric[m] = max(per_metric.get(m, 0.0), d)
    top = sorted(((d, m) for m, d in per_metric.items()), reverse=True)[:3]
    return not failed, (f"{len(names)} metrics x {len(stems)} Set14 image(s); largest |{device} - CPU|: " +
                        ", ".join(f"{m} {d:.2e}" for d, m in top) + ("; " + "; ".join(failed) if failed else ""))


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def speed(device: str, quick: bool) -> tuple[bool, str]:
    import torch

    from aesop_bench.models.inference import NetModel
    from aesop_bench.models.options import RunOptions
    from aesop_bench.models.zoo import ARCHS

    x = torch.rand(1, 3, *((16, 16) if quick else (192, 256)))
    cuda = device.startswith("cuda")
    out = []
    for arch in ("rrdb", "swinir"):
        for prec in ("fp32", "bf16"):
            m = NetModel(arch, ARCHS[arch](4), 4, arch, RunOptions(device=device, precision=prec))
            m(x)
            if cuda:
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            for _ in range(1 if quick else 3):
                m(x)
            if cuda:
                torch.cuda.synchronize(device)
            sec = (time.perf_counter() - t) / (1 if quick else 3)
            out.append(f"{arch} {prec} {sec:.3f} s")
            if prec == "fp32":
                MEASURED[f"model:{arch}"] = sec / (x.shape[-1] * x.shape[-2] * 16 / 1e6)
    return True, f"x4 of a {x.shape[-1]}x{x.shape[-2]} LR: " + "; ".join(out)


def check_evaluator(data: Path, device: str, quick: bool) -> tuple[bool, str]:
    """``aesop_bench.evaluate`` of an RRDB (deterministic random weights) on Set14 with every metric (stand-in
    weights for the metric networks), at batch 1 and at the device's default batch: time, peak GPU memory, and
    the same values both ways."""
    import torch

    import aesop_bench as ab
    from aesop_bench.metrics.registry import METRICS
    from aesop_bench.models.zoo import ARCHS
    from benchmarks.standins import make_standins

    metrics = ["psnr", "ssim", "lpips", "niqe"] if quick else list(METRICS)
    needs = tuple(sorted({n for m in metrics for n in METRICS[m].weights}))
    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    os.environ["AESOP_BENCH_HOME"] = tempfile.mkdtemp(prefix="gpu-check-eval-")
    make_standins(Path(os.environ["AESOP_BENCH_HOME"]) / "standins",
                  shared / "weights" / "niqe" / "modelparameters.mat", which=needs)
    torch.manual_seed(0)
    net = ARCHS["rrdb"](4, **({"num_feat": 16, "num_block": 1, "num_grow_ch": 8} if quick else {}))
    net = net.to(device).eval()
    sets = "set5" if quick else "set14"
    got, parts = [], []
    for batch in (1, None):
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        res = ab.evaluate(net, sets=sets, metrics=metrics, device=device, data_root=data, download=False,
                          batch=batch)
        _sync(device)
        sec = time.perf_counter() - t
        peak = f", peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB" if device.startswith("cuda") else ""
        parts.append(f"batch {batch or 'default'} {sec:.1f} s{peak}")
        got.append(res.per_image.set_index(["image", "metric"])["value"].astype(float))
    worst = float((got[0] - got[1]).abs().max())
    scale = float(got[0].abs().max())
    good = worst <= NETWORK_TOLERANCE * max(1.0, scale) and len(got[0]) == len(got[1])
    return good, (f"RRDB on {sets}, {len(metrics)} metrics: " + "; ".join(parts) +
                  f"; largest |batch 1 - default| {worst:.2e}")


def check_train_speed(train_data: Path, device: str, quick: bool, steps: int) -> tuple[bool, str]:
    """AE pretraining, AESOP and LDL training (the paper's RRDB configs; the smoke configs in quick mode), fp32
    and bf16: seconds per step (the mean after the first quarter of the steps) and peak GPU memory. Patches come
    from BSD200 with their LR made on the fly; VGG19 and the AE are stand-ins, and the generator starts from
    random weights (the machine may have no internet; none of it changes the time of a step)."""
    import torch

    from aesop_bench.train.config import load_config
    from aesop_bench.train.trainer import Trainer
    from benchmarks.standins import make_standins

    home = Path(tempfile.mkdtemp(prefix="gpu-check-train-speed-"))
    os.environ["AESOP_BENCH_HOME"] = str(home)
    shared = Path(os.environ.get("AESOP_BENCH_SHARED") or REPO.parent / "shared" / "data")
    make_standins(home / "standins", shared / "weights" / "niqe" / "modelparameters.mat", which=("vgg19", "aesop_ae"))
    configs = ("smoke_ae", "smoke_aesop", "smoke_ldl") if quick else ("ae_rrdb", "aesop_rrdb", "ldl_rrdb")
    n = 1 if quick else steps
    cuda = device.startswith("cuda")
    parts = []
    # bf16 training on a CPU takes tens of seconds a step (30 s for smoke_aesop on 2 cores, with AMX): the quick CPU
    # run trains in fp32 only; bf16's code paths are checked by bf16-tiles and pooled-bn-bf16
    precisions = (False,) if quick and not cuda else (False, True)
    for name in configs:
        for bf16 in precisions:
            over = [f"steps={n}", f"checkpoint_every={n}", "val.every=0", f"log_every={max(1, n // 4)}",
                    "data.hr_dirs=[BSD200]", "data.lr_dirs=[]", "data.make_lr=true", "generator.init=null",
                    f"amp_bf16={'true' if bf16 else 'false'}"]
            cfg = load_config(name, over)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            trainer = Trainer(cfg, home / f"{name}-{'bf16' if bf16 else 'fp32'}", train_data, device,
                              log=lambda m: None)
            rows = [r["sec_per_step"] for r in trainer.fit(progress=False) if "sec_per_step" in r]
            later = rows[len(rows) // 4:] or rows
            peak = f", {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if cuda else ""
            parts.append(f"{name} {'bf16' if bf16 else 'fp32'} {sum(later) / len(later):.3f} s/step{peak}")
            del trainer
            if cuda:
                torch.cuda.empty_cache()
    return True, f"{n} steps each: " + "; ".join(parts)


def _time_training(name: str, overrides: list[str], home: Path, train_data: Path, device: str, quick: bool):
    """Train config ``name`` with ``overrides`` (plus the precision) in fp32 and bf16 (the quick CPU mode: fp32
    alone): its loaded config and, per precision, seconds per step (the mean after the first quarter of the steps)
    and the peak GPU memory."""
    import torch

    from aesop_bench.train.config import load_config
    from aesop_bench.train.trainer import Trainer

    cuda = device.startswith("cuda")
    parts = []
    for bf16 in (False,) if quick and not cuda else (False, True):
        cfg = load_config(name, [*overrides, f"amp_bf16={'true' if bf16 else 'false'}"])
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        trainer = Trainer(cfg, home / f"{name}-{'bf16' if bf16 else 'fp32'}", train_data, device, log=lambda m: None)
        rows = [r["sec_per_step"] for r in trainer.fit(progress=False) if "sec_per_step" in r]
        later = rows[len(rows) // 4:] or rows
        peak = f", {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if cuda else ""
        parts.append(f"{'bf16' if bf16 else 'fp32'} {sum(later) / len(later):.3f} s/step{peak}")
        del trainer
        if cuda:
            torch.cuda.empty_cache()
    return cfg, parts


def check_train_real(train_data: Path, device: str, quick: bool, steps: int) -> tuple[bool, str]:
    """Real-world AESOP training (``real_aesop_rrdb``; ``smoke_real_aesop`` in quick mode) as one GPU of the
    authors' four runs it: 12 images of 256 px (one micro-batch), each step degrading 400 px HR crops of BSD200 on
    the device and passing the pairs through the queue of 144, fp32 and bf16 (quick CPU mode: one step, fp32):
    seconds per step (the mean after the first quarter of the steps) and peak GPU memory. VGG19 and the AE are
    stand-ins and the generator starts from random weights (none of it changes the time of a step)."""
    from benchmarks.standins import make_standins

    home = Path(tempfile.mkdtemp(prefix="gpu-check-train-real-"))
    os.environ["AESOP_BENCH_HOME"] = str(home)
    make_standins(home / "standins", which=("vgg19", "aesop_ae"))
    name, n = ("smoke_real_aesop", 1) if quick else ("real_aesop_rrdb", steps)
    per_gpu = [] if quick else ["data.batch=12", "data.micro_batch=12"]  # one GPU's share of the global 48
    over = [f"steps={n}", f"checkpoint_every={n}", "val.every=0", f"log_every={max(1, n // 4)}",
            "data.hr_dirs=[BSD200]", f"data.workers={0 if quick else 4}", "generator.init=null", "ae=aesop_ae",
            *per_gpu]
    cfg, parts = _time_training(name, over, home, train_data, device, quick)
    return True, f"{name}, {cfg.data.batch} images of {cfg.data.patch} px, {n} steps: " + "; ".join(parts)


def check_train_spsr(train_data: Path, device: str, quick: bool, steps: int) -> tuple[bool, str]:
    """SPSR as its authors trained it (``spsr``; ``smoke_spsr`` in quick mode) at their batch of 30 patches of 128 px
    in one process (two micro-batches of 15: BatchNorm per 15, the relativistic means over 30), fp32 and bf16 (quick
    CPU mode: one step, fp32): seconds per step (the mean after the first quarter of the steps) and peak GPU
    memory. Patches come from BSD200 with their LR made on the fly; VGG19 is a stand-in and the generator starts
    from its Kaiming initialisation without the RRDB weights (none of it changes the time of a step)."""
    from benchmarks.standins import make_standins

    home = Path(tempfile.mkdtemp(prefix="gpu-check-train-spsr-"))
    os.environ["AESOP_BENCH_HOME"] = str(home)
    make_standins(home / "standins", which=("vgg19",))
    name, n = ("smoke_spsr", 1) if quick else ("spsr", steps)
    over = [f"steps={n}", f"checkpoint_every={n}", "val.every=0", f"log_every={max(1, n // 4)}",
            "data.hr_dirs=[BSD200]", "data.lr_dirs=[]", "data.make_lr=true", f"data.workers={0 if quick else 4}",
            "generator.init=null"]
    cfg, parts = _time_training(name, over, home, train_data, device, quick)
    return True, (f"{name}, {cfg.data.batch} images of {cfg.data.patch} px in micro-batches of "
                  f"{cfg.data.micro_batch}, {n} steps: " + "; ".join(parts))


def projection() -> tuple[bool, str]:
    """``--sets all --metrics all`` for one model of each backbone: the measured seconds per HR megapixel (the
    declared ones where a figure was not measured) times the paper's seven sets at their typical sizes."""
    from aesop_bench.data.sets import PAPER_SETS, SETS
    from aesop_bench.metrics.registry import METRICS
    from aesop_bench.report.reproduce import TYPICAL_MPIX, gpu_costs

    costs = {**gpu_costs()[0], **MEASURED}
    mpix = sum(SETS[s].n_images * TYPICAL_MPIX[s] for s in PAPER_SETS)
    metrics = sum(costs.get(m, 0.1) for m in METRICS)
    parts = [f"{arch} {mpix * (costs[f'model:{arch}'] + metrics) / 60:.1f} min" for arch in ("rrdb", "swinir")]
    unmeasured = sorted(k for k in [*METRICS, "model:rrdb", "model:swinir"] if k not in MEASURED)
    return True, (f"{mpix:.0f} HR megapixels, every metric: " + ", ".join(parts) +
                  (f" (declared costs for {', '.join(unmeasured)})" if unmeasured else ""))


def write_costs(path: Path, device_name: str) -> None:
    import datetime

    import torch

    from aesop_bench.report.reproduce import add_cost_record

    add_cost_record({"device": device_name, "torch": torch.__version__, "date": datetime.date.today().isoformat(),
                     "seconds_per_mpix": MEASURED}, path)


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))  # the first sentence
    ap.add_argument("--train-data", default=str(REPO.parent / "shared" / "data" / "train"),
                    help="training images (T91, BSD200) for the training checks")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "benchmarks"),
                    help="benchmark sets (Set5, Set14, BSD100) for the evaluation checks")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu to run the same code paths without a GPU")
    ap.add_argument("--quick", action="store_true", help="tiny inputs and one process: seconds (for CI on the CPU)")
    ap.add_argument("--skip", default="", help="comma-separated checks to leave out")
    ap.add_argument("--train-steps", type=int, default=100,
                    help="train-speed, train-real, train-spsr: steps per configuration")
    args = ap.parse_args()
    dev = args.device
    if dev.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this script checks what only a GPU can show (--device cpu --quick runs its code "
              "paths on the CPU)")
        return 2
    n = torch.cuda.device_count() if dev.startswith("cuda") else (1 if args.quick else 2)
    device_name = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "CPU process"
    print(f"{n} x {device_name}, torch {torch.__version__}")
    from aesop_bench.paths import home
    from aesop_bench.report.reproduce import GPU_COSTS_FILE

    costs_file = home() / GPU_COSTS_FILE  # before a check points $AESOP_BENCH_HOME at its stand-ins
    checks = [("devices", lambda: check_devices(max(n, 2) if not dev.startswith("cuda") else n, dev)),
              ("train-ddp-val", lambda: check_train(n, Path(args.train_data), Path(args.data), dev)),
              ("rng-restore", lambda: check_cuda_rng(dev)), ("bf16-tiles", lambda: check_bf16_tiles(dev)),
              ("pooled-bn-bf16", lambda: check_pooled_bn(dev)), ("niqe-device", lambda: check_niqe(Path(args.data), dev)),
              ("metrics-device", lambda: check_metrics(Path(args.data), dev, args.quick)),
              ("evaluator", lambda: check_evaluator(Path(args.data), dev, args.quick)),
              ("train-speed", lambda: check_train_speed(Path(args.train_data), dev, args.quick, args.train_steps)),
              ("train-real", lambda: check_train_real(Path(args.train_data), dev, args.quick, args.train_steps)),
              ("train-spsr", lambda: check_train_spsr(Path(args.train_data), dev, args.quick, args.train_steps)),
              ("speed", lambda: speed(dev, args.quick)), ("projection", projection)]
    skip = {c.strip() for c in args.skip.split(",") if c.strip()}
    unknown = skip - {name for name, _ in checks}
    if unknown:
        print(f"--skip: unknown checks {', '.join(sorted(unknown))}; they are {', '.join(n for n, _ in checks)}")
        return 2
    failed = 0
    for name, fn in [(n, f) for n, f in checks if n not in skip]:
        try:
            ok, what = fn()
        except Exception as exc:  # noqa: BLE001 - a check that crashes is a failed check, the others still run
            ok, what = False, f"{type(exc).__name__}: {exc}"
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name:15s} {what}", flush=True)
    if dev.startswith("cuda") and not args.quick and MEASURED:
        write_costs(costs_file, device_name)
        print(f"measured costs written to {costs_file} (reproduce --dry-run --device cuda reads them)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
