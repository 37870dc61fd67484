"""SPSR trained as its authors did (Maclory/SPSR: code/options/train/train_spsr.json, code/models/SPSR_model.py) and
with the AESOP loss: the gradient operators against a float64 port of the authors' two functions, the three new loss
terms against values worked out by hand, the coupled discriminator loss against the authors' formula (and unlike the
split one), the gradient discriminator's input sizes, the f_ warm-up and its optimiser state, the initialisation by
name from an RRDB of the older 'model.N' layout (and the two later layouts), kill-and-resume, two gloo processes
against one, and the loop closed: a smoke run's export evaluated by `eval --model` and drawn in a PD plot."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError
from aesop_bench.train import checkpoint as ck
from aesop_bench.train.config import load_config
from aesop_bench.train.trainer import Trainer
from tests.test_train import _free_port, _killed_after, _rows

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "aesop_bench" / "configs"
SMOKE = {"nf": 4, "nb": 20, "gc": 4}


def _trainer(name, out, root, overrides=(), resume=False, log=None):
    cfg = load_config(name, list(overrides))
    return Trainer(cfg, out, root, "cpu", resume=resume, log=log or (lambda m: None))


# ----------------------------------------------------------------------------------------------------------------
# The authors' train_spsr.json, transcribed by hand: (their key, their value, how our loaded config holds it).
def _term(c, name):
    return next((t for t in c.losses if t.type == name), None)


AUTHORS_SPSR = [
    ("manual_seed", 9, lambda c: c.seed),
    ("scale", 4, lambda c: c.data.scale),
    ("batch_size over gpu_ids [0, 1] (DataParallel: 15 per GPU)", (30, 15),
     lambda c: (c.data.batch, c.data.micro_batch)),
    ("HR_size", 128, lambda c: c.data.patch),
    ("use_flip, use_rot", (True, True), lambda c: (c.data.flip, c.data.rot)),
    ("network_G spsr_net nf, nb, gc", ("spsr", 64, 23, 32), lambda c: (c.generator.arch, c.generator.opts["nf"],
                                                                     c.generator.opts["nb"], c.generator.opts["gc"])),
    ("define_G: init_weights kaiming, scale 0.1", 0.1, lambda c: c.generator.kaiming_init),
    ("pretrain_model_G RRDB_PSNR_x4.pth, load_network by name", ("RRDB_PSNR_x4.pth", True),
     lambda c: (__import__("aesop_bench.weights", fromlist=["entry"]).entry(c.generator.init).file,
                c.generator.init_partial)),
    ("network_D discriminator_vgg_128, nf 64, for D and D_grad", [("vgg128", 64), ("vgg128", 64)],
     lambda c: [(c.discriminator.arch, c.discriminator.opts["num_feat"]),
                (c.discriminators["d_grad"].arch, c.discriminators["d_grad"].opts["num_feat"])]),
    ("define_D / define_D_grad: init_weights kaiming, scale 1", (1.0, 1.0),
     lambda c: (c.discriminator.kaiming_init, c.discriminators["d_grad"].kaiming_init)),
    ("lr_G, lr_D (D_grad: lr_D), weight decay 0", (1e-4, 1e-4), lambda c: (c.optim_g.lr, c.optim_d.lr)),
    ("beta1_G, beta1_D; beta2 0.999 in the code", ([0.9, 0.999], [0.9, 0.999]),
     lambda c: (c.optim_g.betas, c.optim_d.betas)),
    ("lr_steps, lr_gamma (G, D, D_grad)", ([50000, 100000, 200000, 300000], 0.5, 0.5),
     lambda c: (c.optim_g.milestones if c.optim_g.milestones == c.optim_d.milestones else None, c.optim_g.gamma,
                c.optim_d.gamma)),
    ("niter", 500000, lambda c: c.steps),
    ("pixel_criterion l1, pixel_weight", 1e-2, lambda c: _term(c, "l1").weight),
    ("feature_criterion l1, feature_weight; VGG19 feature_layer 34 (conv5_4, before ReLU)", (1.0, {"conv5_4": 1.0}),
     lambda c: (_term(c, "perceptual").weight, _term(c, "perceptual").layer_weights)),
    ("gan_type vanilla (BCE) in the relativistic form, gan_weight", ("relativistic", 5e-3),
     lambda c: (_term(c, "gan").gan_type or "relativistic", _term(c, "gan").weight)),
    ("gradient_pixel_weight (MSE)", 1e-2, lambda c: _term(c, "grad_pixel").weight),
    ("gradient_gan_weight", 5e-3, lambda c: _term(c, "grad_gan").weight),
    ("pixel_branch_criterion l1, pixel_branch_weight", 0.5, lambda c: _term(c, "grad_branch").weight),
    ("l_d_total = (l_d_real + l_d_fake) / 2, means over the whole batch, for D and D_grad", [("batch", "coupled")] * 2,
     lambda c: [(_term(c, t).means, _term(c, t).d_loss) for t in ("gan", "grad_gan")]),
    ("Branch_pretrain 1, Branch_init_iters 5000: only 'f_' parameters before", (5000, ["f_"]),
     lambda c: (c.generator.warmup.until, c.generator.warmup.train_only)),
    ("no EMA (the trained G is saved and tested)", 0.0, lambda c: c.ema),
    ("val_freq, save_checkpoint_freq", (5000, 5000), lambda c: (c.val.every, c.checkpoint_every)),
    ("print_freq", 100, lambda c: c.log_every),
]


def test_spsr_configs_hold_the_authors_values():
    c = load_config("spsr")
    bad = [(key, want, got) for key, want, read in AUTHORS_SPSR if (got := read(c)) != want]
    assert not bad, bad
    # spsr_aesop: the pixel L1 x0.01 replaced by the AESOP loss x1, nothing else
    a, b = (yaml.safe_load((CONFIGS / f"{n}.yaml").read_text()) for n in ("spsr", "spsr_aesop"))
    assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {"name", "losses", "ae"}
    assert a["losses"][1:] == b["losses"][1:] and a["losses"][0] == {"type": "l1", "weight": 0.01}
    assert b["losses"][0] == {"type": "aesop", "weight": 1.0} and b["ae"] == "aesop_ae"
    assert "no published number" in (CONFIGS / "spsr_aesop.yaml").read_text().split("name:")[0]
    # the smoke run keeps the gradient branch, the gradient loss and both discriminators, not the VGG19 term
    s = load_config("smoke_spsr")
    assert {t.type for t in s.losses} == {"l1", "gan", "grad_pixel", "grad_gan", "grad_branch"}
    assert s.generator.arch == "spsr" and set(s.discriminators) == {"d_grad"} and s.discriminator.arch == "vgg128"


def test_spsr_config_errors_name_the_key():
    with pytest.raises(AesopBenchError, match="SPSR is in the zoo to be evaluated.*grad_branch"):
        load_config("smoke_spsr", ["losses=[{type: l1, weight: 1.0}]", "discriminators={}"])
    with pytest.raises(AesopBenchError, match=r"grad_gan: it trains against the discriminator 'd_grad'"):
        load_config("smoke_spsr", ["discriminators={}"])
    with pytest.raises(AesopBenchError, match=r"discriminators.extra: no loss term trains against it"):
        load_config("smoke_spsr", ["discriminators.extra={arch: vgg128}"])
    with pytest.raises(AesopBenchError, match=r"losses gan means: 'all'"):
        load_config("smoke_spsr", ["losses=[{type: gan, weight: 1, means: all}, {type: grad_branch, weight: 1}, "
                                   "{type: grad_gan, weight: 1}]"])
    with pytest.raises(AesopBenchError, match=r"generator.warmup .*train_only"):
        load_config("smoke_spsr", ["generator.warmup={until: 5, train_only: []}"])
    from aesop_bench.train.nets import build_generator

    with pytest.raises(AesopBenchError, match=r"grad_branch: it reads the generator's 'branch' output, which rrdb"):
        build_generator(load_config("smoke_ldl", ["losses=[{type: l1, weight: 1}, {type: grad_branch, weight: 1}]"]))
    with pytest.raises(AesopBenchError, match=r"d_loss: the vanilla GAN"):
        load_config("smoke_spsr", ["losses=[{type: gan, weight: 1, gan_type: vanilla, d_loss: coupled}, "
                                   "{type: grad_branch, weight: 1}, {type: grad_gan, weight: 1}]"])


# ----------------------------------------------------------------------------------------------------------------
def _authors_get_gradient(x: torch.Tensor, padding: int) -> torch.Tensor:
    """The authors' Get_gradient (padding 2) and Get_gradient_nopadding (padding 1), ported to float64: per channel,
    correlations with kernel_v = [[0,-1,0],[0,0,0],[0,1,0]] and kernel_h = [[0,0,0],[-1,0,1],[0,0,0]], then
    sqrt(v^2 + h^2 + 1e-6), the channels concatenated."""
    kv = torch.tensor([[0, -1, 0], [0, 0, 0], [0, 1, 0]], dtype=torch.float64)[None, None]
    kh = torch.tensor([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], dtype=torch.float64)[None, None]
    out = []
    for i in range(x.shape[1]):
        xi = x[:, i].unsqueeze(1)
        v, h = F.conv2d(xi, kv, padding=padding), F.conv2d(xi, kh, padding=padding)
        out.append(torch.sqrt(torch.pow(v, 2) + torch.pow(h, 2) + 1e-6))
    return torch.cat(out, dim=1)


def test_gradient_maps_equal_the_authors_operators():
    from aesop_bench.models.archs.spsr_arch import GradientMap
    from aesop_bench.train.losses import gradient_map

    x = torch.rand(2, 3, 17, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    m1, m2 = gradient_map(x, padding=1), gradient_map(x, padding=2)
    assert m1.shape == (2, 3, 17, 23) and m2.shape == (2, 3, 19, 25)
    assert torch.allclose(m1, _authors_get_gradient(x, 1), rtol=0, atol=1e-15)
    assert torch.allclose(m2, _authors_get_gradient(x, 2), rtol=0, atol=1e-15)
    assert gradient_map(torch.zeros(1, 3, 128, 128), padding=2).shape[-2:] == (130, 130)  # the D_grad's input
    # the zoo's SPSRNet makes its LR gradient map (Get_gradient_nopadding inside the network) the same way
    assert torch.allclose(GradientMap()(x.float()), gradient_map(x.float(), padding=1), atol=1e-6)


def test_spsr_loss_terms_against_hand_computed_values():
    """A 2x2 HR image with one white pixel (top left), SR and the gradient branch black. With e = sqrt(1 + 1e-6),
    z = sqrt(1e-6): M1(HR) = [[z, e], [e, z]]; M2(HR) is 4x4 with e at (0,1), (1,0), (1,2), (2,1) and z elsewhere;
    M1 and M2 of black are z everywhere. A discriminator averaging its input sees the 4x4 map."""
    from aesop_bench.train.objective import Networks, StepInputs, objective

    hr = torch.zeros(1, 3, 2, 2)
    hr[..., 0, 0] = 1.0
    black = torch.zeros(1, 3, 2, 2)
    seen = []

    def d_grad(t):
        seen.append(tuple(t.shape))
        return t.flatten(1).mean(1, keepdim=True)

    x = StepInputs(lr=torch.zeros(1, 3, 1, 1), hr=hr, out=black, micro=1, aux={"branch": black.clone()})
    total, parts = objective(x, Networks(discriminators={"d_grad": d_grad}),
                             {"grad_branch": 0.5, "grad_pixel": 0.01, "grad_gan": 0.005})
    e, z = math.sqrt(1 + 1e-6), math.sqrt(1e-6)
    branch = (2 * z + 2 * e) / 4
    pixel = 4 * (e - z) ** 2 / 16
    r, f = (4 * e + 12 * z) / 16, z
    gan = (math.log1p(math.exp(r - f)) + math.log1p(math.exp(-(f - r)))) / 2  # (BCE(r - f, 0) + BCE(f - r, 1)) / 2
    assert list(parts) == ["grad_branch", "grad_pixel", "grad_gan"]
    assert [float(v) for v in parts.values()] == pytest.approx([branch, pixel, gan], rel=1e-6)
    assert float(total) == pytest.approx(0.5 * branch + 0.01 * pixel + 0.005 * gan, rel=1e-6)
    assert seen == [(1, 3, 4, 4), (1, 3, 4, 4)]  # the real map, then the fake one: (H + 2) x (W + 2)


def test_the_gradient_discriminator_takes_128_and_130_patches_only():
    from aesop_bench.train.nets import build_discriminators

    cfg = load_config("spsr", ["discriminator.opts={num_feat: 4}", "discriminators.d_grad.opts={num_feat: 4, "
                                                                       "sizes: [130]}"])
    ds = build_discriminators(cfg)
    ds["d_grad"].train()
    for size in (128, 130):
        assert ds["d_grad"](torch.rand(2, 3, size, size)).shape == (2, 1)
    for size in (126, 129, 131, 132, 256):
        with pytest.raises(ValueError, match=r"takes 128x128 or 130x130 patches"):
            ds["d_grad"](torch.rand(2, 3, size, size))
    with pytest.raises(ValueError, match=r"takes 128x128 patches, got \(130, 130\)"):
        ds["d"](torch.rand(2, 3, 130, 130))
    # the linear layer reads 512 x 4 x 4 (num_feat 64): 130 -> 65 -> 32 -> 16 -> 8 -> 4 as 128 -> ... -> 4
    assert load_config("spsr").discriminators["d_grad"].opts == {"num_feat": 64, "sizes": [130]}
    assert build_discriminators(load_config("spsr"))["d_grad"].linear1.in_features == 512 * 4 * 4
    with pytest.raises(AesopBenchError, match=r"discriminators.d_grad.opts .*sizes \[160\]"):
        build_discriminators(load_config("spsr", ["discriminators.d_grad.opts={num_feat: 4, sizes: [160]}"]))


def test_the_coupled_discriminator_loss_is_the_authors_and_differs_from_the_split_one(tmp_path, bench_root):
    """The discriminator step with d_loss coupled gives the gradients of the authors' l_d_total =
    (BCE(r - mean f, 1) + BCE(f - mean r, 0)) / 2 (neither mean detached; BatchNorm per micro-batch of 1, the means
    over both images); the split form (each half against the other's detached logits) gives others."""
    from aesop_bench.train import losses as L

    # the two halves against BCE written out: softplus(-(r - mean f)) / 2 and softplus(f - mean r) / 2
    r, f = torch.tensor([[0.5], [-1.0], [2.0]]), torch.tensor([[0.25], [1.5], [-0.5]])
    want_real = sum(math.log1p(math.exp(-(a - f.mean().item()))) for a in r.flatten().tolist()) / 3 / 2
    want_fake = sum(math.log1p(math.exp(b - r.mean().item())) for b in f.flatten().tolist()) / 3 / 2
    got = L.gan_discriminator_coupled(r, f)
    assert [float(v) for v in got] == pytest.approx([want_real, want_fake], rel=1e-6)

    tr = _trainer("smoke_spsr", tmp_path / "run", bench_root, ["val.every=0"])
    lr, hr = next(tr._batches())
    with torch.no_grad():
        fake = tr.net_g(lr)
    d = tr.discs["d"]
    tr.opt_ds["d"].param_groups[0]["lr"] = 0.0  # the step keeps the gradients and leaves the weights
    state = {k: v.clone() for k, v in d.state_dict().items()}

    def step(form):
        d.load_state_dict(state)
        tr.term_opts["gan"]["d_loss"] = form
        tr._discriminator_step("gan", hr, fake, 1, contextlib.nullcontext())
        return {n: p.grad.clone() for n, p in d.named_parameters()}

    coupled, split = step("coupled"), step("split")
    d.load_state_dict(state)
    d.zero_grad(set_to_none=True)
    pred_real = torch.cat([d(hr[:1]), d(hr[1:])])  # the authors' netD(var_ref), BatchNorm per GPU (here 1 image)
    pred_fake = torch.cat([d(fake[:1]), d(fake[1:])])
    bce = torch.nn.BCEWithLogitsLoss()
    l_d_real = bce(pred_real - torch.mean(pred_fake), torch.ones_like(pred_real))
    l_d_fake = bce(pred_fake - torch.mean(pred_real), torch.zeros_like(pred_fake))
    ((l_d_real + l_d_fake) / 2).backward()
    for n, p in d.named_parameters():
        assert torch.allclose(coupled[n], p.grad, rtol=1e-4, atol=1e-7), n
    differ = [n for n in coupled if not torch.allclose(coupled[n], split[n], rtol=1e-3, atol=1e-6)]
    assert len(differ) > 5, differ


# ----------------------------------------------------------------------------------------------------------------
def test_the_warmup_moves_only_fusion_parameters_and_makes_adam_state_for_them_alone(tmp_path, bench_root):
    """Before step 3 (steps counted from 1) only parameters named f_* move and get Adam state; every parameter
    still gets a gradient in the backward pass (as DDP needs), and both discriminators train from the first step."""
    tr = _trainer("smoke_spsr", tmp_path / "run", bench_root, ["val.every=0", "generator.warmup.until=3"])
    g = ck.bare(tr.net_g)
    names = {p: n for n, p in g.named_parameters()}
    trainable = {n for n, p in g.named_parameters() if p.requires_grad}
    fusion = {n for n in trainable if "f_" in n}  # the authors' rule: 'f_' in the parameter's name
    assert {n.split(".")[0] for n in fusion} == {"f_concat", "f_block", "f_HR_conv0", "f_HR_conv1"}
    start = {n: p.detach().clone() for n, p in g.named_parameters()}
    lr, hr = next(tr._batches())
    grads = []  # the parameters holding a gradient when Adam steps
    tr.opt_g.register_step_pre_hook(lambda *a: grads.append({names[p] for p in names if p.grad is not None}))
    for _ in range(2):
        tr.train_step(lr, hr)
        tr.step += 1
        moved = {n for n, p in g.named_parameters() if not torch.equal(p, start[n])}
        assert moved == fusion
        assert {names[p] for p in tr.opt_g.state} == fusion
        assert grads[-1] == fusion  # the others' gradients were cleared before Adam's step
        assert all(len(o.state) == len(list(d.parameters())) for o, d in zip(tr.opt_ds.values(), tr.discs.values()))
    tr.train_step(lr, hr)  # step 3: everything trains
    assert {names[p] for p in tr.opt_g.state} == trainable
    steps = {names[p]: int(s["step"]) for p, s in tr.opt_g.state.items()}
    assert {steps[n] for n in fusion} == {3} and {steps[n] for n in trainable - fusion} == {1}


def _old_layout_rrdb(nf: int, nb: int, gc: int, seed: int = 1) -> dict:
    """A random x4 RRDBNet state dict in the older ESRGAN code's flattened layout, written from its description:
    model.0 the first conv, model.1.sub.N.RDBk.convj.0 the blocks' convs, model.1.sub.NB the trunk conv, model.3 and
    model.6 the upsampling convs, model.8 the HR conv, model.10 the last conv."""
    gen = torch.Generator().manual_seed(seed)

    def conv(i, o, name):
        return {f"{name}.weight": torch.randn(o, i, 3, 3, generator=gen), f"{name}.bias": torch.randn(o, generator=gen)}

    sd = {**conv(3, nf, "model.0")}
    for b in range(nb):
        for k in (1, 2, 3):
            for j in range(1, 6):
                sd.update(conv(nf + (j - 1) * gc, gc if j < 5 else nf, f"model.1.sub.{b}.RDB{k}.conv{j}.0"))
    for name in (f"model.1.sub.{nb}", "model.3", "model.6", "model.8"):
        sd.update(conv(nf, nf, name))
    sd.update(conv(nf, 3, "model.10"))
    return sd


def _renamed(sd: dict, nb: int, layout: str) -> dict:
    """The same weights in BasicSR's layout or the ESRGAN repository's (its transer_RRDB_models.py mapping)."""
    import re

    if layout == "basicsr":
        trunk, rdb, names = "body", "rdb", {"model.0": "conv_first", f"model.1.sub.{nb}": "conv_body",
                                            "model.3": "conv_up1", "model.6": "conv_up2", "model.8": "conv_hr",
                                            "model.10": "conv_last"}
    else:
        trunk, rdb, names = "RRDB_trunk", "RDB", {"model.0": "conv_first", f"model.1.sub.{nb}": "trunk_conv",
                                                  "model.3": "upconv1", "model.6": "upconv2", "model.8": "HRconv",
                                                  "model.10": "conv_last"}
    out = {}
    for k, v in sd.items():
        m = re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k)
        module, _, param = k.rpartition(".")
        out[f"{trunk}.{m[1]}.{rdb}{m[2]}.conv{m[3]}.{m[4]}" if m else f"{names[module]}.{param}"] = v
    return out


