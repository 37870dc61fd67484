"""Real-world training as the authors ran it (their train_Realworld_AE_RRDB_DecoderFreeze.yml and
train_RealWorld_AESOP.yml): the shipped configs against a hand-transcribed table of the authors' YAML values, the
training-pair queue and the paired crop, the USM-sharpened targets, the frozen AE decoder, initialisation from
RealESRNet_x4plus, the vanilla GAN against BasicSR's GANLoss, exact resume with the queues and degradation
generators in the checkpoint, validation on a folder of HR/LR pairs, and the README-style smoke commands."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from aesop_bench.cli import main
from aesop_bench.errors import AesopBenchError, ConfigError
from aesop_bench.train.config import load_config
from aesop_bench.train.trainer import Trainer
from tests.references import basicsr_archs, basicsr_degradations
from tests.test_train import _killed_after

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "aesop_bench" / "configs"
SMOKE_AE_OPTS = {"num_feat": 16, "num_block": 2, "num_grow_ch": 8}
AUTHORS_LAYERS = {"conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}  # the YAML's perceptual_opt

# ----------------------------------------------------------------------------------------------------------------
# The authors' two YAML files, transcribed by hand: (their key, their value, how our loaded config holds it).
KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]


def _ae_decoder(c):
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder

    net = AutoEncoder(**c.generator.opts)
    d = net.decoder
    return d.conv_first.out_channels, len(d.body), d.body[0].rdb1.conv1.out_channels, net.encoder_kind


def _file(name):
    from aesop_bench import weights as wm

    return wm.entry(name).file


AUTHORS_REAL_AE = [  # options/train/AutoEncoder/train_Realworld_AE_RRDB_DecoderFreeze.yml
    ("model_type", "AEModel", lambda c: "AEModel" if c.kind == "ae" else c.kind),
    ("scale", 4, lambda c: c.data.scale),
    ("manual_seed", 0, lambda c: c.seed),
    ("num_gpu x batch_size_per_gpu", (4, 16), lambda c: (c.data.batch // c.data.micro_batch, c.data.micro_batch)),
    ("datasets.train.gt_size", 256, lambda c: c.data.patch),
    ("datasets.train.use_flip", True, lambda c: c.data.flip),
    ("datasets.train.use_rot", True, lambda c: c.data.rot),
    ("datasets.train.num_worker_per_gpu", 16, lambda c: c.data.workers),
    ("datasets.train.type PairedImageDataset (bicubic LR read)", True, lambda c: bool(c.data.lr_dirs)
     and c.degradation is None and not c.data.make_lr),
    ("network_g.type AutoEncoder_RRDBNet; dec_opt num_feat, num_block, num_grow_ch; the default encoder",
     (64, 23, 32, "rrdb"), _ae_decoder),
    ("path.pretrain_network_decoder", "RealESRNet_x4plus.pth", lambda c: _file(c.generator.init)),
    ("path.param_key_decoder", "params_ema", lambda c: c.generator.key),
    ("train.optim_g.lr", 1e-4, lambda c: c.optim_g.lr),
    ("train.optim_g.betas", [0.9, 0.99], lambda c: c.optim_g.betas),
    ("train.scheduler.milestones", [300000], lambda c: c.optim_g.milestones),
    ("train.scheduler.gamma", 1.0, lambda c: c.optim_g.gamma),
    ("train.total_iter", 100000, lambda c: c.steps),
    ("train.pixel_opt L1 loss_weight (no pixel_at_LR_opt)", [("ae_recon", 1.0)],
     lambda c: [(t.type, t.weight) for t in c.losses]),
    ("train.ema_decay", 0.999, lambda c: c.ema),
    ("train.freeze_decoder 9999999 (beyond total_iter: frozen throughout)", ["decoder"],
     lambda c: c.generator.freeze),
    ("val.val_freq", 5000, lambda c: c.val.every),
    ("val.metrics", ["psnr", "ssim"], lambda c: c.val.metrics),
    ("logger.print_freq", 100, lambda c: c.log_every),
    ("logger.save_checkpoint_freq", 5000, lambda c: c.checkpoint_every),
]

AUTHORS_DEGRADATION = {  # the top level and datasets.train of train_RealWorld_AESOP.yml
    "resize_prob": [0.2, 0.7, 0.1], "resize_range": [0.20, 1.5], "gaussian_noise_prob": 0.5, "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 2], "gray_noise_prob": 0.4, "jpeg_range": [50, 95], "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3], "resize_range2": [0.3, 1.2], "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 20], "poisson_scale_range2": [0.05, 2], "gray_noise_prob2": 0.4, "jpeg_range2": [50, 95],
    "blur_kernel_size": 21, "kernel_list": KERNELS, "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1, "blur_sigma": [0.2, 3], "betag_range": [0.5, 4], "betap_range": [1, 2],
    "blur_kernel_size2": 21, "kernel_list2": KERNELS, "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1, "blur_sigma2": [0.2, 1.5], "betag_range2": [0.5, 4], "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
}


def _term(c, name):
    return next((t for t in c.losses if t.type == name), None)


AUTHORS_REAL_AESOP = [  # options/train/AESOP/train_RealWorld_AESOP.yml
    ("scale", 4, lambda c: c.data.scale),
    ("manual_seed", 0, lambda c: c.seed),
    ("num_gpu x batch_size_per_gpu", (4, 12), lambda c: (c.data.batch // c.data.micro_batch, c.data.micro_batch)),
    ("l1_gt_usm", True, lambda c: "l1" in c.gt_usm),
    ("percep_gt_usm", True, lambda c: "perceptual" in c.gt_usm),
    ("gan_gt_usm", False, lambda c: "gan" in c.gt_usm),
    ("gt_size", 256, lambda c: c.data.patch),
    ("queue_size", 144, lambda c: c.data.queue_size),
    ("RealESRGANDataset crop_pad_size (fixed in its code)", 400, lambda c: c.data.crop_pad_size),
    ("datasets.train.use_hflip", True, lambda c: c.data.flip),
    ("datasets.train.use_rot", False, lambda c: c.data.rot),
    ("datasets.train.num_worker_per_gpu", 12, lambda c: c.data.workers),
    ("network_g RRDBNet num_feat, num_block, num_grow_ch",
     (64, 23, 32), lambda c: (c.generator.arch == "rrdb") and tuple(c.generator.opts[k] for k in
                                                                   ("num_feat", "num_block", "num_grow_ch"))),
    ("network_d.type", "UNetDiscriminatorSN", lambda c: {"unet": "UNetDiscriminatorSN"}[c.discriminator.arch]),
    ("network_d.num_feat", 64, lambda c: c.discriminator.opts["num_feat"]),
    ("network_d.skip_connection", True, lambda c: c.discriminator.opts["skip_connection"]),
    ("path.pretrain_network_g", "RealESRNet_x4plus.pth", lambda c: _file(c.generator.init)),
    ("path.param_key_g", "params_ema", lambda c: c.generator.key),
    ("train.optim_g.lr", 1e-4, lambda c: c.optim_g.lr),
    ("train.optim_g.betas", [0.9, 0.99], lambda c: c.optim_g.betas),
    ("train.optim_d.lr", 1e-4, lambda c: c.optim_d.lr),
    ("train.optim_d.betas", [0.9, 0.99], lambda c: c.optim_d.betas),
    ("train.scheduler.milestones", [400000], lambda c: (c.optim_g.milestones, c.optim_d.milestones)[0]
     if c.optim_g.milestones == c.optim_d.milestones else None),
    ("train.scheduler.gamma", 0.5, lambda c: c.optim_g.gamma if c.optim_g.gamma == c.optim_d.gamma else None),
    ("train.total_iter", 400000, lambda c: c.steps),
    ("train.pixel_opt and train.artifacts_opt (commented out)", (None, None),
     lambda c: (_term(c, "l1"), _term(c, "ldl"))),
    ("train.perceptual_opt.layer_weights", AUTHORS_LAYERS, lambda c: _term(c, "perceptual").layer_weights),
    ("train.perceptual_opt.perceptual_weight", 1.0, lambda c: _term(c, "perceptual").weight),
    ("train.aesop_opt.loss_weight", 1.0, lambda c: _term(c, "aesop").weight),
    ("train.aesop_opt.autoencoder_load.path", "RealAE_RRDBdecoder_100K.pth", lambda c: _file(c.ae)),
    ("train.gan_opt.gan_type", "vanilla", lambda c: _term(c, "gan").gan_type),
    ("train.gan_opt.loss_weight", 0.1, lambda c: _term(c, "gan").weight),
    ("train.ema_decay", 0.999, lambda c: c.ema),
    ("val.val_freq", 5000, lambda c: c.val.every),
    ("val.metrics", ["psnr"], lambda c: c.val.metrics),
    ("logger.print_freq", 100, lambda c: c.log_every),
    ("logger.save_checkpoint_freq", 5000, lambda c: c.checkpoint_every),
]


def test_real_configs_equal_the_authors_yaml_field_by_field():
    from aesop_bench import weights as wm
    from aesop_bench.data.degradations import DegradationConfig

    for name, table in (("real_ae_rrdb", AUTHORS_REAL_AE), ("real_aesop_rrdb", AUTHORS_REAL_AESOP)):
        cfg = load_config(name)
        wrong = [(key, want, got(cfg)) for key, want, got in table if got(cfg) != want]
        assert not wrong, (name, wrong)
    cfg = load_config("real_aesop_rrdb")
    assert cfg.degradation == AUTHORS_DEGRADATION
    parsed = DegradationConfig.from_dict(cfg.degradation)
    for key, want in AUTHORS_DEGRADATION.items():
        got = getattr(parsed, key)
        assert (list(got) if isinstance(got, tuple) else got) == want, key
    # the weights the configs name, as published: Real-ESRGAN's release and the AESOP authors' Drive folder
    esrnet, real_ae = wm.entry("realesrnet_x4plus"), wm.entry("real_aesop_ae")
    assert esrnet.urls == ("https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/RealESRNet_x4plus.pth",)
    assert esrnet.licence.startswith("BSD-3-Clause")
    assert real_ae.urls == ("gdrive-folder://1eTHcQXD8kI9nK6IjQ8DidA0qJbJZkeZ_/RealAE_RRDBdecoder_100K.pth",)
    assert real_ae.sha256 is None


def test_variant_and_smoke_configs_differ_where_their_headers_say():
    import yaml

    base = yaml.safe_load((CONFIGS / "real_aesop_rrdb.yaml").read_text())
    ldl = yaml.safe_load((CONFIGS / "real_aesop_rrdb_ldl.yaml").read_text())
    assert {k for k in set(base) | set(ldl) if base.get(k) != ldl.get(k)} == {"name", "losses"}
    assert ldl["losses"] == base["losses"] + [{"type": "ldl", "weight": 1.0}]
    real, smoke = load_config("real_aesop_rrdb"), load_config("smoke_real_aesop")
    from aesop_bench.data.degradations import DegradationConfig

    # the smoke run degrades with the authors' values (the module's defaults) and trains the same kind of objective
    assert DegradationConfig.from_dict(smoke.degradation) == DegradationConfig.from_dict(real.degradation)
    assert (smoke.gt_usm, _term(smoke, "gan").gan_type, _term(smoke, "gan").weight) == \
        (real.gt_usm, "vanilla", 0.1)
    assert smoke.data.queue_size % smoke.data.micro_batch == 0 and smoke.generator.init is None
    assert load_config("smoke_real_ae").generator.freeze == ["decoder"]


def test_real_world_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"config data\.queue_size 5"):
        load_config("smoke_real_aesop", ["data.queue_size=5"])  # micro-batches of 2
    with pytest.raises(ConfigError, match=r"data\.queue_size 6"):
        load_config("smoke_real_aesop", ["data.queue_size=6", "data.micro_batch=4"])
    with pytest.raises(ConfigError, match=r"degradation\.blur_sigmaa"):
        load_config("smoke_real_aesop", ["degradation={blur_sigmaa: [0.2, 3]}"])
    with pytest.raises(ConfigError, match=r"degradation\.kernel_prob"):
        load_config("smoke_real_aesop", ["degradation={kernel_prob: [0.5, 0.25, 0.12, 0.03, 0.12, 0.03]}"])
    with pytest.raises(ConfigError, match=r"data\.lr_dirs / data\.make_lr"):
        load_config("smoke_real_aesop", ["data.make_lr=true"])
    with pytest.raises(ConfigError, match=r"gt_usm: 'vgg'"):
        load_config("smoke_real_aesop", ["gt_usm=[vgg]"])
    with pytest.raises(ConfigError, match=r"generator\.freeze"):
        load_config("smoke_real_aesop", ["generator.freeze=[decoder]"])
    with pytest.raises(ConfigError, match=r"generator\.freeze: 'body'"):
        load_config("smoke_real_ae", ["generator.freeze=[body]"])
    with pytest.raises(ConfigError, match=r"losses gan gan_type: 'wgan'"):
        load_config("smoke_real_aesop", ["losses=[{type: gan, weight: 0.1, gan_type: wgan}]"])
    with pytest.raises(ConfigError, match=r"losses aesop: gan_type is not an option"):
        load_config("smoke_real_aesop", ["losses=[{type: aesop, gan_type: vanilla}]"])
    with pytest.raises(ConfigError, match=r"layer_weights: \{'conv9_9'"):
        load_config("smoke_real_aesop", ["losses=[{type: perceptual, layer_weights: {conv9_9: 1}}]"])
    with pytest.raises(ConfigError, match=r"crop_pad_size 40"):
        load_config("smoke_real_aesop", ["data.crop_pad_size=40"])
    with pytest.raises(AesopBenchError, match=r"config data: unknown key\(s\) queue"):
        load_config("smoke_real_aesop", ["data.queue=4"])


# ----------------------------------------------------------------------------------------------------------------
@pytest.fixture()
def data_root(tmp_path, bench_root) -> Path:
    """A data folder holding BSD100 and Set5, as `aesop-bench data download` leaves them."""
    root = tmp_path / "data"
    root.mkdir()
    for s in ("BSD100", "Set5"):
        (root / s).symlink_to(bench_root / s)
    return root


@pytest.fixture()
def smoke_ae(tmp_path) -> Path:
    """A small AE file (random weights) for the AESOP loss."""
    from aesop_bench.models.archs.autoencoder_arch import AutoEncoder
    from aesop_bench.train.checkpoint import save_weights

    torch.manual_seed(0)
    path = tmp_path / "smoke_ae.safetensors"
    opts = {**SMOKE_AE_OPTS, "enc_blocks": 1}
    save_weights(AutoEncoder(**opts), path, {"arch": "ae", "opts": opts})
    return path


def _trainer(name, out, root, over=(), resume=False, ae=None, log=None):
    cfg = load_config(name, list(over))
    if ae is not None:
        cfg.ae = str(ae)
    return Trainer(cfg, out, root, "cpu", resume=resume, log=log or (lambda m: None))


def _rows(path, drop=("sec_per_step",)):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def test_pairs_go_through_the_queue_and_the_crop_is_paired(tmp_path, data_root, smoke_ae):
    """Each micro-batch slot's pairs (its HR crops degraded whole, then HR and LR cut at one place for the batch)
    pass through its queue as Real-ESRGAN's _dequeue_and_enqueue does: while the queue fills the step trains on
    the new pairs, then on the first b pairs of the queue shuffled by a permutation of its generator, the new
    pairs taking their place. The reference below replays that algorithm on the pairs the slots made."""
    from aesop_bench.data.degradations import DegradationConfig, RealDegradation

    over = ["steps=5", "checkpoint_every=5", "val.every=0", "data.queue_size=4"]
    tr = _trainer("smoke_real_aesop", tmp_path / "run", data_root, over, ae=smoke_ae)
    assert tr.pairs.slots == [0, 1] and len(tr.pairs.queues) == 2
    made, seen = [], []
    synthesise = tr.pairs.synthesise

    def record(k, gt):
        before = tr.pairs.gens[k].get_state()
        lq, hr = synthesise(k, gt)
        made.append((k, gt.clone(), before, lq.clone(), hr.clone()))
        return lq, hr

    tr.pairs.synthesise = record
    queue_states = [g.get_state() for g in tr.pairs.queue_gens]
    step = tr.train_step
    tr.train_step = lambda lr, hr: seen.append((lr.clone(), hr.clone())) or step(lr, hr)
    tr.fit(progress=False)
    assert len(seen) == 5 and len(made) == 10

    size, b = 4, 2
    want = []
    queues = [{"lq": None, "gt": None, "ptr": 0, "g": torch.Generator()} for _ in range(2)]
    for q, state in zip(queues, queue_states):
        q["g"].set_state(state)
    for s in range(5):
        lrs, hrs = [], []
        for k in range(2):
            _, _, _, lq, gt = made[2 * s + k]
            q = queues[k]
            if q["lq"] is None:
                q["lq"], q["gt"] = torch.zeros(size, *lq.shape[1:]), torch.zeros(size, *gt.shape[1:])
            if q["ptr"] == size:  # full: shuffle, take the first b, put the new batch there
                idx = torch.randperm(size, generator=q["g"])
                q["lq"], q["gt"] = q["lq"][idx], q["gt"][idx]
                out = q["lq"][:b].clone(), q["gt"][:b].clone()
                q["lq"][:b], q["gt"][:b] = lq, gt
            else:
                q["lq"][q["ptr"]:q["ptr"] + b], q["gt"][q["ptr"]:q["ptr"] + b] = lq, gt
                q["ptr"] += b
                out = lq, gt
            lrs.append(out[0])
            hrs.append(out[1])
        want.append((torch.cat(lrs), torch.cat(hrs)))
    for s, ((lr, hr), (wl, wh)) in enumerate(zip(seen, want)):
        assert torch.equal(lr, wl) and torch.equal(hr, wh), s
    # from step 3 on the queue returns pairs made earlier, not the step's own
    assert not torch.equal(seen[2][1][:2], made[4][4])

    # the paired crop: the HR patch is a block of the HR crop at a multiple of the scale, the same block for every
    # image of the batch, and the LR patch is that block of the whole crop's degradation (same generator state)
    deg = RealDegradation(DegradationConfig.from_dict(tr.cfg.degradation), 4)
    for k, gt, before, lq, hr in made[:4]:
        assert gt.shape[-1] == 96 and hr.shape[-1] == 48 and lq.shape[-1] == 12
        full = deg(gt, torch.Generator().set_state(before))
        where = [(y, x) for y in range(0, 49, 4) for x in range(0, 49, 4)
                 if torch.equal(gt[..., y:y + 48, x:x + 48], hr)]
        assert len(where) == 1, where
        y, x = where[0]
        assert torch.equal(full[..., y // 4:y // 4 + 12, x // 4:x // 4 + 12], lq)


def _usm_reference(hr):
    """Real-ESRGAN's USMSharp (BasicSR's implementation, OpenCV's Gaussian kernel)."""
    usm = basicsr_degradations().img_process_util.USMSharp()
    return usm(hr)


