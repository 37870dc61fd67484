"""Training on the real images of ../shared/data/train: configs, data, smoke AE + AESOP runs that the
evaluator loads, exact resume, non-finite losses, and two-process DDP (gloo) against one process."""

from __future__ import annotations

import csv
import random
import re
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.train.config import DataConfig, load_config
from aesop_bench.train.data import PairedPatches, StepSampler, extract_subimages, training_images
from aesop_bench.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "aesop_bench" / "configs"


@pytest.fixture()
def train_root(shared_data) -> Path:
    root = shared_data / "train"
    assert (root / "T91").is_dir() and (root / "BSD200").is_dir()
    return root


@pytest.fixture()
def vgg19_standin(tmp_path):
    from benchmarks.standins import make_standins

    make_standins(tmp_path / "standins", which=("vgg19",))


def test_shipped_configs_load_and_differ_as_the_paper_says():
    cfgs = {p.stem: load_config(p) for p in CONFIGS.glob("*.yaml")}
    assert {"ae_rrdb", "ldl_rrdb", "aesop_rrdb", "aesop_rrdb256", "ldl_swinir", "aesop_swinir", "smoke_ae",
            "smoke_aesop", "smoke_ldl"} <= set(cfgs)
    for ldl, aesop in (("ldl_rrdb", "aesop_rrdb"), ("ldl_swinir", "aesop_swinir"), ("smoke_ldl", "smoke_aesop")):
        a, b = yaml.safe_load((CONFIGS / f"{ldl}.yaml").read_text()), yaml.safe_load((CONFIGS / f"{aesop}.yaml").read_text())
        diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
        assert diff <= {"name", "losses", "ae"}, diff
        la, lb = a["losses"], b["losses"]
        assert la[1:] == lb[1:] and la[0] == {"type": "l1", "weight": 0.01} and lb[0] == {"type": "aesop", "weight": 1.0}
    c = cfgs["aesop_rrdb"]
    assert (c.optim_g.lr, c.optim_g.betas, c.ema, c.steps, c.data.patch) == (1e-4, [0.9, 0.99], 0.999, 300000, 128)
    assert cfgs["aesop_rrdb256"].data.patch == 256 and cfgs["aesop_rrdb256"].discriminator.arch == "vgg256"


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: sr\ndata: {batchsize: 4}\n")
    with pytest.raises(AesopBenchError, match=r"config data: unknown key\(s\) batchsize"):
        load_config(bad)
    bad.write_text("name: x\nsteps: many\n")
    with pytest.raises(AesopBenchError, match=r"config steps: 'many' is not a valid int"):
        load_config(bad)
    cfg = load_config(CONFIGS / "smoke_ae.yaml", ["data.batch=8", "optim_g.lr=2e-4", "val.metrics=[psnr]"])
    assert cfg.data.batch == 8 and cfg.optim_g.lr == 2e-4 and cfg.val.metrics == ["psnr"]
    with pytest.raises(AesopBenchError, match="unknown loss"):
        load_config(CONFIGS / "smoke_ae.yaml", ["losses=[{type: l3}]"])


def test_patches_are_reproducible_and_aligned(train_root):
    files = training_images([train_root / "T91"])[:5]
    ds = PairedPatches(files, DataConfig(patch=48, scale=4, modcrop=12, make_lr=True), seed=3)
    lr, hr = ds[(2, 1)]
    lr2, hr2 = ds[(2, 1)]
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2) and lr.shape == (3, 12, 12) and hr.shape == (3, 48, 48)
    from aesop_bench.data.imresize import imresize

    # with flips off, the LR patch is the MATLAB-bicubic LR of the whole image, cropped where the HR patch is
    ds_plain = PairedPatches(files, DataConfig(patch=48, make_lr=True, flip=False, rot=False), seed=3)
    lr, hr = ds_plain[(0, 0)]
    full_lr, full_hr = ds_plain._load_pair(0)
    assert full_lr.shape[-1] * 4 == full_hr.shape[-1]
    whole = imresize(full_hr.double() / 255, 0.25)
    assert torch.allclose(full_lr.double() / 255, whole.clamp(0, 1), atol=0.5 / 255 + 1e-9)
    # the stream resumed at step k equals the uninterrupted one from step k
    a = iter(StepSampler(len(files), 4, 0))
    first = [next(a) for _ in range(4 * 5)]
    b = iter(StepSampler(len(files), 4, 0, start_step=3))
    assert [next(b) for _ in range(8)] == first[12:20]
    # two ranks together see the global batch
    r0, r1 = iter(StepSampler(len(files), 4, 0, rank=0, world=2)), iter(StepSampler(len(files), 4, 0, rank=1, world=2))
    assert [next(r0), next(r0), next(r1), next(r1)] == first[:4]


