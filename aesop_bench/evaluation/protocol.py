"""Evaluation protocols: named, versioned sets of conventions.

A protocol fixes everything besides the model that moves a number:

=============  ==========================================  =========================================
field          ``basicsr`` (default)                       ``matlab``
=============  ==========================================  =========================================
grayscale      read as RGB (channel replicated)            kept single-channel, evaluated as it is
y_round        no (Y as float)                             yes (MATLAB ``rgb2ycbcr`` on uint8)
modcrop        the scale (HR cropped to a multiple of it)  the scale
crop_border    the scale                                   the scale
lr_source      ``make``: MATLAB-bicubic LR from the        the same
               modcropped HR (``folder``: read LR files)
=============  ==========================================  =========================================

``basicsr`` is the convention of the paper's evaluation code (BasicSR's
``calculate_psnr``/``calculate_ssim`` with ``test_y_channel``); ``matlab`` is
the classic convention of the published bicubic numbers. The paper's own test
data were cropped to a multiple of 12 (``--modcrop 12``).

A protocol records itself (``as_dict``) with every result, and a results folder
refuses results of another protocol, so numbers computed under different
conventions are never mixed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..errors import AesopBenchError

LR_SOURCES = ("make", "folder")
GRAYSCALE_RULES = ("rgb", "keep")


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int = 1
    scale: int = 4
    modcrop: int | None = None  # None: the scale
    crop_border: int | None = None  # None: the scale
    y_round: bool = False
    grayscale: str = "rgb"
    lr_source: str = "make"

    def __post_init__(self):
        if self.grayscale not in GRAYSCALE_RULES:
            raise AesopBenchError(f"protocol grayscale rule {self.grayscale!r} unknown; use one of {GRAYSCALE_RULES}")
        if self.lr_source not in LR_SOURCES:
            raise AesopBenchError(f"LR source {self.lr_source!r} unknown; use one of {LR_SOURCES}")
        if self.scale < 1:
            raise AesopBenchError(f"scale must be a positive integer, got {self.scale}")
        mc = self.effective_modcrop
        if mc % self.scale:
            raise AesopBenchError(f"modcrop {mc} must be a multiple of the scale {self.scale}")

    @property
    def effective_modcrop(self) -> int:
        return self.scale if self.modcrop is None else int(self.modcrop)

    @property
    def effective_crop_border(self) -> int:
        return self.scale if self.crop_border is None else int(self.crop_border)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["modcrop"] = self.effective_modcrop
        d["crop_border"] = self.effective_crop_border
        return d

    def with_overrides(self, **kw) -> "Protocol":
        kw = {k: v for k, v in kw.items() if v is not None}
        return replace(self, **kw) if kw else self


PROTOCOLS: dict[str, Protocol] = {
    "basicsr": Protocol(name="basicsr", y_round=False, grayscale="rgb"),
    "matlab": Protocol(name="matlab", y_round=True, grayscale="keep"),
}


def get_protocol(name: str, **overrides) -> Protocol:
    try:
        base = PROTOCOLS[name.lower()]
    except KeyError:
        raise AesopBenchError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None
    return base.with_overrides(**overrides)


def protocol_from_dict(d: dict) -> Protocol:
    return Protocol(**{k: d[k] for k in Protocol.__dataclass_fields__ if k in d})