def test_partial_initialisation_from_an_old_layout_rrdb(tmp_path):
    """generator.init loaded by name (the authors' load_network): the RRDB trunk from the file (model.8 is also
    HR_conv0_new), the gradient branch b_*, fusion f_*, HR_conv1_new, conv_w and the fixed gradient kernels keep the
    Kaiming x0.1 initialisation; the report lists them and the file's model.10; BasicSR's and the ESRGAN repository's
    layouts of the same weights give the same network."""
    from aesop_bench.train.nets import build_generator

    sd = _old_layout_rrdb(**SMOKE)
    path = tmp_path / "RRDB_PSNR_x4.pth"
    torch.save(sd, path)
    said = []
    ck.seed_all(0)
    net = build_generator(load_config("smoke_spsr", [f"generator.init={path}", "generator.init_partial=true"]),
                          log=said.append)
    ck.seed_all(0)
    fresh = build_generator(load_config("smoke_spsr")).state_dict()
    own = net.state_dict()
    for k, v in sd.items():
        if not k.startswith("model.10."):
            assert torch.equal(own[k], v), k
    assert torch.equal(own["HR_conv0_new.0.weight"], sd["model.8.weight"])
    kept = {"b_fea_conv", "b_concat_1", "b_concat_2", "b_concat_3", "b_concat_4", "b_block_1", "b_block_2",
            "b_block_3", "b_block_4", "b_LR_conv", "b_module", "conv_w", "f_concat", "f_block", "f_HR_conv0",
            "f_HR_conv1", "HR_conv1_new", "get_g_nopadding"}
    for k in own:
        if k.split(".")[0] in kept:
            assert torch.equal(own[k], fresh[k]), k
        else:
            assert k.startswith(("model.", "HR_conv0_new.")), k
    # Kaiming normal (fan in, gain sqrt 2) x0.1, zero biases: a fusion conv of 24 x 9 inputs
    w = own["f_block.RDB1.conv5.0.weight"]
    assert float(w.std()) == pytest.approx(0.1 * math.sqrt(2 / (24 * 9)), rel=0.1)
    assert not own["f_block.RDB1.conv5.0.bias"].any()
    (report,) = said
    assert "unexpected (no such name in the network), not used: model.10.weight, model.10.bias" in report
    listed = report.split("keep their initialisation: ")[1].split(";")[0]
    assert {part.split(" (")[0] for part in listed.split(", ")} == kept
    for layout in ("basicsr", "esrgan"):
        other = tmp_path / f"{layout}.pth"
        torch.save(_renamed(sd, SMOKE["nb"], layout), other)
        ck.seed_all(0)
        again = build_generator(load_config("smoke_spsr", [f"generator.init={other}", "generator.init_partial=true"]))
        assert all(torch.equal(v, again.state_dict()[k]) for k, v in own.items()), layout
    # a file of another size, and one that shares no name with the network, are refused by name
    torch.save(_old_layout_rrdb(nf=8, nb=20, gc=4), tmp_path / "big.pth")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "foo.pth")
    for name, error in (("big.pth", r"big.pth: tensors of another shape .*model.0.weight"),
                        ("foo.pth", r"foo.pth: none of its 1 tensors .*nothing would be loaded")):
        with pytest.raises(AesopBenchError, match=error):
            build_generator(load_config("smoke_spsr", [f"generator.init={tmp_path / name}", "generator.init_partial=true"]))