def test_each_loss_sees_its_target_and_the_gan_is_vanillas(tmp_path, data_root, smoke_ae, vgg19_standin):
    """With gt_usm [l1, perceptual] (the authors' l1_gt_usm and percep_gt_usm) L1 and VGG19 compare the SR with the
    USM-sharpened HR (BasicSR's USMSharp) and the AESOP loss, LDL's artifact-map loss and the discriminator's real
    images use the plain HR (gan_gt_usm false); listing gan and aesop instead moves those two. The GAN terms are
    BasicSR's GANLoss of type vanilla on the discriminator's logits (weight 0.1 on the generator's only)."""
    basicsr_archs()
    from basicsr.losses.gan_loss import GANLoss

    from aesop_bench.train import losses as L

    losses = ("losses=[{type: l1, weight: 1}, {type: perceptual, weight: 1, layer_weights: "
              "{conv2_2: 0.1, conv3_4: 1, conv4_4: 1, conv5_4: 1}}, {type: aesop, weight: 1}, "
              "{type: ldl, weight: 1}, {type: gan, weight: 0.1, gan_type: vanilla}]")
    ref_gan = GANLoss("vanilla", real_label_val=1.0, fake_label_val=0.0, loss_weight=0.1)
    for usm in (["l1", "perceptual"], ["gan", "aesop"]):
        over = ["data.batch=2", "data.micro_batch=2", "data.queue_size=2", losses, f"gt_usm=[{', '.join(usm)}]"]
        tr = _trainer("smoke_real_aesop", tmp_path / "-".join(usm), data_root, over, ae=smoke_ae)
        for _ in range(2):  # the queue full: the step trains on pairs it returns
            lr, hr = next(tr._batches())
        sr, sr_ema, d_in, d_out = [], [], [], []
        def keep(*lists):
            def hook(module, inputs, output):  # returns None: the output stays as it is
                for store, t in zip(lists, (output, inputs[0])):
                    store.append(t.detach().clone())
            return hook

        tr.net_g.register_forward_hook(keep(sr))
        tr.net_g_ema.register_forward_hook(keep(sr_ema))
        tr.net_d.register_forward_hook(keep(d_out, d_in))
        logs = {k: float(v) for k, v in tr.train_step(lr, hr).items()}
        target = _usm_reference(hr)
        assert not torch.allclose(target, hr, atol=1e-3)

        def pick(term, target=target, hr=hr, usm=usm):
            return target if term in usm else hr

        with torch.no_grad():
            assert logs["l1"] == pytest.approx(float((sr[0] - pick("l1")).abs().mean()), rel=1e-4)
            assert logs["perceptual"] == pytest.approx(
                float(L.perceptual(tr.nets.vgg19, sr[0], pick("perceptual"), AUTHORS_LAYERS)), rel=1e-4)
            assert logs["aesop"] == pytest.approx(float(tr.nets.aesop_ae(sr[0], pick("aesop"))), rel=1e-4)
            assert logs["ldl"] == pytest.approx(float(L.ldl(hr, sr[0], sr_ema[0])), rel=1e-4, abs=1e-9)
        # the discriminator: on SR in the generator's step, then on its real images and on SR in its own
        assert len(d_in) == 3 and torch.equal(d_in[0], sr[0]) and torch.equal(d_in[2], sr[0])
        assert torch.allclose(d_in[1], pick("gan"), atol=2e-6) and (("gan" in usm) != torch.equal(d_in[1], hr))
        assert logs["gan"] * 0.1 == pytest.approx(float(ref_gan(d_out[0], True, is_disc=False)), rel=1e-5)
        assert logs["d_real"] == pytest.approx(float(ref_gan(d_out[1], True, is_disc=True)), rel=1e-5)
        assert logs["d_fake"] == pytest.approx(float(ref_gan(d_out[2], False, is_disc=True)), rel=1e-5)
        total = logs["l1"] + logs["perceptual"] + logs["aesop"] + logs["ldl"] + 0.1 * logs["gan"]
        assert logs["total_g"] == pytest.approx(total, rel=1e-5)
    # the perceptual term's VGG19 stops at conv5_4, and conv1_2 has no weight
    assert list(tr.nets.vgg19.layers) == list(AUTHORS_LAYERS)


