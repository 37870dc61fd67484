"""Training on the real images of ../shared/data/train: configs, data, smoke AE + AESOP runs that the
evaluator loads, exact resume, non-finite losses, and two-process DDP (gloo) against one process."""

from __future__ import annotations

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
from aesop_bench.train.config import load_config
from aesop_bench.train.data import PairedPatches, StepSampler, extract_subimages, list_images
from aesop_bench.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


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
    files = list_images([train_root / "T91"])[:5]
    ds = PairedPatches(files, 48, 4, 12, seed=3)
    lr, hr = ds[(2, 1)]
    lr2, hr2 = ds[(2, 1)]
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2) and lr.shape == (3, 12, 12) and hr.shape == (3, 48, 48)
    from aesop_bench.data.imresize import imresize

    # with flips off, the LR patch is the MATLAB-bicubic LR of the whole image, cropped where the HR patch is
    ds_plain = PairedPatches(files, 48, 4, 12, seed=3, flip=False, rot=False)
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
    n = extract_subimages(src, tmp_path / "dst", crop=480, step=240, thresh=48)
    # x: 0, 240, 480 (+520 flush: 1000 - 960 = 40 <= 48, not added); y: 0, 220 flush (700 - 720 < 0 -> 0, 220)
    assert n == len(list((tmp_path / "dst").iterdir())) == 3 * 2


def _trainer(cfg_name, out, root, overrides=(), resume=False):
    cfg = load_config(CONFIGS / f"{cfg_name}.yaml", list(overrides))
    return Trainer(cfg, out, root, "cpu", resume=resume, log=lambda m: None)


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
                 "--out", str(tmp_path / "sr"), "--ae", str(ae), "--opt", "steps=20", "--quiet"]) == 0
    run = tmp_path / "sr"
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step_0000010", "step_0000020"]
    assert {p.name for p in (run / "ckpt" / "step_0000020").iterdir()} == {
        "net_g.safetensors", "net_g_ema.safetensors", "net_d.safetensors", "state.pt"}
    val = (run / "val.csv").read_text()
    assert "15,set5,psnr," in val
    capsys.readouterr()
    assert main(["eval", "--model", str(run / "ema.safetensors"), "--sets", "set5", "--metrics", "psnr,ssim",
                 "--data-root", str(bench_root), "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["model"]["identity"].startswith("rrdb[num_block=2,num_feat=16,num_grow_ch=8]")
    # the AE of the loss was loaded from the pretraining run, with its size from the file's metadata
    assert json.loads((run / "config.json").read_text())["ae"] == str(ae)


def test_resume_continues_exactly(tmp_path, train_root, vgg19_standin):
    over = ["steps=8", "checkpoint_every=4", "val.every=0"]
    full = _trainer("smoke_ldl", tmp_path / "full", train_root, over).fit(progress=False)
    _trainer("smoke_ldl", tmp_path / "cut", train_root, over).fit(steps=4, progress=False)
    rest = _trainer("smoke_ldl", tmp_path / "cut", train_root, over, resume=True).fit(progress=False)
    keys = ["total_g", "ldl", "perceptual", "gan", "d_real", "d_fake"]
    assert [[h[k] for k in keys] for h in rest] == [[h[k] for k in keys] for h in full[4:]]
    with pytest.raises(AesopBenchError, match="already holds checkpoints"):
        _trainer("smoke_ldl", tmp_path / "full", train_root, over)


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


def test_two_process_ddp_equals_one_process(tmp_path, train_root):
    """torchrun with two CPU processes (gloo) and the global batch split between them gives the weights of
    one process with the same global batch."""
    from safetensors.torch import load_file

    over = ["steps=4", "checkpoint_every=4", "val.every=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = [sys.executable, "-m", "aesop_bench", "train", "ae", "--config", str(CONFIGS / "smoke_ae.yaml"),
              "--data-root", str(train_root), "--quiet"] + [a for o in over for a in ("--opt", o)]
    subprocess.run(single + ["--out", str(tmp_path / "one")], check=True, env=env, timeout=600,
                   capture_output=True)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "aesop_bench"] + single[3:]
    proc = subprocess.run(ddp + ["--out", str(tmp_path / "two")], env=env, timeout=600, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "ckpt" / "step_0000004" / "net_g.safetensors"))
    b = load_file(str(tmp_path / "two" / "ckpt" / "step_0000004" / "net_g.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert not (tmp_path / "two" / "ckpt" / "step_0000004").with_name(".tmp_step_0000004").exists()


def test_sync_bn_is_opt_in_and_converts_every_discriminator_batchnorm():
    from aesop_bench.models.archs.discriminator_arch import VGGStyleDiscriminator
    from aesop_bench.train.trainer import sync_batchnorm

    assert load_config(CONFIGS / "aesop_rrdb.yaml").sync_bn is False  # per-GPU statistics, as BasicSR
    net = VGGStyleDiscriminator(3, 64, 128)
    assert sync_batchnorm(net, False, torch.device("cpu")) is net
    with pytest.raises(AesopBenchError, match="sync_bn needs CUDA"):
        sync_batchnorm(net, True, torch.device("cpu"))
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    synced = sync_batchnorm(net, True, torch.device("cuda"))
    assert n_bn == 9 and sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == n_bn
