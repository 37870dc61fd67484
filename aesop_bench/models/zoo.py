"""The model zoo: names -> how to build the model.

Each entry is a factory taking the scale and the device; entries that carry
weights add their weights record (architecture, weights entry, state-dict key).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import AesopBenchError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import SRModel


def _bicubic(scale: int) -> "SRModel":
    from .bicubic import Bicubic

    return Bicubic(scale)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    build: Callable[[int], "SRModel"]
    arch: str = "none"
    identity: str = ""  # known without building the model (weights hash, version)


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("bicubic", "MATLAB imresize bicubic upsampling of the 8-bit LR", _bicubic,
             identity="bicubic-matlab-uint8-v1"),
]}


def load_model(name: str, scale: int = 4, device: str = "cpu") -> "SRModel":
    try:
        entry = ZOO[name]
    except KeyError:
        raise AesopBenchError(f"unknown model {name!r}; choose one of: {', '.join(ZOO)}") from None
    return entry.build(scale).to(device)
