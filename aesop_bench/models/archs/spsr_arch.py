"""SPSR (Ma et al. 2020, structure-preserving SR with gradient guidance), the paper's RRDB baseline,
with the module names of the authors' code so that their ``spsr.pth`` loads.

An RRDB trunk (its features after blocks 5, 10, 15 and 20 are tapped) and a gradient branch (on the
gradient-magnitude map of the LR, fused with the tapped features through four RRDBs of width 2nf) are
merged by a final RRDB. The authors' ``conv_block`` is a ``Sequential(conv[, LeakyReLU])``, so weights are
named ``NAME.0.weight``; their trunk is one flattened ``Sequential`` (``model.N``) whose last conv is also
registered as ``HR_conv0_new``, so the checkpoint names it twice, as this module does.
``forward`` returns the SR image; ``forward_all`` also the gradient-branch output and the LR gradient map, and
``forward(x, aux=True)`` the SR image with those two by name (:data:`SPSRNet.AUX_OUTPUTS`, what SPSR's training
objective reads). :func:`rrdb_state_dict_as_spsr` renames an RRDBNet's weights (ESRGAN's PSNR-oriented
``RRDB_PSNR_x4.pth``, SPSR's initialisation) to this module's names.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(in_c: int, out_c: int, k: int = 3, act: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(in_c, out_c, k, 1, (k - 1) // 2)]
    if act:
        layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class ResidualDenseBlock5C(nn.Module):
    def __init__(self, nc: int, gc: int = 32):
        super().__init__()
        self.conv1 = _conv(nc, gc, act=True)
        self.conv2 = _conv(nc + gc, gc, act=True)
        self.conv3 = _conv(nc + 2 * gc, gc, act=True)
        self.conv4 = _conv(nc + 3 * gc, gc, act=True)
        self.conv5 = _conv(nc + 4 * gc, nc)

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = self.conv2(torch.cat((x, x1), 1))
        x3 = self.conv3(torch.cat((x, x1, x2), 1))
        x4 = self.conv4(torch.cat((x, x1, x2, x3), 1))
        return self.conv5(torch.cat((x, x1, x2, x3, x4), 1)) * 0.2 + x


class RRDB(nn.Module):
    def __init__(self, nc: int, gc: int = 32):
        super().__init__()
        self.RDB1 = ResidualDenseBlock5C(nc, gc)
        self.RDB2 = ResidualDenseBlock5C(nc, gc)
        self.RDB3 = ResidualDenseBlock5C(nc, gc)

    def forward(self, x):
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class ShortcutBlock(nn.Module):
    """Holds the trunk (``sub``); SPSRNet runs it block by block to tap intermediate features."""

    def __init__(self, sub: nn.Sequential):
        super().__init__()
        self.sub = sub


class GradientMap(nn.Module):
    """Per-channel gradient magnitude with central differences and zero padding (``Get_gradient_nopadding``)."""

    def __init__(self):
        super().__init__()
        kv = torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        kh = torch.tensor([[0.0, 0.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
        self.weight_h = nn.Parameter(kh[None, None], requires_grad=False)
        self.weight_v = nn.Parameter(kv[None, None], requires_grad=False)

    def forward(self, x):
        n, c, h, w = x.shape
        flat = x.reshape(n * c, 1, h, w)
        v = F.conv2d(flat, self.weight_v, padding=1)
        hz = F.conv2d(flat, self.weight_h, padding=1)
        return torch.sqrt(v * v + hz * hz + 1e-6).reshape(n, c, h, w)


def _upsampler(nf: int, n_up: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(n_up):
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1),
                   nn.LeakyReLU(0.2, inplace=True)]
    return layers


class SPSRNet(nn.Module):
    # the outputs besides the SR image that forward(x, aux=True) returns by name: the gradient branch's HR gradient
    # map (SPSR's x_out_branch) and the LR gradient map it starts from
    AUX_OUTPUTS = ("branch", "lr_grad")

    def __init__(self, in_nc: int = 3, out_nc: int = 3, nf: int = 64, nb: int = 23, gc: int = 32, upscale: int = 4):
        super().__init__()
        if upscale & (upscale - 1) or upscale < 2:
            raise ValueError(f"SPSRNet supports scales 2, 4, 8, got {upscale}")
        n_up = int(math.log2(upscale))
        if nb < 20:
            raise ValueError("SPSRNet taps the trunk after blocks 5, 10, 15 and 20: it needs at least 20 blocks")
        self.nb = nb
        trunk = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)], nn.Conv2d(nf, nf, 3, 1, 1))
        self.HR_conv0_new = _conv(nf, nf, act=True)
        self.HR_conv1_new = _conv(nf, nf)
        self.model = nn.Sequential(nn.Conv2d(in_nc, nf, 3, 1, 1), ShortcutBlock(trunk), *_upsampler(nf, n_up),
                                   *self.HR_conv0_new.children())
        self.get_g_nopadding = GradientMap()
        self.b_fea_conv = _conv(in_nc, nf)
        for i in range(1, 5):
            setattr(self, f"b_concat_{i}", _conv(2 * nf, nf))
            setattr(self, f"b_block_{i}", RRDB(2 * nf, gc))
        self.b_LR_conv = _conv(nf, nf)
        self.b_module = nn.Sequential(*_upsampler(nf, n_up), nn.Conv2d(nf, nf, 3, 1, 1),
                                      nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(nf, nf, 3, 1, 1))
        self.conv_w = _conv(nf, out_nc, k=1)
        self.f_concat = _conv(2 * nf, nf)
        self.f_block = RRDB(2 * nf, gc)
        self.f_HR_conv0 = _conv(nf, nf, act=True)
        self.f_HR_conv1 = _conv(nf, out_nc)

    def forward_all(self, x):
        x_grad = self.get_g_nopadding(x)
        x = self.model[0](x)
        blocks = self.model[1].sub
        x_ori = x
        taps = []
        for i in range(20):
            x = blocks[i](x)
            if i % 5 == 4:
                taps.append(x)
        x = blocks[20:](x)
        x = x_ori + x
        x = self.HR_conv1_new(self.model[2:](x))

        b = self.b_fea_conv(x_grad)
        y = b
        for i, tap in enumerate(taps, start=1):
            y = getattr(self, f"b_concat_{i}")(getattr(self, f"b_block_{i}")(torch.cat([y, tap], dim=1)))
        y = self.b_LR_conv(y) + b
        branch = self.b_module(y)
        out_branch = self.conv_w(branch)
        out = self.f_concat(self.f_block(torch.cat([branch, x], dim=1)))
        out = self.f_HR_conv1(self.f_HR_conv0(out))
        return out_branch, out, x_grad

    def forward(self, x, aux: bool = False):
        if not aux:
            return self.forward_all(x)[1]
        branch, out, lr_grad = self.forward_all(x)
        return out, {"branch": branch, "lr_grad": lr_grad}


# An RRDBNet's layouts -> SPSR's names. SPSR's trunk keeps the older ESRGAN code's flattened 'model.N' names (the
# layout of the RRDB_PSNR_x4.pth its authors load by name), which an x4 RRDBNet maps onto one to one: first conv
# model.0, blocks model.1.sub.N, trunk conv model.1.sub.NB, the two upsampling convs model.3 and model.6, the HR conv
# model.8 (SPSR's HR_conv0_new); the last conv (model.10) has no counterpart in SPSR.
_RRDB_TO_SPSR = {
    # BasicSR's RRDBNet
    "basicsr": ("body", r"rdb(\d)", {"conv_first": "model.0", "conv_body": "model.1.sub.{nb}",
                                     "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8",
                                     "conv_last": "model.10"}),
    # the ESRGAN repository's RRDBNet_arch.py (its released files since June 2019)
    "esrgan": ("RRDB_trunk", r"RDB(\d)", {"conv_first": "model.0", "trunk_conv": "model.1.sub.{nb}",
                                          "upconv1": "model.3", "upconv2": "model.6", "HRconv": "model.8",
                                          "conv_last": "model.10"}),
}


def rrdb_state_dict_as_spsr(sd: dict) -> dict:
    """An x4 RRDBNet's weights under SPSR's names (see ``_RRDB_TO_SPSR``): BasicSR's layout (``conv_first``,
    ``body.N.rdbK``) and the ESRGAN repository's (``RRDB_trunk.N.RDBK``) are renamed; the older ESRGAN code's
    ``model.N`` layout already is SPSR's, and any other state dict is returned as it is.

    >>> import torch
    >>> sorted(rrdb_state_dict_as_spsr({"conv_first.weight": torch.zeros(1), "body.0.rdb2.conv3.bias": torch.zeros(1),
    ...                                 "conv_body.weight": torch.zeros(1), "conv_hr.bias": torch.zeros(1)}))
    ['model.0.weight', 'model.1.sub.0.RDB2.conv3.0.bias', 'model.1.sub.1.weight', 'model.8.bias']
    """
    import re

    for trunk, rdb, singles in _RRDB_TO_SPSR.values():
        blocks = {int(k.split(".")[1]) for k in sd if k.startswith(trunk + ".") and k.split(".")[1].isdigit()}
        if not blocks or not any(k.startswith("conv_first.") for k in sd):
            continue
        nb = max(blocks) + 1
        block = re.compile(rf"^{trunk}\.(\d+)\.{rdb}\.conv(\d)\.(weight|bias)$")
        out = {}
        for k, v in sd.items():
            m = block.match(k)
            if m:
                out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{m[4]}"] = v
                continue
            module, _, param = k.rpartition(".")
            out[f"{singles[module].format(nb=nb)}.{param}" if module in singles else k] = v
        return out
    return dict(sd)