@pytest.fixture()
def vgg19_standin(tmp_path):
    from benchmarks.standins import make_standins

    make_standins(tmp_path / "standins", which=("vgg19",))


@pytest.fixture()
def realesrnet(tmp_path, monkeypatch):
    """A RealESRNet_x4plus stand-in made by BasicSR's RRDBNet (the smoke size, random weights), registered as the
    manifest entry realesrnet_x4plus; its params_ema and params differ."""
    from benchmarks.standins import write_manifest

    rrdb = basicsr_archs().rrdb
    torch.manual_seed(1)
    ema = rrdb.RRDBNet(3, 3, scale=4, **SMOKE_AE_OPTS).state_dict()
    plain = rrdb.RRDBNet(3, 3, scale=4, **SMOKE_AE_OPTS).state_dict()
    path = tmp_path / "RealESRNet_x4plus.pth"
    torch.save({"params_ema": ema, "params": plain}, path)
    monkeypatch.setenv("AESOP_BENCH_WEIGHTS_MANIFEST",
                       str(write_manifest({"realesrnet_x4plus": path}, tmp_path / "manifest.json")))
    return ema, plain


def test_the_real_world_ae_decoder_stays_frozen(tmp_path, data_root, realesrnet):
    """real_ae_rrdb at the smoke size: the decoder starts from RealESRNet_x4plus's params_ema and is held fixed:
    no gradient, not in the optimiser (no Adam state in the checkpoint), the same tensors after training in the
    network, its EMA and the exported AE, while the encoder trains."""
    from safetensors.torch import load_file

    ema, _ = realesrnet
    over = ["steps=3", "checkpoint_every=3", "generator.init=realesrnet_x4plus", "generator.key=params_ema",
            "optim_g.lr=0.01"]
    tr = _trainer("smoke_real_ae", tmp_path / "ae", data_root, over)
    net = tr.net_g
    decoder = dict(net.decoder.named_parameters())
    encoder = [p for p in net.encoder_parameters()]
    assert all(torch.equal(net.decoder.state_dict()[k], ema[k]) for k in ema)
    in_opt = {id(p) for g in tr.opt_g.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in decoder.values()) and all(id(p) in in_opt for p in encoder)
    before = [p.detach().clone() for p in encoder]
    tr.fit(progress=False)
    assert all(not p.requires_grad and p.grad is None for p in decoder.values())
    assert all(torch.equal(net.decoder.state_dict()[k], ema[k]) for k in ema)
    assert all(torch.equal(tr.net_g_ema.decoder.state_dict()[k], ema[k]) for k in ema)
    assert sum(not torch.equal(a, p) for a, p in zip(before, encoder)) == len(encoder)
    state = torch.load(tmp_path / "ae" / "ckpt" / "step_0000003" / "state.pt", weights_only=True)
    assert len(state["opt_g"]["state"]) == len(encoder)
    exported = load_file(str(tmp_path / "ae" / "ae_ema.safetensors"))
    assert all(torch.equal(exported[f"decoder.{k}"], ema[k]) for k in ema)


