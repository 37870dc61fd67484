"""LoRA adapters on RRDBNet (convolutions) and SwinIR (linear layers): output unchanged at step 0, merged equals
unmerged after training, only the factors train, merged networks load strictly into fresh ones, refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from aesop_bench.errors import ConfigError
from aesop_bench.models.archs.rrdbnet_arch import RRDBNet
from aesop_bench.models.archs.swinir_arch import SwinIR
from aesop_bench.models.lora import (LoRALayer, add_lora, freeze_base, load_lora, lora_parameters, lora_state_dict,
                                     merge_lora)


def small_rrdb():
    torch.manual_seed(0)
    return RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, scale=4)


def small_swinir():
    torch.manual_seed(0)
    return SwinIR(upscale=2, img_size=16, window_size=4, depths=(2, 2), embed_dim=24, num_heads=(2, 2),
                  num_feat=16, drop_path_rate=0.0)


NETS = {"rrdb": (small_rrdb, 12), "swinir": (small_swinir, 16)}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _train(net, lr_size, steps=5, seed=1):
    """A few Adam steps on random data, L1 against random targets; returns the optimizer."""
    freeze_base(net)
    opt = torch.optim.Adam(lora_parameters(net), lr=1e-2)
    g = _gen(seed)
    net.train()
    for _ in range(steps):
        x = torch.rand(2, 3, lr_size, lr_size, generator=g)
        hr = lr_size * getattr(net, "upscale", getattr(net, "scale", None))
        y = torch.rand(2, 3, hr, hr, generator=g)
        opt.zero_grad()
        F.l1_loss(net(x), y).backward()
        opt.step()
    net.eval()
    return opt


@pytest.mark.parametrize("arch", NETS)
def test_output_unchanged_at_step_0(arch):
    make, size = NETS[arch]
    net = make().eval()
    x = torch.rand(1, 3, size, size, generator=_gen(5))
    with torch.no_grad():
        before = net(x)
        add_lora(net, rank=4, generator=_gen())
        after = net(x)
    assert torch.equal(before, after)  # B = 0: the adapters add exact zeros


def test_placement_and_parameter_counts():
    rrdb, swin = small_rrdb(), small_swinir()
    n_conv = sum(isinstance(m, nn.Conv2d) for m in rrdb.modules())
    names = add_lora(rrdb, rank=4, generator=_gen())
    assert len(names) == n_conv and all(isinstance(rrdb.get_submodule(n), LoRALayer) for n in names)
    names = add_lora(swin, rank=4, generator=_gen())
    leaves = sorted({n.rsplit(".", 1)[1] for n in names})
    assert leaves == ["fc1", "fc2", "proj", "qkv"] and len(names) == 4 * 4  # 4 blocks, 4 linears each
    assert not any(isinstance(m, LoRALayer) and isinstance(m.base_layer, nn.Conv2d) for m in swin.modules())
    # rank-4 factor sizes, counted by hand: linear in->out: 4 (in + out); conv k x k: 4 (in k^2 + out)
    qkv = swin.get_submodule(names[0])
    assert [p.numel() for p in (qkv.lora_A.weight, qkv.lora_B.weight)] == [4 * 24, 72 * 4]
    conv = rrdb.get_submodule("body.0.rdb1.conv2")  # 16 + 8 -> 8, 3x3
    assert [p.numel() for p in (conv.lora_A.weight, conv.lora_B.weight)] == [4 * 24 * 9, 8 * 4]


def test_conv_wrapper_is_peft_conv_lora_by_hand():
    """A k x k conv with stride, padding and dilation: base(x) + s * conv1x1(conv_kxk(x, A), B), computed with
    F.conv2d directly; the merged weight gives the same output as one conv."""
    torch.manual_seed(3)
    base = nn.Conv2d(5, 7, 3, stride=2, padding=2, dilation=2)
    layer = LoRALayer(base, rank=3, alpha=6.0, generator=_gen())
    with torch.no_grad():
        layer.lora_B.weight.normal_()
    x = torch.randn(2, 5, 11, 13, dtype=torch.float64)
    w, b = base.weight.double(), base.bias.double()
    a, bb = layer.lora_A.weight.double(), layer.lora_B.weight.double()
    low = F.conv2d(F.conv2d(x, a, stride=2, padding=2, dilation=2), bb)
    expected = F.conv2d(x, w, b, stride=2, padding=2, dilation=2) + 2.0 * low
    assert torch.allclose(layer.double()(x), expected, rtol=0, atol=1e-12)
    merged = layer.merged()
    assert type(merged) is nn.Conv2d
    assert torch.allclose(merged(x), expected, rtol=0, atol=1e-12)


def test_init_is_kaiming_uniform_from_the_generator():
    torch.manual_seed(0)
    lin = nn.Linear(40, 10)
    state = torch.get_rng_state()
    layer = LoRALayer(lin, rank=6, alpha=6, generator=_gen(7))
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is not touched
    same = LoRALayer(nn.Linear(40, 10), rank=6, alpha=6, generator=_gen(7))
    other = LoRALayer(nn.Linear(40, 10), rank=6, alpha=6, generator=_gen(8))
    assert torch.equal(layer.lora_A.weight, same.lora_A.weight)
    assert not torch.equal(layer.lora_A.weight, other.lora_A.weight)
    assert torch.count_nonzero(layer.lora_B.weight) == 0
    # kaiming_uniform_(a=sqrt(5)) on a fan-in of 40: U(-1/sqrt(40), 1/sqrt(40)), variance bound^2 / 3
    bound = 1 / math.sqrt(40)
    a = layer.lora_A.weight
    assert a.abs().max() <= bound and a.abs().max() > 0.9 * bound
    ref = torch.empty(6, 40)
    nn.init.kaiming_uniform_(ref, a=math.sqrt(5))
    assert abs(a.var().item() - bound ** 2 / 3) < 0.25 * bound ** 2 / 3
    assert abs(ref.abs().max().item() - bound) < 0.1 * bound  # the same bound as torch's own initialiser


@pytest.mark.parametrize("arch", NETS)
def test_training_changes_only_lora_and_merged_equals_unmerged(arch):
    make, size = NETS[arch]
    net = make()
    base_before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(1, 3, size, size, generator=_gen(9))
    with torch.no_grad():
        plain_out = net.eval()(x)
    names = add_lora(net, rank=4, generator=_gen())
    opt = _train(net, size)
    # the optimizer holds exactly the LoRA factors, and the base parameters never got a gradient
    held = [p for g in opt.param_groups for p in g["params"]]
    assert {id(p) for p in held} == {id(p) for p in lora_parameters(net)} and len(held) == 2 * len(names)
    lora_ids = {id(p) for p in lora_parameters(net)}
    assert all(p.grad is None for p in net.parameters() if id(p) not in lora_ids)
    # every base tensor (parameters and buffers) bit for bit as before; every B moved
    after = net.state_dict()
    for k, v in base_before.items():
        key = k if k in after else k.rsplit(".", 1)[0] + ".base_layer." + k.rsplit(".", 1)[1]
        assert torch.equal(after[key], v), key
    assert all(torch.count_nonzero(net.get_submodule(n).lora_B.weight) > 0 for n in names)

    merged = merge_lora(net)
    with torch.no_grad():
        lora_out, merged_out = net(x), merged(x)
    assert type(merged) is type(net) and not any(isinstance(m, LoRALayer) for m in merged.modules())
    assert any(isinstance(m, LoRALayer) for m in net.modules())  # the original is left wrapped
    change = (lora_out - plain_out).abs().max().item()
    err = (merged_out - lora_out).abs().max().item()
    # measured (float32, CPU, outputs of order 1): rrdb err 3.3e-7 for a change of 0.38, swinir 1.5e-7 for 0.056
    assert change > 1e-2 and err < 1e-6, (change, err)
    # in float64 the two computations agree to rounding
    with torch.no_grad():
        net64 = net.double()
        err64 = (merge_lora(net64)(x.double()) - net64(x.double())).abs().max().item()
    assert err64 < 1e-13, err64  # measured 6.1e-16 (rrdb), 2.2e-16 (swinir)


@pytest.mark.parametrize("arch", NETS)
def test_merged_state_dict_loads_strictly_into_a_fresh_network(arch):
    make, size = NETS[arch]
    net = make()
    add_lora(net, rank=2, alpha=4, generator=_gen())
    _train(net, size, steps=2)
    merged = merge_lora(net)
    fresh = make()
    assert list(merged.state_dict()) == list(fresh.state_dict())
    fresh.load_state_dict(merged.state_dict(), strict=True)
    x = torch.rand(1, 3, size, size, generator=_gen(4))
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), merged.eval()(x))
    assert all(p.requires_grad for p in merged.parameters())


def test_lora_state_dict_round_trip():
    net = small_rrdb()
    add_lora(net, rank=3, generator=_gen())
    _train(net, 12, steps=2)
    sd = lora_state_dict(net)
    assert sd and all(".lora_A." in k or ".lora_B." in k for k in sd)
    other = small_rrdb()
    add_lora(other, rank=3, generator=_gen(99))
    load_lora(other, sd)
    x = torch.rand(1, 3, 12, 12, generator=_gen(2))
    with torch.no_grad():
        assert torch.equal(other.eval()(x), net.eval()(x))
    wrong_rank = small_rrdb()
    add_lora(wrong_rank, rank=2, generator=_gen())
    with pytest.raises(ConfigError, match="shapes"):
        load_lora(wrong_rank, sd)
    fewer = small_rrdb()
    add_lora(fewer, rank=3, targets=["conv_first"], generator=_gen())
    with pytest.raises(ConfigError, match="unexpected"):
        load_lora(fewer, sd)


def test_targets_patterns():
    net = small_swinir()
    names = add_lora(net, rank=2, targets="*.attn.qkv, conv_first", generator=_gen())
    assert names == ["conv_first"] + [f"layers.{i}.residual_group.blocks.{j}.attn.qkv" for i in (0, 1) for j in (0, 1)]


@pytest.mark.parametrize("rank", [0, -1, 2.0, True])
def test_bad_rank_is_refused(rank):
    with pytest.raises(ConfigError, match="rank must be a whole number of at least 1"):
        add_lora(small_rrdb(), rank=rank)


def test_refusals():
    with pytest.raises(ConfigError, match=r"\['\*\.attn\.qkv'\] match no nn.Linear or nn.Conv2d layer of RRDBNet"):
        add_lora(small_rrdb(), rank=2, targets=["conv_first", "*.attn.qkv"])
    with pytest.raises(ConfigError, match="alpha must be a positive number"):
        add_lora(small_rrdb(), rank=2, alpha=0)
    with pytest.raises(ConfigError, match="targets is empty"):
        add_lora(small_rrdb(), rank=2, targets=[])
    net = small_rrdb()
    add_lora(net, rank=2)
    with pytest.raises(ConfigError, match="already has LoRA layers"):
        add_lora(net, rank=2)
    with pytest.raises(ConfigError, match="no LoRA layers to train"):
        freeze_base(small_rrdb())
    with pytest.raises(ConfigError, match="grouped convolution"):
        LoRALayer(nn.Conv2d(4, 4, 3, groups=2), rank=2, alpha=2)
