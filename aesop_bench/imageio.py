"""Image files <-> tensors: the one place that decides colour, dtype and range.

Reading gives a ``uint8`` tensor ``(C, H, W)`` with ``C`` = 1 (grayscale) or 3
(RGB). Rules for other files, applied here and nowhere else:

* palette images are expanded to RGB;
* an alpha channel is dropped when it is fully opaque; images with real
  transparency are refused (an SR benchmark has no defined answer for them);
* 16-bit and floating-point images are refused: benchmark images are 8-bit,
  and silently rescaling them would change every metric;
* unreadable or truncated files are refused with the file named.

Writing takes ``uint8`` ``(C, H, W)`` and writes PNG (lossless).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import AesopBenchError
from .fileutil import atomic_write_bytes

def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's header (Pillow reads 16-bit RGB PNGs as 8-bit RGB, keeping the high byte)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 else None


def _to_8bit_array(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if img.format == "PNG" and _png_bit_depth(path) == 16:
        mode = "I;16"  # refused below, as 16-bit grayscale is
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or mode.startswith("I;"):
        raise AesopBenchError(
            f"{path}: {mode} image (16-bit or floating point); benchmark images must be 8-bit. "
            "Convert it to an 8-bit PNG first (e.g. with PIL: img.point(lambda v: v / 257).convert('L'))."
        )
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode in ("RGBA", "LA"):
        arr = np.asarray(img)
        if arr[..., -1].min() < 255:
            raise AesopBenchError(
                f"{path}: image has a transparent alpha channel; SR metrics are undefined on it. "
                "Flatten it onto a background and save it without alpha."
            )
        return np.ascontiguousarray(arr[..., :-1])
    if mode == "L":
        return np.asarray(img)
    if mode != "RGB":
        img = img.convert("RGB")
    return np.asarray(img)


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an 8-bit image as a ``uint8`` tensor ``(C, H, W)``, C in {1, 3}."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = _to_8bit_array(img, path)
    except AesopBenchError:
        raise
    except FileNotFoundError:
        raise AesopBenchError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise AesopBenchError(
            f"{path}: cannot read image ({exc}); the file is corrupt or not an image. "
            "Replace it (for a benchmark set: `aesop-bench data download SET`) or remove it."
        ) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).contiguous()


def encode_png(img: torch.Tensor, compress_level: int = 1) -> bytes:
    if img.dtype != torch.uint8 or img.dim() != 3:
        raise ValueError(f"encode_png expects uint8 (C, H, W), got {img.dtype} {tuple(img.shape)}")
    arr = img.permute(1, 2, 0).cpu().numpy()
    if arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_image(path: str | os.PathLike, img: torch.Tensor) -> None:
    """Write a ``uint8`` ``(C, H, W)`` tensor as PNG, atomically."""
    atomic_write_bytes(path, encode_png(img))


def to_float(img: torch.Tensor) -> torch.Tensor:
    """uint8 0-255 -> float32 [0, 1]."""
    return img.to(torch.float32) / 255.0


def to_unit_rgb(img: torch.Tensor) -> torch.Tensor:
    """A network input: float32 in [0, 1] with three channels (uint8 scaled; grayscale replicated)."""
    x = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x


def quantize(img: torch.Tensor) -> torch.Tensor:
    """float [0, 1] -> uint8 as BasicSR's ``tensor2img``: clamp to [0, 1], scale by 255, round (half to even)."""
    return torch.round(img.detach().to(torch.float32).clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """An image file's ``(width, height)`` from its header (the pixels are not read); None where it cannot be
    read."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