def test_the_generator_starts_from_realesrnet(tmp_path, data_root, smoke_ae, realesrnet):
    ema, plain = realesrnet
    over = ["generator.init=realesrnet_x4plus", "generator.key=params_ema", "val.every=0"]
    tr = _trainer("smoke_real_aesop", tmp_path / "sr", data_root, over, ae=smoke_ae)
    for net in (tr.net_g, tr.net_g_ema):
        got = net.state_dict()
        assert all(torch.equal(got[k], ema[k]) for k in ema)
        assert not all(torch.equal(got[k], plain[k]) for k in plain)


def test_a_killed_real_world_run_resumes_as_an_uninterrupted_one(tmp_path, data_root, smoke_ae, monkeypatch):
    """Killed after step 6 (its last checkpoint at step 4, the queues full since step 2) and resumed, the run's
    logs and weights equal an uninterrupted run's; the checkpoint holds each slot's queue (as exact uint8) and
    generators, without which the resumed run differs. Both runs on one thread: a training step's last bits may
    follow the count, which a busy machine would otherwise choose differently for each run."""
    monkeypatch.setenv("AESOP_BENCH_THREADS", "1")
    over = ["steps=8", "checkpoint_every=4", "log_every=1", "val.every=0", "data.queue_size=4"]
    full = tmp_path / "full"
    _trainer("smoke_real_aesop", full, data_root, over, ae=smoke_ae).fit(progress=False)
    cut = tmp_path / "cut"
    _killed_after(_trainer("smoke_real_aesop", cut, data_root, over, ae=smoke_ae), 6)
    assert len(_rows(cut / "train_log.csv")) == 6
    state = torch.load(cut / "ckpt" / "step_0000004" / "state.pt", weights_only=True)
    assert [s["slot"] for s in state["pairs"]] == [0, 1]
    assert state["pairs"][0]["queue"]["gt"]["uint8_over_255"].dtype == torch.uint8
    import shutil

    bare = tmp_path / "no-pairs"
    shutil.copytree(cut, bare)
    _trainer("smoke_real_aesop", cut, data_root, over, ae=smoke_ae, resume=True).fit(progress=False)
    assert _rows(cut / "train_log.csv") == _rows(full / "train_log.csv")
    for f in ("net_g", "net_g_ema", "net_d"):
        a, b = (r / "ckpt" / "step_0000008" / f"{f}.safetensors" for r in (cut, full))
        assert a.read_bytes() == b.read_bytes(), f
    assert (cut / "ema.safetensors").read_bytes() == (full / "ema.safetensors").read_bytes()
    # without the saved queues and generators the same resume trains on other pairs
    path = bare / "ckpt" / "step_0000004" / "state.pt"
    saved = torch.load(path, weights_only=True)
    del saved["pairs"]
    torch.save(saved, path)
    said = []
    _trainer("smoke_real_aesop", bare, data_root, over, ae=smoke_ae, resume=True, log=said.append).fit(progress=False)
    assert any("start afresh" in m for m in said)
    assert _rows(bare / "train_log.csv")[4:] != _rows(full / "train_log.csv")[4:]


