"""IQA-guided fine-tuning (Zhang et al., CVPR 2025) in the trainer: LoRA adapters on a held network, the ``nriqa``
loss term, and multi-GT data in HGGT's layout with the UPos, SMA, SMP and AMO samplers. MUSIQ runs with seeded
stand-in weights (the published file cannot be fetched here), checked against IQA-PyTorch's own module holding the
same weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from aesop_bench.errors import AesopBenchError, ConfigError, InputError
from aesop_bench.train.config import load_config
from aesop_bench.train.trainer import Trainer

pyiqa_musiq = pytest.importorskip("pyiqa.archs.musiq_arch", reason="IQA-PyTorch is a test dependency")

VOTES = {  # per set: the three annotators' labels of GTs 01..04 (effective labels in the comment)
    "s1": [("Positive", "Positive", "Negative"), ("Negative", "Negative", "Negative"),
           ("Positive", "Similar", "Negative"), ("Similar", "Positive", "Positive")],  # P, N, S, P
    "s2": [("Negative",) * 3, ("Similar",) * 3, ("Positive", "Positive", "Positive"), ("Negative",) * 3],  # N S P N
    "s3": [("Negative",) * 3] * 4,  # no positive: left out of training
}


def _label_file(name: str, votes: list[str]) -> dict:
    """One annotator's label JSON in HGGT's format (README: Picture_1 is the original, 2..5 are GTs 01..04)."""
    out = {"Picture_1": {"Name": f"{name}.png", "File": "original", "Label": None}}
    for k, label in enumerate(votes):
        out[f"Picture_{k + 2}"] = {"Name": f"{name}_0{k + 1}.png", "File": f"0{k + 1}", "Label": label}
    out["Time_cost"] = {"Start": 0, "End": 1}
    return out


def _hggt(root, shared_data):
    """HGGT's Train/ layout under ``root/HGGT``: three sets cut from T91 images (96 x 96), each with four aligned
    "enhanced" GTs (brighter, darker, higher contrast, channels swapped)."""
    t91 = sorted((shared_data / "train" / "T91").glob("*.bmp"))
    images, labels = root / "HGGT" / "Train" / "images" / "0-2", root / "HGGT" / "Train" / "labels" / "0-2"
    for (name, votes), src in zip(VOTES.items(), t91):
        o = np.array(Image.open(src).convert("RGB"))[:96, :96].astype(np.float64)
        gts = {"original": o, "01": o * 1.15 + 10, "02": o * 0.8, "03": (o - 128) * 1.4 + 128, "04": o[..., ::-1]}
        for gt, arr in gts.items():
            (images / gt).mkdir(parents=True, exist_ok=True)
            f = images / gt / (f"{name}.png" if gt == "original" else f"{name}_{gt}.png")
            Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8)).save(f)
        for a, ann in enumerate("ABC"):
            (labels / ann).mkdir(parents=True, exist_ok=True)
            (labels / ann / f"{name}.json").write_text(json.dumps(_label_file(name, [v[a] for v in votes])))
    return root


@pytest.fixture()
def data(tmp_path, shared_data):
    return _hggt(tmp_path / "data", shared_data)


@pytest.fixture()
def musiq(tmp_path, shared_data, monkeypatch):
    """Seeded stand-in MUSIQ weights through the weights manager; IQA-PyTorch's MUSIQ holding the same ones."""
    from benchmarks.standins import make_standins

    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST", "")  # restored after the test
    make_standins(tmp_path / "standins", which=("musiq_koniq",))
    from aesop_bench import weights as wm

    ref = pyiqa_musiq.MUSIQ(pretrained=False)
    ref.load_state_dict(wm.load_state_dict(wm.get("musiq_koniq", download_missing=False)))
    return ref.eval()


@pytest.fixture()
def init(tmp_path):
    """A small RRDB's weights as an export file (seeded), the network LoRA adapts."""
    from aesop_bench.models.zoo import build_arch
    from aesop_bench.train import checkpoint as ck

    torch.manual_seed(3)
    net = build_arch("rrdb", 4, num_feat=16, num_block=2, num_grow_ch=8)
    path = tmp_path / "init.safetensors"
    ck.save_weights(net, path, {"arch": "rrdb", "opts": {"num_feat": 16, "num_block": 2, "num_grow_ch": 8},
                                "scale": 4, "step": 0})
    return path, net


def _cfg(init_path, *opts):
    return load_config("smoke_nriqa_amo", [f"generator.init={init_path}", "val.every=0", *opts])


