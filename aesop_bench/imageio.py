"""Image files <-> tensors: the one place that decides colour, dtype and range.

Reading gives a ``uint8`` tensor ``(C, H, W)`` with ``C`` = 1 (grayscale) or 3
(RGB). Rules for other files, applied here and nowhere else:

* palette images are expanded to RGB;
* an alpha channel is dropped when it is fully opaque; images with real
  transparency are refused (an SR benchmark has no defined answer for them);
* 16-bit and floating-point images are refused (PNG, TIFF, PPM/PGM, any
  format): benchmark images are 8-bit, and silently rescaling them would
  change every metric;
* colour spaces other than grayscale and RGB (CMYK, LAB, YCbCr, HSV TIFFs) are
  refused: their conversion to RGB needs a colour profile these files do not
  fix;
* animated files (PNG, WebP, GIF, TIFF with several frames) are refused:
  which frame is the image is not defined;
* an EXIF orientation other than 1 is refused: readers disagree on it
  (OpenCV turns the image, PIL does not), so the pixels compared would depend
  on the reader;
* unreadable or truncated files are refused with the file named.

Each refusal is an :class:`~.errors.InputError` (this image cannot be used; the others may still be fine); a file
that is not there is a :class:`~.errors.MissingFileError`.

Writing takes ``uint8`` ``(C, H, W)`` and writes PNG (lossless).
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import AesopBenchError, ConfigError, InputError, MissingFileError
from .fileutil import atomic_write_bytes

def _png_bit_depth(path: Path) -> int | None:
    """The bit depth in a PNG's header (Pillow reads 16-bit RGB PNGs as 8-bit RGB, keeping the high byte)."""
    with open(path, "rb") as f:
        head = f.read(26)
    return head[24] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) == 26 else None


def _bits(img: Image.Image, path: Path) -> int:
    """The largest bits per sample the file declares (Pillow reads 16-bit RGB PNG, TIFF and PPM as 8-bit RGB)."""
    if img.format == "PNG":
        return _png_bit_depth(path) or 8
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        return max(bits) if isinstance(bits, tuple) else int(bits)
    if img.format == "PPM" and img.tile and isinstance(img.tile[0].args, tuple) and len(img.tile[0].args) > 1:
        return 16 if int(img.tile[0].args[1]) > 255 else 8  # the maxval of the header
    return 8


_MODES = ("1", "L", "P", "RGB", "RGBA", "LA")


def _check_rules(img: Image.Image, path: Path) -> None:
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise InputError(f"{path}: an animated or multi-page {img.format} with {frames} frames; which frame is "
                         "the image is not defined. Save the frame you mean as a PNG")
    orientation = img.getexif().get(0x0112)
    if orientation not in (None, 1):
        raise InputError(f"{path}: EXIF orientation {orientation} (the pixels are stored turned or mirrored); "
                         "readers disagree on applying it. Save the image as it should be seen, without the "
                         "orientation tag (e.g. PIL: ImageOps.exif_transpose(img).save(...))")
    if img.mode not in _MODES and not img.mode.startswith("I") and img.mode != "F":
        raise InputError(f"{path}: a {img.mode} image; benchmark images are grayscale or RGB, and converting "
                         f"{img.mode} needs a colour profile. Convert it to an 8-bit RGB PNG with the "
                         "profile it was made with")


def _check_header(img: Image.Image, path: Path) -> None:
    """The rules read from the file's header, before its pixels are decoded."""
    _check_rules(img, path)
    bits = _bits(img, path)
    if bits > 8 or img.mode in ("I", "F") or img.mode.startswith("I;"):
        what = f"{bits}-bit" if bits > 8 else f"{img.mode} (16-bit or floating point)"
        raise InputError(
            f"{path}: {what} image; benchmark images must be 8-bit. Convert it to an 8-bit PNG first "
            "(e.g. with OpenCV: cv2.imwrite('x.png', (img / 257).round().astype('uint8'))).")


def _to_8bit_array(img: Image.Image, path: Path) -> np.ndarray:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode == "1":
        img = img.convert("L")
        mode = "L"
    if mode in ("RGBA", "LA"):
        arr = np.asarray(img)
        if arr[..., -1].min() < 255:
            raise InputError(
                f"{path}: image has a transparent alpha channel; SR metrics are undefined on it. "
                "Flatten it onto a background and save it without alpha."
            )
        return np.ascontiguousarray(arr[..., :-1])
    if mode == "L":
        return np.asarray(img)
    return np.asarray(img)  # RGB


PIXELS_ENV = "AESOP_BENCH_MAX_PIXELS"


@contextmanager
def _pixel_limit():
    """``$AESOP_BENCH_MAX_PIXELS``: the largest image read (Pillow's limit, about 179 million, without it), set
    for the read only: the caller's own Pillow setting is left as it was."""
    raw = os.environ.get(PIXELS_ENV, "").strip()
    before = Image.MAX_IMAGE_PIXELS
    if raw:
        try:
            Image.MAX_IMAGE_PIXELS = max(1, int(raw)) // 2  # Pillow refuses twice its MAX_IMAGE_PIXELS
        except ValueError:
            raise ConfigError(f"${PIXELS_ENV}={raw!r}: give a whole number of pixels") from None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an 8-bit image as a ``uint8`` tensor ``(C, H, W)``, C in {1, 3}."""
    path = Path(path)
    try:
        with _pixel_limit(), Image.open(path) as img:
            _check_header(img, path)
            img.load()
            arr = _to_8bit_array(img, path)
    except AesopBenchError:
        raise
    except Image.DecompressionBombError as exc:  # an image over the limit: the others may be within it
        raise InputError(
            f"{path}: {exc.args[0] if exc.args else exc}. The limit guards against decompression bombs; for a "
            f"file you trust, raise it with ${PIXELS_ENV}=PIXELS") from None
    except FileNotFoundError:
        raise MissingFileError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"{path}: cannot read image ({exc}); the file is corrupt or not an image. "
            "Replace it (for a benchmark set: `aesop-bench data download SET`) or remove it."
        ) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).contiguous()


def encode_png(img: torch.Tensor, compress_level: int = 1) -> bytes:
    """A uint8 ``(C, H, W)`` tensor as PNG bytes (lossless; level 1: fast, a little larger)."""
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


def width_height(path: str | os.PathLike) -> tuple[int, int] | None:
    """An image file's ``(width, height)`` from its header (the pixels are not read); None where it cannot be
    read."""
    try:
        with Image.open(path) as img:
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
