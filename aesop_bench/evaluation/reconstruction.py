"""A source whose "SR" image is a network's reconstruction of the HR image itself: the auto-encoder, validated
during its training with the same runner, metrics and protocol as any SR model (a :class:`~.sources.Source`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from ..data.sets import ResolvedSet
from ..errors import ConfigError
from ..fileutil import sha256_cached
from ..protocols import Protocol


class ReconstructionSource:
    """``net`` (float ``(N, C, H, W)`` in [0, 1] -> the same) applied to each HR image cropped as the protocol
    crops it; its output quantised to 8 bits as a saved image would be. Nothing is cached: the network changes
    as it trains."""

    source_type = "model"
    writes_sr = False
    held_threads: int | None = None  # torch's thread count the network keeps on the CPU (None: any)
    timer: Callable[[str, float, float, int], None] | None = None  # as NetworkSource's


    def __init__(self, net, name: str, device: str):
        self.net, self.name, self.device = net, name, device
        self.identity = f"reconstruction:{name}"

    def prepare_set(self, set_name: str, res: ResolvedSet, log) -> None:
        """Refuse a set with no HR images: there is nothing to reconstruct."""
        if res.hr_dir is None:
            raise ConfigError(f"set {set_name!r} has no HR images: an auto-encoder reconstructs HR images")

    def row_digest(self, set_name: str, hr_file: Path) -> str:
        """The HR file's content: the only file a value comes from."""
        return hashlib.sha256(sha256_cached(hr_file).encode()).hexdigest()[:20]

    def describe_set(self, set_name: str, res: ResolvedSet) -> dict:
        """The set's data record (:attr:`ResolvedSet.data`)."""
        return res.data

    def record(self, sets: dict[str, dict]) -> dict:
        """Nothing beyond the model's record."""
        return {}

    def images(self, res: ResolvedSet, set_name: str, hr_files: list[Path], protocol: Protocol,
               need_lr: bool) -> list[tuple]:
        """``[(hr, None, reconstruction), ...]``, uint8 ``(C, H, W)``."""
        import time

        import torch

        from ..data.transforms import mod_crop, require_evaluable, to_rgb
        from ..imageio import quantize, read_image
        from ..threads import holding

        if need_lr:
            raise ConfigError("an auto-encoder's reconstruction has no LR image: leave out LR-referenced metrics "
                              "(lr_psnr)")
        out = []
        with torch.no_grad():
            for f in hr_files:
                hr = read_image(f)
                if protocol.grayscale == "rgb":
                    hr = to_rgb(hr)
                require_evaluable(hr, protocol, f)
                hr = mod_crop(hr, protocol.effective_modcrop)
                start = time.perf_counter()
                with holding(self.held_threads):
                    rec = quantize(self.net(hr[None].float().div(255).to(self.device)).cpu())[0]
                if self.timer is not None:
                    self.timer(set_name, time.perf_counter() - start, hr.shape[-2] * hr.shape[-1] / 1e6, 1)
                out.append((hr, None, rec))
        return out