def test_amo_lora_fine_tuning_moves_only_the_adapters_and_exports_the_plain_network(tmp_path, data, musiq, init,
                                                                                    bench_root):
    """Four steps of smoke_nriqa_amo: each image's target is the GT patch IQA-PyTorch's MUSIQ scores best; the
    nriqa term is minus MUSIQ's mean score of the SR batch; the held weights do not move and the adapters do; the
    export is a plain RRDB equal to the adapted EMA network."""
    from aesop_bench.models.zoo import build_arch
    from aesop_bench.train import checkpoint as ck
    from aesop_bench.train.objective import StepInputs, objective

    path, base = init
    tr = Trainer(_cfg(path, "steps=2"), tmp_path / "run", data, "cpu", log=lambda m: None)
    # AMO against IQA-PyTorch's MUSIQ, scored independently
    lr, hr = next(tr._batches())
    ds_lr, gts = tr_dataset_first_batch(tr)
    assert torch.equal(lr, ds_lr)
    with torch.no_grad():
        scores = musiq(gts.flatten(0, 1)).reshape(gts.shape[0], 5)
    assert torch.equal(hr, gts[torch.arange(len(gts)), scores.argmax(dim=1)])
    # the nriqa term: -mean MUSIQ(SR) (weight 0.01 in the total)
    sr = torch.rand(2, 3, 48, 48, requires_grad=True)
    total, parts = objective(StepInputs(lr=lr, hr=hr, out=sr), tr.nets, tr.weights, tr.term_opts)
    with torch.no_grad():
        want = -musiq(sr).mean()
    assert float(parts["nriqa"].detach()) == pytest.approx(float(want), rel=1e-5, abs=1e-6)
    assert float(total.detach()) == pytest.approx(float(parts["l1"]) + 0.01 * float(parts["nriqa"].detach()), rel=1e-6)
    parts["nriqa"].backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in tr.nriqa.parameters())
    # training moves the adapters alone; the optimiser holds nothing else
    tr.fit(progress=False)
    held = base.state_dict()
    now = ck.bare(tr.net_g).state_dict()
    lora = [k for k in now if ".lora_" in k]
    assert lora and all(not torch.equal(now[k], torch.zeros_like(now[k])) for k in lora if "lora_B" in k)
    for k, v in held.items():
        key = k if k in now else k.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        assert torch.equal(now[key], v), k
    trained = {id(p) for group in tr.opt_g.param_groups for p in group["params"]}
    assert trained == {id(p) for n, p in ck.bare(tr.net_g).named_parameters() if ".lora_" in n}
    # the export: a plain RRDB (the zoo's keys), equal to the EMA network with its adapters
    plain = build_arch("rrdb", 4, num_feat=16, num_block=2, num_grow_ch=8)
    from safetensors.torch import load_file

    plain.load_state_dict(load_file(str(tmp_path / "run" / "ema.safetensors")), strict=True)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), tr.net_g_ema(x), rtol=0, atol=2e-6)


def tr_dataset_first_batch(tr):
    """The first batch as the dataset gives it (each image's five GT patches), made again from the sampler's
    (epoch, index) pairs."""
    from aesop_bench.train.data import StepSampler
    from aesop_bench.train.multigt import MultiGTPatches, training_items

    c = tr.cfg.data
    items = training_items(tr.data_root / c.multigt.root)
    ds = MultiGTPatches(items, c, tr.cfg.seed, None)
    keys = list(iter_first(StepSampler(len(ds), c.batch, tr.cfg.seed), c.batch))
    lrs, gts = zip(*(ds[k] for k in keys))
    return torch.stack(lrs), torch.stack(gts)