# ----------------------------------------------------------------------------------------------------------------
def test_a_killed_spsr_run_resumes_as_an_uninterrupted_one(tmp_path, bench_root, monkeypatch):
    """Killed after step 3 (checkpoint at 2, inside the warm-up), resumed: the logs, both discriminators, the
    generator and every optimiser state equal an uninterrupted run's (CPU, to the bit). SPSR's CPU outputs are not
    known to be equal across thread counts, so the count is fixed: a busy machine must not make the runs differ."""
    from safetensors.torch import load_file

    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")

    over = ["steps=4", "checkpoint_every=2", "log_every=1", "val.every=0", "generator.warmup.until=3"]
    _trainer("smoke_spsr", tmp_path / "full", bench_root, over).fit(progress=False)
    cut = tmp_path / "cut"
    _killed_after(_trainer("smoke_spsr", cut, bench_root, over), 3)
    _trainer("smoke_spsr", cut, bench_root, over, resume=True).fit(progress=False)
    assert _rows(cut / "train_log.csv") == _rows(tmp_path / "full" / "train_log.csv")
    a, b = tmp_path / "full" / "ckpt" / "step_0000004", cut / "ckpt" / "step_0000004"
    for f in ("net_g", "net_g_ema", "net_d", "net_d_grad"):
        x, y = load_file(str(a / f"{f}.safetensors")), load_file(str(b / f"{f}.safetensors"))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), f
    sa, sb = (torch.load(p / "state.pt", weights_only=True) for p in (a, b))
    for key in ("opt_g", "opt_d", "opt_d_grad", "sched_g", "sched_d", "sched_d_grad"):
        assert _equal(sa[key], sb[key]), key
    assert (tmp_path / "full" / "ema.safetensors").read_bytes() == (cut / "ema.safetensors").read_bytes()


