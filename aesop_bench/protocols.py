"""Evaluation protocols: named, versioned sets of conventions.

A protocol fixes everything besides the model that moves a number:

============  ===================================  ===========================  ===========================
field         ``paper`` (default)                  ``basicsr``                  ``matlab``
============  ===================================  ===========================  ===========================
modcrop       12 (the authors' mod-12 test data)   the scale                    the scale
crop_border   the scale                            the scale                    the scale
grayscale     read as RGB (channel replicated)     read as RGB                  kept single-channel
y_round       no (Y as float)                      no                           yes (MATLAB ``rgb2ycbcr``)
psnr_eps      1e-8 added to the MSE (0-1 scale):   0 (identical images: inf)    0 (identical images: inf)
              identical images give 80 dB
niqe_crop     0 (IQA-PyTorch's default)            the border crop              the border crop
lr_source     ``make``: MATLAB-bicubic LR from     the same                     the same
              the modcropped HR
lr_precision  ``double``: that bicubic in double   ``uint8``: MATLAB's          ``uint8``
              precision, rounded once to 8 bits    ``imresize`` of the 8-bit
              (the authors' ``fp64mod12`` data)    image, rounded after each
                                                   pass (the classic LR files)
test_data     ``ldl``: Set14, Manga109,            ``own``: every set's own     ``own``
              General100, Urban100, DIV2K-val      files
              from LDL's HR and LR files (the HR
              cropped to a multiple of the
              scale); the others as above
============  ===================================  ===========================  ===========================

``paper`` is the protocol of the AESOP paper's numbers: the authors' evaluation code (BasicSR's PSNR/SSIM
conventions in their PyTorch metric functions, with 1e-8 in the MSE) on the authors' test data, and NIQE as
IQA-PyTorch computes it (no border crop). Their test configurations (``test_Synthetic_AESOP_*.yml``) read
Set14, Manga109, General100, Urban100 and DIV2K100 from LDL's distributed test data (``sr_dataset_fromLDL``:
pre-made LR files) and BSD100 and LSDIR from HR cropped to a multiple of 12 with LR made by MATLAB bicubic in
double precision and rounded once to 8 bits (``sr_dataset_fp64mod12``; version 2: version 1 made that LR on
MATLAB's uint8 path, which rounds after each pass and moves 10.5% of BSD100's LR values);
:mod:`aesop_bench.data.ldl` fetches LDL's files, and a set whose LDL files are not
at hand falls back to its own files under the mod-12 rule, said in the log and recorded per set in the run's
summary (``data``). ``basicsr`` is BasicSR's own
``calculate_psnr``/``calculate_ssim`` with ``test_y_channel`` on HR cropped to the scale, and ``matlab`` the
classic convention of the published bicubic numbers; both make LR as the classic LR files were made, MATLAB's
``imresize`` of the 8-bit image (the Set5 LR files of SwinIR's test sets, bit for bit).

A protocol records itself (``as_dict``) with every result, and a results folder refuses results of another
protocol, so numbers computed under different conventions are never mixed: a ``paper`` folder written before
``lr_precision`` existed reads as ``uint8`` (:func:`normalised`) and is refused by a version-2 run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .errors import AesopBenchError

LR_SOURCES = ("make", "folder")
LR_PRECISIONS = ("uint8", "double")  # how made LR is computed: MATLAB's uint8 path, or double rounded once
GRAYSCALE_RULES = ("rgb", "keep")
TEST_DATA = ("own", "ldl")


@dataclass(frozen=True)
class Protocol:
    """A named set of evaluation conventions; every stored value records the protocol it was computed under
    (:meth:`as_dict`). ``modcrop``, ``crop_border`` and ``niqe_crop`` left None follow the scale (the border crop).

    >>> p = Protocol(name="mine", scale=2, y_round=True)
    >>> p.effective_modcrop, p.effective_crop_border, p.with_overrides(crop_border=0).effective_crop_border
    (2, 2, 0)
    >>> Protocol(name="bad", scale=4, modcrop=6)
    Traceback (most recent call last):
    ...
    aesop_bench.errors.AesopBenchError: modcrop 6 must be a multiple of the scale 4
    """

    name: str
    version: int = 1
    scale: int = 4
    modcrop: int | None = None  # None: the scale
    crop_border: int | None = None  # None: the scale
    y_round: bool = False
    grayscale: str = "rgb"
    lr_source: str = "make"
    psnr_eps: float = 0.0  # added to the MSE on the 0-1 scale (the AESOP code: 1e-8)
    niqe_crop: int | None = None  # None: crop_border
    test_data: str = "own"  # ldl: the sets LDL distributes come from its HR and LR files (data/ldl.py)
    # made LR (lr_source make): MATLAB imresize of the 8-bit HR (uint8: rounded after each pass, what every record
    # written before this field meant) or of the HR in double precision rounded once (double)
    lr_precision: str = "uint8"

    @property
    def effective_niqe_crop(self) -> int:
        return self.effective_crop_border if self.niqe_crop is None else int(self.niqe_crop)

    def __post_init__(self):
        if self.grayscale not in GRAYSCALE_RULES:
            raise AesopBenchError(f"protocol grayscale rule {self.grayscale!r} unknown; use one of {GRAYSCALE_RULES}")
        if self.lr_source not in LR_SOURCES:
            raise AesopBenchError(f"LR source {self.lr_source!r} unknown; use one of {LR_SOURCES}")
        if self.test_data not in TEST_DATA:
            raise AesopBenchError(f"test data {self.test_data!r} unknown; use one of {TEST_DATA}")
        if self.lr_precision not in LR_PRECISIONS:
            raise AesopBenchError(f"LR precision {self.lr_precision!r} unknown; use one of {LR_PRECISIONS}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale < 1:
            raise AesopBenchError(f"scale must be a positive integer, got {self.scale!r}")
        for field_name in ("modcrop", "crop_border", "niqe_crop"):
            v = getattr(self, field_name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise AesopBenchError(f"--{field_name.replace('_', '-')} {v!r}: must be a whole number")
            if v is not None and int(v) < (1 if field_name == "modcrop" else 0):
                raise AesopBenchError(f"--{field_name.replace('_', '-')} {v}: must be "
                                      f"{'a positive integer' if field_name == 'modcrop' else '0 or more'}")
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
        d["niqe_crop"] = self.effective_niqe_crop
        return d

    def with_overrides(self, **kw) -> "Protocol":
        kw = {k: v for k, v in kw.items() if v is not None}
        unknown = sorted(set(kw) - (set(self.__dataclass_fields__) - {"name", "version"}))
        if unknown:
            fields = ", ".join(f for f in self.__dataclass_fields__ if f not in ("name", "version"))
            raise AesopBenchError(f"protocol option {', '.join(unknown)} unknown; the options are {fields}")
        return replace(self, **kw) if kw else self


PROTOCOLS: dict[str, Protocol] = {
    # version 2: LR made in double precision, rounded once (version 1: MATLAB's uint8 path)
    "paper": Protocol(name="paper", version=2, modcrop=12, y_round=False, grayscale="rgb", psnr_eps=1e-8,
                      niqe_crop=0, test_data="ldl", lr_precision="double"),
    "basicsr": Protocol(name="basicsr", y_round=False, grayscale="rgb"),
    "matlab": Protocol(name="matlab", y_round=True, grayscale="keep"),
}


def get_protocol(name: str, **overrides) -> Protocol:
    """A registered protocol (``paper``, ``basicsr``, ``matlab``; any case) with ``overrides`` (None: unchanged).

    >>> get_protocol("paper").effective_modcrop, get_protocol("Paper", modcrop=4, scale=None).effective_modcrop
    (12, 4)
    """
    try:
        base = PROTOCOLS[name.lower()]
    except KeyError:
        raise AesopBenchError(f"unknown protocol {name!r}; choose one of: {', '.join(PROTOCOLS)}") from None
    return base.with_overrides(**overrides)


DEFAULT_PROTOCOL = "paper"
# the fields that move a number (the name and version only label them)
NUMERIC_FIELDS = ("scale", "modcrop", "crop_border", "y_round", "grayscale", "lr_source", "psnr_eps", "niqe_crop",
                  "test_data", "lr_precision")


def normalised(d: dict) -> dict:
    """A stored protocol record with the fields added since it was written filled in with what they meant then
    (no MSE offset; NIQE cropped by the border crop; every set's own files; LR made on MATLAB's uint8 path).

    >>> old = {k: v for k, v in get_protocol("paper").as_dict().items() if k != "lr_precision"}
    >>> old["version"] = 1
    >>> differences(old, get_protocol("paper").as_dict())
    {'lr_precision': ('uint8', 'double')}
    """
    return Protocol(**{k: d[k] for k in Protocol.__dataclass_fields__ if k in d}).as_dict() if d else d


def differences(a: dict, b: dict) -> dict[str, tuple]:
    """The fields that move numbers and differ between two protocol records: ``{field: (a, b)}``.

    >>> differences(get_protocol("basicsr").as_dict(), get_protocol("matlab").as_dict())
    {'y_round': (False, True), 'grayscale': ('rgb', 'keep')}
    """
    a, b = normalised(a), normalised(b)
    return {k: (a.get(k), b.get(k)) for k in NUMERIC_FIELDS if a.get(k) != b.get(k)}
