"""Running a network on LR images: device, precision, and tiled inference for large images.

Tiling (``tile`` = LR tile size, ``tile_overlap`` LR pixels shared by neighbours): tiles start every
``tile - overlap`` pixels, the last one flush with the border. Each tile is run on its own and only its
inner part is kept: ``overlap // 2`` LR pixels are dropped on every side that borders another tile, where
the tile's own padding would show. Where kept parts still overlap (next to the last tile) they are
averaged. A network whose receptive field reaches no further than ``overlap // 2`` LR pixels therefore
gives exactly its whole-image output; deeper networks differ only by how much they see beyond that
margin. Peak memory is bounded by the tile size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..determinism import deterministic
from ..errors import AesopBenchError
from .options import RunOptions


def tile_starts(size: int, tile: int, stride: int) -> list[int]:
    """Where tiles of ``tile`` pixels start along ``size``, every ``stride``, the last flush with the border.

    >>> tile_starts(100, 40, 30), tile_starts(30, 40, 30)
    ([0, 30, 60], [0])
    """
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _kept(start: int, length: int, size: int, margin_lo: int, margin_hi: int) -> tuple[int, int]:
    """The part of a tile [start, start + length) that is kept: inner margins dropped, image borders kept."""
    lo = start if start == 0 else start + margin_lo
    hi = start + length if start + length == size else start + length - margin_hi
    return lo, hi


def tiled_forward(net: nn.Module, x: torch.Tensor, scale: int, tile: int, overlap: int) -> torch.Tensor:
    """``net(x)`` computed tile by tile (module docstring), in float32."""
    if not 0 <= overlap < tile:
        raise AesopBenchError(f"--tile-overlap {overlap} must lie in [0, --tile {tile})")
    b, c, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)
    m_lo, m_hi = overlap // 2, overlap - overlap // 2
    out = weight = None
    for top in tile_starts(h, th, tile - overlap):
        r0, r1 = _kept(top, th, h, m_lo, m_hi)
        for left in tile_starts(w, tw, tile - overlap):
            c0, c1 = _kept(left, tw, w, m_lo, m_hi)
            patch = net(x[..., top:top + th, left:left + tw])
            if out is None:  # overlapping tiles are summed and averaged in float32 (bf16 would round each sum)
                out = patch.new_zeros(b, patch.shape[1], h * scale, w * scale, dtype=torch.float32)
                weight = patch.new_zeros(1, 1, h * scale, w * scale, dtype=torch.float32)
            keep = patch[..., (r0 - top) * scale:(r1 - top) * scale, (c0 - left) * scale:(c1 - left) * scale].float()
            out[..., r0 * scale:r1 * scale, c0 * scale:c1 * scale] += keep
            weight[..., r0 * scale:r1 * scale, c0 * scale:c1 * scale] += 1
    return out / weight


class NetModel:
    """An SR network as the evaluator runs it.

    The evaluator's model interface (this class, :class:`~aesop_bench.models.bicubic.Bicubic`, or any object
    with the same members): ``__call__`` takes a float32 ``(N, C, h, w)`` batch in ``[0, 1]`` (8-bit values,
    C = 3, or 1 for grayscale under the ``matlab`` protocol) and returns ``(N, C, h * scale, w * scale)``
    (values outside ``[0, 1]`` are clamped by the evaluator's quantisation); ``name``, ``scale``; ``to(device)``;
    ``identity``, a stable string that changes whenever the outputs could change (architecture, weights hash,
    precision, tiling); SR images are cached under it.

    ``identity`` is given without the run options; :meth:`RunOptions.identity` appends what of them changes the
    outputs.

    >>> import torch
    >>> m = NetModel("up", torch.nn.Upsample(scale_factor=2), 2, "up-x2", RunOptions(tile=8, tile_overlap=2))
    >>> m.identity, tuple(m(torch.rand(1, 3, 20, 20)).shape)
    ('up-x2-tile8o2', (1, 3, 40, 40))
    """

    def __init__(self, name: str, net: nn.Module, scale: int, identity: str, run: RunOptions = RunOptions()):
        self.name, self.scale, self.run = name, scale, run
        self.precision, self.tile, self.tile_overlap = run.precision, run.tile, run.tile_overlap
        self.identity = run.identity(identity)
        self.net = net.eval()
        self.device = torch.device(run.device)
        self.net.to(self.device)

    def to(self, device):
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    @torch.no_grad()
    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr.to(self.device, torch.float32)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else \
            torch.autocast(self.device.type, enabled=False)
        with deterministic(), ctx:
            if self.tile:
                out = tiled_forward(self.net, x, self.scale, self.tile, self.tile_overlap)
            else:
                out = self.net(x)
        if not isinstance(out, torch.Tensor):
            raise AesopBenchError(f"model {self.name!r} returned a {type(out).__name__}, not a tensor; it must "
                                  "return the SR batch (N, C, H, W) alone (wrap a network that returns several "
                                  "outputs)")
        return out.float()