def _equal(a, b) -> bool:
    """Nested states (dicts, lists, tensors, numbers) equal to the bit."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def _spsr_run(tmp_path, root, name, nproc, means="batch"):
    """A tiny SPSR training (2 steps: one of warm-up, one of everything); every network's final weights."""
    from safetensors.torch import load_file

    env = dict(os.environ, OMP_NUM_THREADS="1")
    args = ["-m", "aesop_bench", "train", "sr", "--config", "smoke_spsr", "--data-root", str(root), "--out",
            str(tmp_path / name), "--quiet"]
    over = ["steps=2", "checkpoint_every=2", "val.every=0", "generator.warmup.until=2",
            # heavier terms than the recipe's, and Adam with a large epsilon (steps in proportion to the gradient, as
            # tests/test_train.py's variants): float noise in a gradient stays noise instead of a step of the rate
            f"losses=[{{type: l1, weight: 1}}, {{type: gan, weight: 0.1, means: {means}, d_loss: coupled}}, "
            f"{{type: grad_pixel, weight: 1}}, {{type: grad_gan, weight: 0.1, means: {means}, d_loss: coupled}}, "
            "{type: grad_branch, weight: 1}]",
            "optim_g.lr=0.5", "optim_g.eps=1.0", "optim_d.lr=2.0", "optim_d.eps=1.0"]
    args += [a for o in over for a in ("--opt", o)]
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port",
                               str(_free_port())] if nproc > 1 else []) + args
    proc = subprocess.run(cmd, env=env, timeout=3600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / name / "ckpt" / "step_0000002"
    return {f"{f}.{k}": v for f in ("net_g", "net_d", "net_d_grad")
            for k, v in load_file(str(ckpt / f"{f}.safetensors")).items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path, bench_root):
    """torchrun with two CPU processes (gloo), one image each, gives the weights of one process holding both in two
    micro-batches: BatchNorm per image, the relativistic means over both (the logits gathered across the processes,
    with their gradients), the warm-up's cleared gradients. Means per micro-batch instead train otherwise."""
    from aesop_bench.train.nets import build_discriminators, build_generator

    cfg = load_config("smoke_spsr")
    ck.seed_all(cfg.seed)  # the trainer's initial weights
    start = {f"net_g.{k}": v for k, v in build_generator(cfg).state_dict().items()}
    start.update({f"net_{n}.{k}": v for n, d in build_discriminators(cfg).items() for k, v in d.state_dict().items()})

    def differ(a, b, rel):
        """Tensors whose two updates (from the initial weights) differ by more than ``rel`` of the larger one."""
        out = []
        for k in a:
            step = max(float((a[k] - start[k]).abs().max()), float((b[k] - start[k]).abs().max()))
            if float((a[k] - b[k]).abs().max()) > rel * step + 1e-9:
                out.append(k)
        return out

    one = _spsr_run(tmp_path, bench_root, "one", 1)
    two = _spsr_run(tmp_path, bench_root, "two", 2)
    assert one.keys() == two.keys()
    moved = {k for k in one if not torch.equal(one[k], start[k])}
    assert {k.split(".")[0] for k in moved} == {"net_g", "net_d", "net_d_grad"} and len(moved) > 0.9 * len(one)
    # each discriminator's last bias moves the real and the fake logits alike, which the relativistic loss cancels:
    # its gradient is float noise in both runs (tests/test_train.py's variants meet the same)
    bad = [k for k in differ(one, two, 1e-2) if not k.endswith("linear2.bias")]
    assert not bad, bad[:5]
    micro = _spsr_run(tmp_path, bench_root, "micro", 1, means="micro")
    assert len([k for k in differ(one, micro, 0.1) if k.startswith("net_d")]) > 5


# ----------------------------------------------------------------------------------------------------------------
def test_a_smoke_spsr_run_evaluates_and_plots(tmp_path, bench_root, monkeypatch, capsys):
    """The loop closed, on a data folder holding BSD100 and Set5: a smoke SPSR run's export (arch spsr and its
    options, equal to the trained generator: no EMA) evaluates through `eval --model`, its SR images are the zoo
    SPSRNet's on the protocol's LR, and it is drawn beside bicubic in a PD plot (PSNR against SSIM)."""
    import numpy as np
    from PIL import Image
    from safetensors import safe_open
    from safetensors.torch import load_file

    from aesop_bench.data.transforms import matlab_lr, mod_crop, to_rgb
    from aesop_bench.imageio import read_image
    from aesop_bench.models.archs.spsr_arch import SPSRNet

    data = tmp_path / "data"
    data.mkdir()
    for s in ("BSD100", "Set5"):
        (data / s).symlink_to(bench_root / s)
    monkeypatch.chdir(tmp_path)
    # a larger learning rate than the smoke config's, so that two steps leave SR images that are not all black
    assert main(["train", "sr", "--config", "smoke_spsr", "--data-root", str(data), "--opt", f"val.data_root={data}",
                 "--opt", "steps=2", "--opt", "checkpoint_every=2", "--opt", "val.every=2", "--opt", "optim_g.lr=0.05",
                 "--quiet"]) == 0
    run = Path("runs/train/smoke_spsr")
    export = run / "ema.safetensors"
    with safe_open(str(export), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert meta["arch"] == "spsr" and meta["opts"] == SMOKE and meta["scale"] == 4
    weights = load_file(str(export))
    trained = load_file(str(run / "ckpt" / "step_0000002" / "net_g.safetensors"))
    assert weights.keys() == trained.keys() and all(torch.equal(weights[k], trained[k]) for k in weights)
    capsys.readouterr()
    assert main(["eval", "--model", str(export), "--sets", "set5", "--metrics", "psnr,ssim", "--data-root", str(data),
                 "--out", "runs/spsr", "--save-sr", "--quiet"]) == 0
    summary = json.loads(Path("runs/spsr/summary.json").read_text())
    assert summary["model"]["identity"].startswith("spsr[gc=4,nb=20,nf=4]-x4-")
    val = {r["metric"]: float(r["value"]) for r in _rows(run / "val.csv") if r["step"] == "2"}
    for m in ("psnr", "ssim"):
        assert summary["sets"]["set5"]["metrics"][m] == pytest.approx(val[m], abs=1e-9), m
    net = SPSRNet(upscale=4, **SMOKE).eval()
    net.load_state_dict(weights)
    (saved,) = [p for p in Path("runs/spsr").rglob("*.png") if p.stem.startswith("bird")]
    hr = mod_crop(to_rgb(read_image(data / "Set5" / "HR" / "bird.png")), 12)
    with torch.no_grad():
        sr = net(matlab_lr(hr, 4)[None].float() / 255)[0]
    want = (sr.clamp(0, 1) * 255).round().to(torch.uint8)
    got = torch.from_numpy(np.array(Image.open(saved).convert("RGB"))).permute(2, 0, 1)
    assert len(want.unique()) > 5 and got.shape == want.shape
    assert (got.int() - want.int()).abs().max() <= 1  # float rounding at a .5 boundary at most
    assert main(["eval", "--model", "bicubic", "--sets", "set5", "--metrics", "psnr,ssim", "--data-root", str(data),
                 "--out", "runs/bicubic", "--quiet"]) == 0
    assert main(["plot", "pd", "runs/spsr", "runs/bicubic", "--set", "set5", "--x", "ssim", "--y", "psnr", "--out",
                 "pd.png"]) == 0
    img = np.asarray(Image.open("pd.png").convert("L"))
    assert img.shape[0] > 300 and img.std() > 10