def test_extract_subimages(tmp_path, train_root):
    src = tmp_path / "src"
    src.mkdir()
    from PIL import Image

    Image.new("RGB", (1000, 700)).save(src / "a.png")
    n = extract_subimages(src, tmp_path / "dst", crop=480, step=240)
    # threshold 0 (BasicSR's thresh_size in the paper's data): x 0, 240, 480 and 520 flush (40 px would be left);
    # y 0 and 220 flush
    assert n == len(list((tmp_path / "dst").iterdir())) == 4 * 2


def test_prepare_train_cuts_the_whole_image_lr(tmp_path, train_root, capsys):
    """`data prepare-train`: HR cropped to a multiple of 12, LR made from the whole image, then aligned
    sub-images; every LR sub-image is exactly the crop of the whole-image MATLAB-bicubic LR."""
    import shutil

    from aesop_bench.data.imresize import imresize
    from aesop_bench.imageio import read_image

    src = tmp_path / "src"
    src.mkdir()
    files = sorted((train_root / "BSD200").glob("*"))[:2]
    for f in files:
        shutil.copy(f, src)
    dst = tmp_path / "prepared"
    assert main(["data", "prepare-train", str(src), "--dst", str(dst), "--crop", "96", "--step", "48"]) == 0
    for f in files:
        hr = read_image(f)
        h, w = hr.shape[-2:]
        hr = hr[:, : h - h % 12, : w - w % 12]
        whole = torch.floor(imresize(hr.double() / 255, 0.25).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        ys = list(range(0, hr.shape[-2] - 96 + 1, 48))
        ys += [hr.shape[-2] - 96] if hr.shape[-2] - (ys[-1] + 96) > 0 else []
        xs = list(range(0, hr.shape[-1] - 96 + 1, 48))
        xs += [hr.shape[-1] - 96] if hr.shape[-1] - (xs[-1] + 96) > 0 else []
        k = 0
        for y in ys:
            for x in xs:
                k += 1
                name = f"{f.stem}_s{k:03d}.png"
                assert torch.equal(read_image(dst / "HR" / name), hr[:, y:y + 96, x:x + 96])
                assert torch.equal(read_image(dst / "LR_bicubic" / "X4" / name),
                                   whole[:, y // 4:y // 4 + 24, x // 4:x // 4 + 24]), name
        assert not (dst / "HR" / f"{f.stem}_s{k + 1:03d}.png").exists()
    # LR made per sub-image (the on-the-fly option) differs near the sub-image borders
    sub = read_image(dst / "HR" / f"{files[0].stem}_s002.png")
    per_sub = torch.floor(imresize(sub.double() / 255, 0.25).clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    assert not torch.equal(per_sub, read_image(dst / "LR_bicubic" / "X4" / f"{files[0].stem}_s002.png"))
    # shipped paper configs read prepared HR/LR folders; a missing LR is an error naming the command
    cfg = load_config(CONFIGS / "aesop_rrdb.yaml")
    assert cfg.data.lr_dirs and not cfg.data.make_lr
    ds = PairedPatches(training_images([dst / "HR"]), DataConfig(patch=48, make_lr=False),
                       lr_dirs=[tmp_path / "nowhere"])
    with pytest.raises(AesopBenchError, match="aesop-bench data prepare-train"):
        ds[(0, 0)]


def _trainer(cfg_name, out, root, overrides=(), resume=False, log=lambda m: None):
    cfg = load_config(CONFIGS / f"{cfg_name}.yaml", list(overrides))
    return Trainer(cfg, out, root, "cpu", resume=resume, log=log)


def test_loss_decreases_on_a_fixed_batch(tmp_path, train_root):
    tr = _trainer("smoke_ae", tmp_path / "ae", train_root)
    lr, hr = next(tr._batches())
    losses = [tr.train_step(lr, hr)["total_g"] for _ in range(25)]
    assert losses[-1] < 0.7 * losses[0] and losses[-1] < min(losses[:5])


def test_smoke_ae_then_aesop_training_and_eval(tmp_path, train_root, vgg19_standin, bench_root, capsys):
    assert main(["train", "ae", "--config", str(CONFIGS / "smoke_ae.yaml"), "--data-root", str(train_root),
                 "--out", str(tmp_path / "ae"), "--quiet"]) == 0
    log = (tmp_path / "ae" / "train_log.csv").read_text().splitlines()
    assert float(log[-1].split(",")[-1]) < float(log[1].split(",")[-1])  # total loss went down
    ae = tmp_path / "ae" / "ae_ema.safetensors"
    assert main(["train", "sr", "--config", str(CONFIGS / "smoke_aesop.yaml"), "--data-root", str(train_root),
                 "--out", str(tmp_path / "sr"), "--ae", str(ae), "--opt", "steps=20", "--opt", "val.every=10",
                 "--opt", f"val.data_root={bench_root}", "--quiet"]) == 0
    assert "validation at step 20 on set5: psnr" in capsys.readouterr().err
    run = tmp_path / "sr"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000010", "step_0000020"]
    assert {p.name for p in (run / "ckpt" / "step_0000020").iterdir()} == {
        "net_g.safetensors", "net_g_ema.safetensors", "net_d.safetensors", "state.pt", "done.json"}
    val = {(r["step"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "val.csv"))}
    assert ("10", "psnr") in val
    capsys.readouterr()
    assert main(["eval", "--model", str(run / "ema.safetensors"), "--sets", "set5", "--metrics", "psnr,ssim,lr_psnr",
                 "--data-root", str(bench_root), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    for m in ("psnr", "ssim", "lr_psnr"):  # validation is the evaluator: the same numbers as eval
        assert val[("20", m)] == pytest.approx(summary["sets"]["set5"]["metrics"][m], abs=1e-9), m
    assert summary["model"]["identity"].startswith("rrdb[num_block=2,num_feat=16,num_grow_ch=8]")
    # the AE of the loss was loaded from the pretraining run, with its size from the file's metadata
    assert json.loads((run / "config.json").read_text())["ae"] == str(ae)


def test_resume_continues_exactly(tmp_path, train_root, vgg19_standin, monkeypatch):
    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")  # a step's last bits may follow the count a busy machine picks
    over = ["steps=8", "checkpoint_every=4", "val.every=0"]
    full = _trainer("smoke_ldl", tmp_path / "full", train_root, over).fit(progress=False)
    _trainer("smoke_ldl", tmp_path / "cut", train_root, over).fit(steps=4, progress=False)
    rest = _trainer("smoke_ldl", tmp_path / "cut", train_root, over, resume=True).fit(progress=False)
    keys = ["total_g", "ldl", "perceptual", "gan", "d_real", "d_fake"]
    assert [[h[k] for k in keys] for h in rest] == [[h[k] for k in keys] for h in full[4:]]
    with pytest.raises(AesopBenchError, match="already holds checkpoints"):
        _trainer("smoke_ldl", tmp_path / "full", train_root, over)


def _rows(path, drop=("sec_per_step",)):
    return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(open(path))]


def _killed_after(tr, last: int) -> None:
    """Train until the process dies after step ``last`` (its logs written, nothing after it)."""
    step = tr.train_step

    def killed(lr, hr):
        if tr.step == last:
            raise KeyboardInterrupt
        return step(lr, hr)

    tr.train_step = killed
    with pytest.raises(KeyboardInterrupt):
        tr.fit(progress=False)


def test_resume_after_a_kill_logs_as_an_uninterrupted_run(tmp_path, train_root, bench_root, monkeypatch):
    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")  # a step's last bits may follow the count a busy machine picks
    over = ["steps=8", "checkpoint_every=4", "log_every=1", "val.every=2", f"val.data_root={bench_root}"]
    _trainer("smoke_ae", tmp_path / "full", train_root, over).fit(progress=False)
    rng_full = torch.get_rng_state()
    cut = tmp_path / "cut"
    _killed_after(_trainer("smoke_ae", cut, train_root, over), 6)  # steps 5-6 are logged but not checkpointed
    assert len(_rows(cut / "train_log.csv")) == 6 and len(_rows(cut / "val.csv")) == 3
    # a kill while writing the next checkpoint and the export leaves temporary files behind
    (cut / "ckpt" / ".tmp_step_0000008").mkdir()
    (cut / "ckpt" / ".tmp_step_0000008" / "net_g.safetensors").write_bytes(b"partial")
    (cut / "ae_ema.safetensors.tmp").write_bytes(b"partial")
    saved = torch.load(cut / "ckpt" / "step_0000004" / "state.pt", weights_only=True)["rng"]
    resumed = _trainer("smoke_ae", cut, train_root, over, resume=True)
    # every RNG is restored as saved, and the data loader draws nothing from torch's global RNG (it has its own
    # generator), so the global RNG of the resumed run follows the uninterrupted run's to the end
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    assert random.getstate()[1] == tuple(saved["python"])
    assert not (cut / "ckpt" / ".tmp_step_0000008").exists() and not (cut / "ae_ema.safetensors.tmp").exists()
    assert len(_rows(cut / "train_log.csv")) == 4 and len(_rows(cut / "val.csv")) == 2
    resumed.fit(progress=False)
    assert torch.equal(torch.get_rng_state(), rng_full)
    assert _rows(cut / "train_log.csv") == _rows(tmp_path / "full" / "train_log.csv")
    assert _rows(cut / "val.csv") == _rows(tmp_path / "full" / "val.csv")


def test_a_kill_between_a_checkpoint_and_its_export_or_validation_is_redone(tmp_path, train_root, bench_root):
    """The export and the validation at a checkpoint's step belong to it: a resume redoes what its completion
    record does not list, and the run's files equal an uninterrupted run's."""
    over = ["steps=4", "checkpoint_every=2", "log_every=1", "val.every=2", f"val.data_root={bench_root}"]
    _trainer("smoke_ae", tmp_path / "full", train_root, over).fit(progress=False)
    full = tmp_path / "full"
    for where, step in (("_export", 4), ("validate", 2)):
        cut = tmp_path / f"cut-{where}"
        tr = _trainer("smoke_ae", cut, train_root, over)
        original = getattr(tr, where)

        def killed(*a, original=original, tr=tr, step=step):
            if tr.step == step:
                raise KeyboardInterrupt  # the process dies after the checkpoint folder appeared
            return original(*a)

        setattr(tr, where, killed)
        with pytest.raises(KeyboardInterrupt):
            tr.fit(progress=False)
        assert (cut / "ckpt" / f"step_{step:07d}" / "state.pt").is_file()
        _trainer("smoke_ae", cut, train_root, over, resume=True).fit(progress=False)
        assert (cut / "ae_ema.safetensors").read_bytes() == (full / "ae_ema.safetensors").read_bytes(), where
        assert _rows(cut / "val.csv") == _rows(full / "val.csv"), where
        assert _rows(cut / "train_log.csv") == _rows(full / "train_log.csv"), where


def test_a_restart_before_the_first_checkpoint_logs_each_step_once(tmp_path, train_root):
    over = ["steps=2", "checkpoint_every=2", "log_every=1", "val.every=0"]
    _killed_after(_trainer("smoke_ae", tmp_path / "run", train_root, over), 1)  # before any checkpoint
    _trainer("smoke_ae", tmp_path / "run", train_root, over).fit(progress=False)
    assert [r["step"] for r in _rows(tmp_path / "run" / "train_log.csv")] == ["1", "2"]


def test_a_kill_during_the_first_checkpoint_does_not_block_the_run(tmp_path, train_root):
    over = ["steps=2", "checkpoint_every=2"]
    (tmp_path / "run" / "ckpt" / ".tmp_step_0000002").mkdir(parents=True)
    with pytest.raises(AesopBenchError, match="no complete checkpoint"):
        _trainer("smoke_ae", tmp_path / "run", train_root, over, resume=True)
    _trainer("smoke_ae", tmp_path / "run", train_root, over).fit(progress=False)  # a fresh start works
    assert sorted(p.name for p in (tmp_path / "run" / "ckpt").iterdir()) == ["step_0000002"]


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, train_root, monkeypatch):
    tr = _trainer("smoke_ae", tmp_path / "nan", train_root, ["steps=6", "checkpoint_every=2"])
    tr.fit(steps=4, progress=False)
    from aesop_bench.train import losses

    monkeypatch.setattr(losses, "l1", lambda a, b: torch.tensor(float("nan")))
    with pytest.raises(AesopBenchError, match=r"non-finite loss at step 5 .*step_0000004"):
        tr.fit(progress=False)
    assert (tmp_path / "nan" / "ckpt" / "step_0000004" / "state.pt").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path, train_root):
    """torchrun with two CPU processes (gloo) and the global batch split between them gives the weights of
    one process with the same global batch."""
    from safetensors.torch import load_file

    over = ["steps=4", "checkpoint_every=4", "val.every=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = [sys.executable, "-m", "aesop_bench", "train", "ae", "--config", str(CONFIGS / "smoke_ae.yaml"),
              "--data-root", str(train_root), "--quiet"] + [a for o in over for a in ("--opt", o)]
    subprocess.run(single + ["--out", str(tmp_path / "one")], check=True, env=env, timeout=3600,
                   capture_output=True)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "aesop_bench"] + single[3:]
    proc = subprocess.run(ddp + ["--out", str(tmp_path / "two")], env=env, timeout=3600, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "ckpt" / "step_0000004" / "net_g.safetensors"))
    b = load_file(str(tmp_path / "two" / "ckpt" / "step_0000004" / "net_g.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not (tmp_path / "two" / "ckpt" / "step_0000004").with_name(".tmp_step_0000004").exists()


@pytest.mark.slow
def test_two_process_training_validates_and_resumes_as_one_process(tmp_path, train_root, bench_root):
    """torchrun with two CPU processes (gloo), validating every 2 steps: rank 0 validates alone while the other
    waits, and the validation log equals one process's; killed after its first checkpoint and resumed, it goes on
    with each rank's own random state (seed + rank), saved per rank in the checkpoint."""
    over = ["steps=4", "checkpoint_every=2", "log_every=1", "val.every=2", f"val.data_root={bench_root}",
            "val.metrics=[psnr, lr_psnr]", "losses=[{type: l1, weight: 1.0}]", "discriminator=null"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = [sys.executable, "-m", "aesop_bench", "train", "sr", "--config", str(CONFIGS / "smoke_ldl.yaml"),
              "--data-root", str(train_root), "--quiet"] + [a for o in over for a in ("--opt", o)]
    proc = subprocess.run(single + ["--out", str(tmp_path / "one")], env=env, timeout=3600, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "aesop_bench"] + single[3:] + ["--out", str(tmp_path / "two")]
    proc = subprocess.run([*ddp, "--opt", "steps=2"], env=env, timeout=3600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = torch.load(tmp_path / "two" / "ckpt" / "step_0000002" / "state.pt", weights_only=True)
    ranks = state["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])
    ddp[ddp.index("--master_port") + 1] = str(_free_port())
    proc = subprocess.run([*ddp, "--resume", str(tmp_path / "two")], env=env, timeout=3600, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = _rows(tmp_path / "one" / "val.csv"), _rows(tmp_path / "two" / "val.csv")
    assert [(r["step"], r["metric"]) for r in two] == [(r["step"], r["metric"]) for r in one] == \
        [("2", "psnr"), ("2", "lr_psnr"), ("4", "psnr"), ("4", "lr_psnr")]
    for a, b in zip(one, two):
        assert float(b["value"]) == pytest.approx(float(a["value"]), abs=1e-3), (a, b)


def test_objectives_that_leave_parameters_untrained_are_refused(tmp_path, train_root):
    """An AE trained with ae_lr alone leaves its decoder without a gradient (DDP would stop at the second step),
    and SPSR's gradient branch trains only under SPSR's own objective: both are refused, naming why."""
    tr = _trainer("smoke_ae", tmp_path / "ae", train_root, ["losses=[{type: ae_lr, weight: 1.0}]"])
    with pytest.raises(AesopBenchError, match="get no gradient from this objective .*decoder"):
        tr.train_step(*next(tr._batches()))
    with pytest.raises(AesopBenchError, match="SPSR is in the zoo to be evaluated"):
        _trainer("smoke_ldl", tmp_path / "spsr", train_root, ["generator.arch=spsr", "generator.opts={}"])


def test_discriminator_batchnorm_as_the_authors_code():
    """The 256 discriminator pools BatchNorm statistics over all processes (the authors' nn.SyncBatchNorm),
    the 128 one keeps them per process; in one process on CPU the pooled layer is plain BatchNorm."""
    from aesop_bench.models.archs.discriminator_arch import PooledBatchNorm2d, VGGStyleDiscriminator
    from aesop_bench.train.trainer import build_discriminator

    for name, pooled in (("aesop_rrdb256", True), ("aesop_swinir", True), ("ldl_swinir", True),
                         ("aesop_rrdb", False), ("ldl_rrdb", False)):
        d = build_discriminator(load_config(CONFIGS / f"{name}.yaml"))
        n_pooled = sum(isinstance(m, PooledBatchNorm2d) for m in d.modules())
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
        assert n_bn in (9, 11) and n_pooled == (n_bn if pooled else 0), name
    torch.manual_seed(0)
    plain, pooled = VGGStyleDiscriminator(3, 8, 256, pooled_bn=False), VGGStyleDiscriminator(3, 8, 256)
    pooled.load_state_dict(plain.state_dict())
    x = torch.rand(3, 3, 256, 256)
    assert torch.equal(plain(x), pooled(x))
    assert torch.equal(plain.bn2_1.running_var, pooled.bn2_1.running_var)
    assert load_config(CONFIGS / "aesop_swinir.yaml").seed == 1 == load_config(CONFIGS / "ldl_swinir.yaml").seed


def _run_variant(tmp_path, train_root, name, overrides, nproc, steps=2):
    """A tiny GAN training (l1 + relativistic GAN, VGG-style discriminator); the final weights."""
    from safetensors.torch import load_file

    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["-m", "aesop_bench", "train", "sr", "--config", str(CONFIGS / "smoke_ldl.yaml"), "--data-root",
            str(train_root), "--out", str(tmp_path / name), "--quiet"]
    over = [f"steps={steps}", f"checkpoint_every={steps}", "val.every=0", "data.hr_dirs=[BSD200]",
            "losses=[{type: l1, weight: 1}, {type: gan, weight: 0.1}]",
            "generator.opts={num_feat: 8, num_block: 1, num_grow_ch: 4}",
            # Adam with a large epsilon steps in proportion to the gradient: float noise in a gradient that is
            # zero in exact arithmetic (the last bias, which the relativistic loss cancels) stays noise instead
            # of becoming a full step of the learning rate
            "optim_g.lr=0.5", "optim_g.eps=1.0", "optim_d.lr=2.0", "optim_d.eps=1.0", *overrides]
    args += [a for o in over for a in ("--opt", o)]
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                               str(_free_port())] if nproc > 1 else []) + args
    proc = subprocess.run(cmd, env=env, timeout=3600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / name / "ckpt" / f"step_{steps:07d}"
    return {**load_file(str(ckpt / "net_g.safetensors")),
            **{f"d.{k}": v for k, v in load_file(str(ckpt / "net_d.safetensors")).items()}}


def _same(a, b, atol=1e-4):
    """Equal parameters. BatchNorm's running statistics are left out: they count and average the forward passes
    a process made (rank 0's are kept) and are never used, since the discriminator only runs in training mode."""
    assert a.keys() == b.keys()
    bad = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
           and not torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4)]
    assert not bad, bad[:5]


@pytest.mark.slow
def test_micro_batches_reproduce_the_official_per_gpu_semantics(tmp_path, train_root):
    """The official 4 x 16 semantics at a small size: a global batch of 4 in micro-batches of 1 (BatchNorm and
    the relativistic GAN's means per micro-batch) gives the same weights in 1 process (accumulating 4), 2 gloo
    processes (2 each) and 4 (1 each); without micro-batches one process normalises over all 4 and differs."""
    common = ["discriminator={arch: vgg128, opts: {num_feat: 4}}", "data.patch=128", "data.batch=4"]
    one = _run_variant(tmp_path, train_root, "one", common + ["data.micro_batch=1"], 1)
    two = _run_variant(tmp_path, train_root, "two", common + ["data.micro_batch=1"], 2)
    four = _run_variant(tmp_path, train_root, "four", common + ["data.micro_batch=1"], 4)
    _same(one, two)
    _same(one, four)
    whole = _run_variant(tmp_path, train_root, "whole", common, 1)
    assert sum(not torch.allclose(one[k], whole[k], atol=1e-2) for k in one if k.startswith("d.")) > 5


@pytest.mark.slow
def test_pooled_batchnorm_pools_over_the_global_batch(tmp_path, train_root):
    """The 256 discriminator: 2 gloo processes with 1 image each equal 1 process with both (statistics pooled
    over the global batch of 2, GAN means per micro-batch of 1), to float32 tolerance: the gradient of a
    convolution feeding BatchNorm cancels in the sum over the batch, and the two routes sum in other orders.
    Per-process statistics (sync_bn=false) give a different training."""
    common = ["discriminator={arch: vgg256, opts: {num_feat: 4}}", "data.patch=256", "data.batch=2",
              "data.micro_batch=1"]
    one = _run_variant(tmp_path, train_root, "one", common, 1, steps=1)
    two = _run_variant(tmp_path, train_root, "two", common, 2, steps=1)
    _same(one, two, atol=1e-3)
    per_process = _run_variant(tmp_path, train_root, "per_process", common + ["sync_bn=false"], 1, steps=1)
    assert sum(not torch.allclose(one[k], per_process[k], atol=1e-2) for k in one if k.startswith("d.")) > 5


def test_pooled_discriminator_with_micro_batched_generator_equals_the_whole_share(tmp_path, train_root):
    """With the pooled (256) discriminator the generator keeps its micro-batches: the step's generator gradient
    equals the one of the whole share in a single pass (GAN term and BatchNorm statistics over all 4 patches, its
    means per micro-batch of 2), to float32 tolerance."""
    from aesop_bench.train.objective import StepInputs, objective

    over = ["discriminator={arch: vgg256, opts: {num_feat: 4}}", "data.patch=256", "data.batch=4",
            "data.micro_batch=2", "losses=[{type: l1, weight: 0.01}, {type: gan, weight: 0.005}]", "sync_bn=true",
            "data.hr_dirs=[BSD200]", "generator.opts={num_feat: 8, num_block: 1, num_grow_ch: 4}"]
    tr = _trainer("smoke_ldl", tmp_path / "pooled", train_root, over)
    assert tr._pooled
    lr, hr = next(tr._batches())
    tr.opt_g.step = lambda *a, **k: None  # keep the gradients, leave the weights
    tr._discriminator_step = lambda *a, **k: (torch.zeros(()), torch.zeros(()))
    tr._ema_update = lambda: None
    seen = []
    forward = tr.net_g.forward
    tr.net_g.forward = lambda x: seen.append(len(x)) or forward(x)
    logs = tr.train_step(lr, hr)
    assert max(seen) == 2  # the generator never ran on the whole share
    got = {n: p.grad.clone() for n, p in tr.net_g.named_parameters()}
    tr.net_g.forward = forward
    tr.opt_g.zero_grad(set_to_none=True)
    tr.net_d.requires_grad_(False)
    total, parts = objective(StepInputs(lr, hr, tr.net_g(lr), micro=2), tr.nets, tr.weights)
    total.backward()
    for n, p in tr.net_g.named_parameters():
        assert torch.allclose(got[n], p.grad, rtol=1e-4, atol=1e-7), n
    assert float(logs["gan"]) == pytest.approx(float(parts["gan"].detach()), rel=1e-5)
    assert float(logs["total_g"]) == pytest.approx(float(total.detach()), rel=1e-5)


def test_readme_smoke_training_runs_without_downloaded_weights(bench_root, tmp_path, capsys, monkeypatch):
    """The README's smoke-training lines, on a data folder holding BSD100 and Set5 (as `data download` leaves
    them), shortened to a few steps: AE pretraining, AESOP training through that AE, evaluation of the result."""
    import shlex
    from pathlib import Path

    from aesop_bench import weights as wm

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme[readme.index("A smoke training that runs on a fresh machine"):]
    block = block[block.index("```bash") + 7:block.index("```", block.index("```bash") + 7)]
    lines = [shlex.split(x)[1:] for x in block.strip().splitlines()]
    assert [x[:2] for x in lines] == [["data", "download"], ["train", "ae"], ["train", "sr"], ["eval", "--model"]]
    data = tmp_path / "data"
    data.mkdir()
    for s in ("BSD100", "Set5"):
        (data / s).symlink_to(bench_root / s)
    monkeypatch.chdir(tmp_path)
    short = ["--opt", "steps=4", "--opt", "checkpoint_every=4", "--opt", "val.every=4"]
    assert main(lines[1] + short + ["--quiet"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(lines[2] + short) == 0, capsys.readouterr().err  # with its progress bar
    err = capsys.readouterr().err
    # the validation line is written through the bar (which clears itself first), not into it
    assert re.search(r"(^|[\r\n])validation at step 4 on set5", err) and "]validation" not in err, err[-500:]
    assert main(lines[3] + ["--quiet"]) == 0
    assert "set5" in capsys.readouterr().out
    assert all(wm.check(e).status == "missing" for e in wm.manifest().values() if e.name == "vgg19")


def test_a_validation_that_fails_never_stops_the_training(tmp_path, bench_root):
    """The README's offline recipe validates an early EMA network; when the evaluator refuses what it returned
    (here: an output of another range, 0-255), the failure is logged with the step and the run goes on."""
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from aesop_bench.train.checkpoint import save_weights

    torch.manual_seed(0)
    ae_opts = {"num_feat": 16, "num_block": 1, "num_grow_ch": 8, "enc_blocks": 1}
    ae = tmp_path / "ae.safetensors"
    save_weights(AutoEncoder(**ae_opts), ae, {"arch": "ae", "opts": ae_opts})
    cfg = load_config(CONFIGS / "smoke_aesop_offline.yaml", ["val.every=1", f"val.data_root={bench_root}",
                                                             f"data.hr_dirs=[{bench_root / 'Set5' / 'HR'}]"])
    cfg.ae = str(ae)
    said = []
    tr = Trainer(cfg, tmp_path / "run", bench_root, "cpu", log=said.append)

    class Times255(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x) * 255

    tr.net_g_ema = Times255(tr.net_g_ema)
    assert tr.validate() == {}
    assert any(m.startswith("validation at step 0 on set5 failed, training goes on:") and "0-255" in m for m in said)


def test_the_readme_smoke_training_runs_as_written(server, mirror_sets, tmp_path, monkeypatch, capsys):
    """The README's smoke-training commands, read from the README and run in order in an empty folder (the local
    server standing in for GitHub): each exits 0, the SR run's last validation is logged (values, or a failure the
    run went on past), and its EMA network evaluates on Set5."""
    import re
    import shlex

    from aesop_bench.cli import main

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("A smoke training that runs", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.strip().splitlines()]
    assert [c[:3] for c in commands] == [["aesop-bench", "data", "download"], ["aesop-bench", "train", "ae"],
                                         ["aesop-bench", "train", "sr"], ["aesop-bench", "eval", "--model"]]
    _, url, _ = server
    mirror_sets(["set5", "bsd100"])
    monkeypatch.setenv("AESOP_BENCH_GITHUB_RAW", url)
    monkeypatch.delenv("AESOP_BENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert main(command[1:] + (["--quiet"] if command[1] == "eval" else [])) == 0, command
    printed = capsys.readouterr()
    assert re.search(r"^set5 +5 +\d+\.\d{3} +0\.\d{4}", printed.out, re.M), printed.out
    assert "validation at step 30 on set5" in printed.out + printed.err


def test_ae_validation_goes_through_the_evaluator_and_equals_the_metrics_on_its_reconstructions(bench_root):
    """The AE's validation (a Reconstruction source in the one evaluator) gives, for a network that blurs its
    input, the mean of PSNR and SSIM computed here image by image on the quantised reconstruction of each mod-12
    HR image; an LR-referenced metric is left out (there is no LR)."""
    from types import SimpleNamespace

    import torch.nn.functional as F

    from aesop_bench.data.transforms import mod_crop, to_rgb
    from aesop_bench.imageio import quantize, read_image
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.protocols import get_protocol
    from aesop_bench.train.validation import validate

    def blur(x):
        return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)

    cfg = SimpleNamespace(kind="ae", name="ae", data=SimpleNamespace(scale=4),
                          val=SimpleNamespace(set="set5", metrics="psnr,ssim,lr_psnr", data_root=str(bench_root)))
    got = validate(cfg, blur, 10, torch.device("cpu"))
    protocol = get_protocol("paper", test_data="own")
    want = {}
    for m in ("psnr", "ssim"):
        metric = Metric(m, protocol)
        vals = []
        for f in sorted((bench_root / "Set5" / "HR").glob("*.png")):
            hr = mod_crop(to_rgb(read_image(f)), 12)[None]
            vals.append(float(metric.score(quantize(blur(hr.float() / 255)), hr, None)[0]))
        want[m] = sum(vals) / len(vals)
    assert set(got) == {"psnr", "ssim"}
    assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-9) and got["ssim"] == pytest.approx(want["ssim"], abs=1e-9)


def test_a_resumed_cpu_run_keeps_its_checkpoints_thread_count(tmp_path, train_root, vgg19_standin, monkeypatch):
    """Made with 2 threads, resumed on a machine that now leaves 1 core free: the run goes on with 2 (a step's last
    bits may follow the count); a count the environment fixes stands, and the log says what that may cost."""
    import torch

    from aesop_bench import threads

    before = torch.get_num_threads()
    over = ["steps=2", "checkpoint_every=1", "val.every=0"]
    monkeypatch.setenv("AESOP_BENCH_THREADS", "2")
    _trainer("smoke_ldl", tmp_path / "run", train_root, over).fit(steps=1, progress=False)
    monkeypatch.delenv("AESOP_BENCH_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "free_cores", lambda: 1)
    said = []
    try:
        tr = _trainer("smoke_ldl", tmp_path / "run", train_root, over, resume=True, log=said.append)
        assert (tr.threads, torch.get_num_threads()) == (2, 2)
        assert "2 CPU thread(s), as the checkpoint was made with" in said
        monkeypatch.setenv("AESOP_BENCH_THREADS", "1")
        said.clear()
        tr = _trainer("smoke_ldl", tmp_path / "run", train_root, over, resume=True, log=said.append)
        assert (tr.threads, torch.get_num_threads()) == (1, 1)
        assert any("made with 2 CPU thread(s), this run has 1" in line for line in said)
    finally:
        threads.set_pools(before)
