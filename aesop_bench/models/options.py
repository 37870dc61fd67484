"""How a model runs: device, precision, tiling and batch, in one validated object.

The CLI (``--device --precision --tile --tile-overlap --batch``), :func:`aesop_bench.evaluate`, recipes and the
evaluator build one :class:`RunOptions` and pass it whole; the model builders read it. Torch-free, so that a run
whose values are all stored never imports torch.

>>> RunOptions(precision="bf16", tile=128).identity("rrdb[]-x4-0123abcd")
'rrdb[]-x4-0123abcd-bf16-tile128o32'
>>> RunOptions(tile=4)
Traceback (most recent call last):
...
aesop_bench.errors.AesopBenchError: --tile 4 --tile-overlap 32: the tile must be at least 8 LR pixels and larger than the overlap, and the overlap 0 or more (e.g. --tile 128 --tile-overlap 32); leave --tile out to run whole images
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..distributed import check_device_name
from ..errors import AesopBenchError
from .identity import run_suffix

PRECISIONS = ("fp32", "bf16")
MIN_TILE = 8  # LR pixels (a SwinIR window); smaller tiles only multiply the work and the seams
AUTO_BATCH = (16, 4_000_000)  # on a GPU: at most 16 images and 4 million HR pixels per batch


def check_tiling(tile: int | None, overlap: int) -> None:
    """Refuse tile settings that cannot work: a tile of at least MIN_TILE LR pixels, larger than the overlap."""
    if tile is None:
        return
    if tile < MIN_TILE or not 0 <= overlap < tile:
        raise AesopBenchError(f"--tile {tile} --tile-overlap {overlap}: the tile must be at least {MIN_TILE} LR "
                              "pixels and larger than the overlap, and the overlap 0 or more (e.g. --tile 128 "
                              "--tile-overlap 32); leave --tile out to run whole images")


@dataclass(frozen=True)
class RunOptions:
    """Where and how a network runs. ``precision``, ``tile`` and ``tile_overlap`` change its outputs and are part
    of its identity (:meth:`identity`); ``device`` is part of the SR cache's key; ``batch`` (images per network
    call; None: :data:`AUTO_BATCH` on a GPU, 1 on the CPU) is not part of either: its values agree with one
    image per call to float32 rounding (an 8-bit SR pixel can move by one level), and are shared with it.

    >>> RunOptions(device="cuda").batch_limits(), RunOptions(batch=4).batch_limits()
    ((16, 4000000), (4, None))
    """

    device: str = "cpu"
    precision: str = "fp32"
    tile: int | None = None
    tile_overlap: int = 32
    batch: int | None = None

    def __post_init__(self):
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise AesopBenchError(f"--precision {self.precision!r} unknown; use {' or '.join(PRECISIONS)}")
        check_tiling(self.tile, self.tile_overlap)
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int)
                                       or self.batch < 1):
            raise AesopBenchError(f"--batch {self.batch!r}: give a whole number of images, 1 or more (1: one image "
                                  "per network call), or leave it out")

    def on(self, device: str) -> "RunOptions":
        """The same options on another device."""
        return replace(self, device=str(device))

    def identity(self, base: str) -> str:
        """A network's identity ``base`` (architecture, weights) with what of these options changes its outputs."""
        return base + run_suffix(self.precision, self.tile, self.tile_overlap)

    def batch_limits(self) -> tuple[int, int | None]:
        """Images per batch and HR pixels per batch (None: no bound): ``batch`` images when given, else
        :data:`AUTO_BATCH` on a GPU and one image on the CPU (where a batch runs no faster)."""
        if self.batch is not None:
            return self.batch, None
        return AUTO_BATCH if self.device.startswith("cuda") else (1, None)