def _y(img):
    """BT.601 luma of RGB in [0, 1] (BasicSR's rgb2ycbcr, y_only), in [0, 1]."""
    w = torch.tensor([65.481, 128.553, 24.966], dtype=torch.float64).view(1, 3, 1, 1)
    return ((img.double() * w).sum(1, keepdim=True) + 16.0) / 255.0


def test_validation_on_a_folder_of_hr_lr_pairs(tmp_path, data_root, smoke_ae, bench_root):
    """val.set a folder with HR/ and LR/ (here Set5 cropped to a multiple of 4, its LR made by PIL's box filter): the
    validation compares the SR of each LR file with its HR, PSNR on Y with a 4-pixel border and 1e-8 in the MSE,
    as computed here image by image; SSIM as the paper protocol's metric computes it on the same pairs."""
    from PIL import Image

    from aesop_bench.imageio import quantize, read_image
    from aesop_bench.metrics.metric import Metric
    from aesop_bench.protocols import get_protocol

    pairs = tmp_path / "pairs"
    (pairs / "HR").mkdir(parents=True)
    (pairs / "LR").mkdir()
    for f in sorted((bench_root / "Set5" / "HR").glob("*.png")):
        im = Image.open(f).convert("RGB")
        w, h = im.size
        im = im.crop((0, 0, w - w % 4, h - h % 4))
        im.save(pairs / "HR" / f.name)
        im.resize((im.size[0] // 4, im.size[1] // 4), Image.BOX).save(pairs / "LR" / f.name)
    over = ["steps=2", "checkpoint_every=2", "val.every=2", f"val.set={pairs}", "val.metrics=[psnr, ssim]"]
    tr = _trainer("smoke_real_aesop", tmp_path / "run", data_root, over, ae=smoke_ae)
    tr.fit(progress=False)
    with open(tmp_path / "run" / "val.csv", newline="") as f:
        val = {(r["step"], r["set"], r["metric"]): float(r["value"]) for r in csv.DictReader(f)}
    assert set(val) == {("2", str(pairs), "psnr"), ("2", str(pairs), "ssim")}
    protocol = get_protocol("paper", test_data="own", lr_source="folder", modcrop=4)
    psnrs, ssims = [], []
    with torch.no_grad():
        for f in sorted((pairs / "HR").glob("*.png")):
            hr, lr = read_image(f)[None], read_image(pairs / "LR" / f.name)[None]
            sr = quantize(tr.net_g_ema(lr.float() / 255).clamp(0, 1))
            a, b = _y(sr.float() / 255)[..., 4:-4, 4:-4], _y(hr.float() / 255)[..., 4:-4, 4:-4]
            psnrs.append(10 * math.log10(1 / (float(((a - b) ** 2).mean()) + 1e-8)))
            ssims.append(float(Metric("ssim", protocol).score(sr, hr, lr)[0]))
    assert val[("2", str(pairs), "psnr")] == pytest.approx(sum(psnrs) / 5, abs=1e-6)
    assert val[("2", str(pairs), "ssim")] == pytest.approx(sum(ssims) / 5, abs=1e-9)
    # a folder whose LR names do not match is refused at the start, naming it
    (pairs / "LR" / "baby.png").rename(pairs / "LR" / "infant.png")
    with pytest.raises(AesopBenchError, match=r"HR/ and LR/ images of the same names.*baby\.png"):
        _trainer("smoke_real_aesop", tmp_path / "run2", data_root, over, ae=smoke_ae)


def test_the_readme_smoke_commands_run_without_downloaded_weights(tmp_path, data_root, monkeypatch, capsys):
    """`aesop-bench train ae --config smoke_real_ae` then `aesop-bench train sr --config smoke_real_aesop --ae
    AE --opt val.data_root=DATA`, as the README gives them (shortened to a few steps), in a fresh folder with
    BSD100 and Set5 only: each exits 0, the SR run validates on Set5, and no weights were fetched."""
    from aesop_bench import weights as wm

    monkeypatch.chdir(tmp_path)
    short = ["--opt", "steps=4", "--opt", "checkpoint_every=4"]
    assert main(["train", "ae", "--config", "smoke_real_ae", "--data-root", "data", "--quiet", *short]) == 0
    ae = Path("runs/train/smoke_real_ae/ae_ema.safetensors")
    assert ae.is_file()
    capsys.readouterr()
    assert main(["train", "sr", "--config", "smoke_real_aesop", "--data-root", "data", "--ae", str(ae), "--opt",
                 "val.data_root=data", "--quiet", *short, "--opt", "val.every=4"]) == 0
    printed = capsys.readouterr()
    assert "validation at step 4 on set5: psnr" in printed.err, printed.err[-2000:]
    run = Path("runs/train/smoke_real_aesop")
    assert {p.name for p in (run / "ckpt" / "step_0000004").iterdir()} >= {"net_g.safetensors", "net_d.safetensors",
                                                                             "state.pt"}
    assert all(wm.check(wm.entry(n)).status == "missing" for n in ("vgg19", "realesrnet_x4plus", "real_aesop_ae"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(tmp_path, kind, config, data_root, out, over, nproc=1, extra=()):
    import os
    import subprocess
    import sys

    args = ["-m", "aesop_bench", "train", kind, "--config", config, "--data-root", str(data_root), "--quiet",
            *[a for o in over for a in ("--opt", o)], *extra]
    args += [] if "--resume" in extra else ["--out", str(out)]
    launch = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(_free_port())]
    proc = subprocess.run([sys.executable, *(launch if nproc > 1 else []), *args], capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=3600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_train_as_one(tmp_path, data_root, smoke_ae):
    """torchrun with two CPU processes (gloo): the frozen-decoder AE trains as in one process (DDP registers only
    the encoder: no unused-parameter search), and the real-world pairs of the two micro-batch slots, one per process,
    are those of one process holding both; killed after its first checkpoint and resumed, the two-process run ends
    with the same queues and weights as one uninterrupted process."""
    from safetensors.torch import load_file

    from aesop_bench.train import checkpoint as ck
    from aesop_bench.train.nets import build_generator

    over = ["steps=4", "checkpoint_every=2", "val.every=0"]
    for n in (1, 2):
        _train(tmp_path, "ae", "smoke_real_ae", data_root, tmp_path / f"ae{n}", over, n)
    a, b = (load_file(str(tmp_path / f"ae{n}" / "ckpt" / "step_0000004" / "net_g.safetensors")) for n in (1, 2))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    ck.seed_all(0)
    start = build_generator(load_config("smoke_real_ae")).state_dict()
    assert all(torch.equal(b[k], start[k]) for k in start if k.startswith("decoder."))
    assert not all(torch.equal(b[k], start[k]) for k in start if not k.startswith("decoder."))

    over = ["steps=4", "checkpoint_every=2", "val.every=0", "data.queue_size=4", "losses=[{type: aesop, weight: 1}]"]
    extra = ["--ae", str(smoke_ae)]
    _train(tmp_path, "sr", "smoke_real_aesop", data_root, tmp_path / "sr1", over, 1, extra)
    _train(tmp_path, "sr", "smoke_real_aesop", data_root, tmp_path / "sr2", over[1:] + ["steps=2"], 2, extra)
    _train(tmp_path, "sr", "smoke_real_aesop", data_root, tmp_path / "sr2", [], 2,
           [*extra, "--resume", str(tmp_path / "sr2"), "--opt", "steps=4"])
    one, two = (torch.load(tmp_path / f"sr{n}" / "ckpt" / "step_0000004" / "state.pt", weights_only=True)
                for n in (1, 2))
    assert [s["slot"] for s in one["pairs"]] == [s["slot"] for s in two["pairs"]] == [0, 1]
    for s1, s2 in zip(one["pairs"], two["pairs"]):
        assert torch.equal(s1["degradation"], s2["degradation"]) and torch.equal(s1["queue_rng"], s2["queue_rng"])
        for part in ("lq", "gt"):
            assert torch.equal(s1["queue"][part]["uint8_over_255"], s2["queue"][part]["uint8_over_255"])
    a, b = (load_file(str(tmp_path / f"sr{n}" / "ckpt" / "step_0000004" / "net_g.safetensors")) for n in (1, 2))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_smoke_real_world_run_evaluates_and_renders_in_table6(tmp_path, data_root, smoke_ae, shared_data,
                                                                 monkeypatch, capsys):
    """The loop closed: a smoke real-world run's exported EMA network evaluates on a RealSRv3-shaped folder (LR
    images only, NIQE, the paper's no-reference metric that needs no network) through `eval --model`, and the run
    renders in `report --layout table6`, its NIQE equal to the metric applied to the SR images it saved."""
    import numpy as np
    from PIL import Image

    from aesop_bench import weights as wm
    from aesop_bench.imageio import read_image
    from aesop_bench.metrics.niqe import niqe
    from aesop_bench.models.identity import family
    from aesop_bench.protocols import get_protocol

    wm.add("niqe_pristine", shared_data / "weights" / "niqe" / "modelparameters.mat")
    monkeypatch.chdir(tmp_path)
    short = ["--opt", "steps=2", "--opt", "checkpoint_every=2", "--opt", "val.every=0"]
    assert main(["train", "sr", "--config", "smoke_real_aesop", "--data-root", str(data_root), "--ae", str(smoke_ae),
                 "--quiet", *short]) == 0
    ema = Path("runs/train/smoke_real_aesop/ema.safetensors")
    assert ema.is_file()
    lr = data_root / "RealSRv3" / "LR"  # LR only, as the real-world set is
    lr.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("Canon_001_LR4", "Nikon_002_LR4"):
        Image.fromarray(rng.integers(0, 256, (52, 60, 3), dtype=np.uint8)).save(lr / f"{name}.png")
    capsys.readouterr()
    assert main(["eval", "--model", str(ema), "--sets", "realsr_v3", "--metrics", "niqe", "--data-root",
                 str(data_root), "--out", "runs/real_smoke", "--save-sr", "--quiet"]) == 0
    summary = json.loads(Path("runs/real_smoke/summary.json").read_text())
    got = summary["sets"]["realsr_v3"]["metrics"]["niqe"]
    srs = sorted(Path("runs/real_smoke/sr").rglob("*.png"))
    assert len(srs) == 2 and all(read_image(p).shape[-2:] == (208, 240) for p in srs)
    crop = get_protocol("paper").effective_niqe_crop
    direct = [float(niqe(read_image(p).float().unsqueeze(0) / 255, crop_border=crop)) for p in srs]
    assert got == pytest.approx(sum(direct) / 2, abs=1e-6)
    assert family(summary["model"]["identity"]) == "RRDB"
    capsys.readouterr()
    assert main(["report", "runs/real_smoke", "--layout", "table6", "--format", "md", "--out", "reports/t6"]) == 0
    table = Path("reports/t6.md").read_text()
    assert "| NIQE ↓ | RealSRv3 |" in table and f"{got:.4f}" in table