def iter_first(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_upos_draws_only_positives_and_every_one_of_them(data, init):
    """UPos: the target of set s1 (positives 01 and 04) is always one of those two GTs' patches and both occur;
    s2's is always GT 03; s3 (no positive) is never trained on. Each (epoch, index) gives the same sample again."""
    from aesop_bench.train.multigt import MultiGTPatches, sampler_of, training_items

    cfg = _cfg(init[0], "data.multigt.sampler=upos")
    items = training_items(data / cfg.data.multigt.root)
    assert [i.name for i in items] == ["s1", "s2"]
    ds = MultiGTPatches(items, cfg.data, 0, sampler_of(cfg.data.multigt, items, data))
    plain = MultiGTPatches(items, cfg.data, 0, None)
    seen = {"s1": set(), "s2": set()}
    for epoch in range(40):
        for index, item in enumerate(items):
            lr, hr = ds[(epoch, index)]
            _, gts = plain[(epoch, index)]
            match = [g for g, name in enumerate(("original", "01", "02", "03", "04")) if torch.equal(hr, gts[g])]
            seen[item.name].update(match)
            assert torch.equal(ds[(epoch, index)][1], hr)
    assert seen == {"s1": {1, 4}, "s2": {3}}


def test_sma_reads_its_scores_and_refuses_a_file_without_them(tmp_path, data, init):
    from aesop_bench.train.multigt import MultiGTPatches, sampler_of, training_items

    items = training_items(data / "HGGT" / "Train")
    # a huge margin at tau 1: the best-scored GT is drawn every time (softmax weight 1 - 4e-44)
    scores = {i.name: {"original": 0.0, "01": 0.0, "02": 100.0, "03": 0.0, "04": 0.0} for i in items}
    (tmp_path / "scores.json").write_text(json.dumps({"metric": "musiq", "lower_better": False, "scores": scores}))
    cfg = _cfg(init[0], "data.multigt.sampler=sma",
               f"data.multigt.scores={tmp_path / 'scores.json'}")
    ds = MultiGTPatches(items, cfg.data, 0, sampler_of(cfg.data.multigt, items, data))
    plain = MultiGTPatches(items, cfg.data, 0, None)
    for index in range(len(items)):
        assert torch.equal(ds[(0, index)][1], plain[(0, index)][1][2])
    del scores["s2"]["04"]
    (tmp_path / "scores.json").write_text(json.dumps({"scores": scores}))
    with pytest.raises(InputError, match=r"scores.json: set s2 has no finite score for GT\(s\) 04"):
        sampler_of(cfg.data.multigt, items, data)


@pytest.mark.parametrize("opts, match", [
    (["losses=[{type: nriqa, weight: 1, metric: niqe}]"], "not a differentiable no-reference metric here; choose "
                                                           "one of musiq, clipiqa"),
    (["losses=[{type: nriqa, weight: 1, metric: maniqa}]"], "refused as a loss: MANIQA scores 20"),
    (["generator.init=null"], "LoRA adapts trained weights"),
    (["data.multigt.sampler=sma"], "the sma sampler draws from each GT's precomputed NR-IQA score"),
    (["data.multigt.sampler=best"], "choose one of upos, sma, smp, amo"),
    (["data.multigt.tau=0"], "temperature is above 0"),
    (["data.hr_dirs=[T91]"], "the HR images and their LR come from the multi-GT set"),
    (["generator.lora.rank=0"], "the rank is a whole number of 1 or more"),
])
def test_bad_fine_tuning_configs_are_refused_naming_the_key(opts, match):
    with pytest.raises((ConfigError, AesopBenchError), match=match):
        load_config("smoke_nriqa_amo", opts)


def test_score_gts_writes_each_gts_musiq_score_for_the_softmax_samplers(tmp_path, data, musiq, init):
    """`data score-gts`: every GT of every training set, scored whole by MUSIQ (IQA-PyTorch's module with the
    same weights gives the same numbers); the file is what sma and smp read."""
    from aesop_bench.cli import main
    from aesop_bench.train.multigt import MultiGTPatches, sampler_of, training_items

    train = data / "HGGT" / "Train"
    assert main(["data", "score-gts", str(train), "--metric", "musiq", "--dst", str(tmp_path / "s.json")]) == 0
    got = json.loads((tmp_path / "s.json").read_text())
    assert got["metric"] == "musiq" and got["lower_better"] is False and sorted(got["scores"]) == ["s1", "s2"]
    for name, gt, f in [("s1", "03", "03/s1_03.png"), ("s2", "original", "original/s2.png")]:
        x = torch.from_numpy(np.array(Image.open(train / "images" / "0-2" / f))).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            assert got["scores"][name][gt] == pytest.approx(float(musiq(x)), rel=1e-5, abs=1e-6)
    cfg = _cfg(init[0], "data.multigt.sampler=smp", f"data.multigt.scores={tmp_path / 's.json'}")
    items = training_items(train)
    ds = MultiGTPatches(items, cfg.data, 0, sampler_of(cfg.data.multigt, items, data))
    plain = MultiGTPatches(items, cfg.data, 0, None)
    _, gts = plain[(0, 1)]
    assert torch.equal(ds[(0, 1)][1], gts[3])  # s2's one positive
