"""Image preprocessing: the one implementation shared by the runtime and calibration.

decode (EXIF orientation applied, any mode to RGB) → centre crop of ``spec.crop_fraction`` of the
short side → resize to ``spec.size`` with ``spec.resize_filter`` → HxWx3 uint8 pixels.
Normalisation to the model's float input is a separate pure function (:func:`normalize`).
"""
from __future__ import annotations

import io
import os
import stat
from typing import BinaryIO, Callable, TypeVar, Union

import numpy as np
from PIL import Image, ImageOps

from .variants import RESIZE_FILTERS, PreprocessSpec

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, Image.Image, np.ndarray]

_FILTERS = {name: Image.Resampling[name.upper()] for name in RESIZE_FILTERS}
T = TypeVar("T")
#: draft=True: decode JPEGs at the smallest DCT scale whose centre crop keeps at least
#: DRAFT_MARGIN × spec.size pixels, so the resize still shrinks by 2× or more. Chosen by
#: benchmarks/bench_runtime.py on 500 12 MP JPEGs (crops of the shipped photos): the float Lite0
#: agrees with the full decode on 100.0 % of top-1s at 2 (1/4 scale for 12 MP) and 98.8 % at 1
#: (1/8); on a second 500 (``--seed 7``) 98.8 % and 98.2 %. The int8 model's ties bound it near
#: 97-99 % whatever the resize.
DRAFT_MARGIN = 2.0
#: draft=True: Pillow's reducing_gap for the final resize (box reduce first, then resample).
REDUCING_GAP = 3.0


class ImageDecodeError(ValueError):
    """The input could not be read as an image."""


def resample_filter(name: str) -> Image.Resampling:
    """Pillow filter for a spec's ``resize_filter`` name.

    Raises:
        ValueError: unknown filter name.
    """
    try:
        return _FILTERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown resize filter {name!r}; valid: {', '.join(_FILTERS)}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert any Pillow mode (L, LA, P, RGBA, CMYK, I;16, F…) to RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            a = a / 257.0  # 0–65535 → 0–255
        elif a.size and (a.max() > 255 or a.min() < 0):
            lo, hi = float(a.min()), float(a.max())
            a = (a - lo) * (255.0 / max(hi - lo, 1e-12))
        img = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")  # straight to RGB would warn and mishandle transparency
    return img.convert("RGB")


def array_to_image(arr: np.ndarray) -> Image.Image:
    """HxW or HxWx{1,3,4} array, uint8 or float in 0–255, to a PIL RGB image.

    Raises:
        ImageDecodeError: wrong shape or dtype.
    """
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4))) or a.size == 0:
        raise ImageDecodeError(f"expected an HxW or HxWx3 array, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ImageDecodeError(f"expected uint8 or float pixels in 0-255, got dtype {a.dtype}")
        a = np.clip(np.rint(a.astype(np.float64)), 0, 255).astype(np.uint8)
    img = Image.fromarray(a)
    return img.convert("RGB") if img.mode != "RGB" else img


def draft_scale(width: int, height: int, spec: PreprocessSpec, margin: float | None = None) -> int:
    """The JPEG DCT scale denominator (8, 4, 2 or 1) to decode a ``width``×``height`` photo at.

    The smallest decode (largest denominator) whose centre crop still has at least
    ``margin × spec.size`` pixels on a side, so the resize only ever shrinks; ``margin``
    defaults to :data:`DRAFT_MARGIN`, chosen by measurement (``benchmarks/bench_runtime.py``).
    """
    margin = DRAFT_MARGIN if margin is None else margin
    crop = spec.crop_fraction * min(width, height)
    for s in (8, 4, 2):
        if crop / s >= margin * spec.size:
            return s
    return 1


def _source(src: ImageInput) -> tuple[BinaryIO, str, bool]:
    """(file object, name for messages, whether we opened it) for a path or bytes."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(src)), "<bytes>", False
    if not isinstance(src, (str, os.PathLike)):
        raise ImageDecodeError(f"cannot read an image from {type(src).__name__}")
    name = os.fspath(src)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such image: {name}") from None
    except (OSError, ValueError) as e:  # ValueError: NUL in the path
        raise ImageDecodeError(f"cannot read image {name}: {e}") from e
    if not stat.S_ISREG(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ImageDecodeError(f"cannot read image {name}: {what}")
    try:
        return open(name, "rb"), name, True
    except OSError as e:
        raise ImageDecodeError(f"cannot read image {name}: {e}") from e


def _decode(src: ImageInput, finish: Callable[[Image.Image, int, tuple[int, int]], T],
            scale: Callable[[int, int], int] | None = None) -> T:
    """Open ``src`` (path or bytes), let libjpeg decode at ``scale(w, h)`` (1/N), load, make it
    RGB and return ``finish(rgb, N, (w, h))`` — (w, h): the full size, upright (EXIF applied).
    The file is closed before this returns (multi-frame files too: frame 0 is used); any
    failure of the decoder is an ImageDecodeError."""
    fp, name, own = _source(src)
    try:
        img = Image.open(fp)
        full = img.size
        s = 1
        if scale is not None and img.format == "JPEG":
            s = scale(*full)
            if s > 1:
                img.draft("RGB", (full[0] // s, full[1] // s))
                s = max(1, round(full[0] / img.width))  # the DCT scale libjpeg will use
        img.load()
        drafted = img.size
        rgb = to_rgb(img)
        if rgb.size != drafted:  # EXIF orientation turned it by 90°
            full = full[::-1]
        return finish(rgb, s, full)
    except ImageDecodeError:
        raise
    except Exception as e:  # untrusted bytes: Pillow's plugins raise many types
        msg = " ".join(str(e).split()) or type(e).__name__
        raise ImageDecodeError(f"cannot decode image {name}: {msg}") from e
    finally:
        if own:
            fp.close()


def open_image(src: ImageInput, draft_size: int | None = None) -> Image.Image:
    """Open a path, bytes, PIL image or numpy array as an RGB PIL image.

    ``draft_size``: for JPEGs, let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) as long as
    the short side stays ≥ ``draft_size`` pixels. Much faster for large photos. Files are closed
    before this returns; of a multi-frame file (GIF, WebP, TIFF) the first frame is used.

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageDecodeError: anything that cannot be decoded as an image (a directory, a truncated
            or corrupt file, a decompression bomb, an unknown format…).
    """
    if isinstance(src, np.ndarray):
        return array_to_image(src)
    if isinstance(src, Image.Image):
        return _guarded(to_rgb, src)

    def scale(w: int, h: int) -> int:
        return next((s for s in (8, 4, 2) if min(w, h) / s >= draft_size), 1)

    return _decode(src, lambda img, _s, _full: img, scale if draft_size else None)


def _guarded(fn: Callable[[Image.Image], T], img: Image.Image) -> T:
    try:
        return fn(img)
    except ImageDecodeError:
        raise
    except Exception as e:  # a PIL image in an exotic mode, or a lazily loaded corrupt file
        raise ImageDecodeError(f"cannot convert {img.mode} image: {e}") from e


def center_crop_box(width: int, height: int, crop_fraction: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square crop, as tensorflow/tpu computes it."""
    crop = max(1, int(crop_fraction * min(width, height)))
    top = (height - crop + 1) // 2
    left = (width - crop + 1) // 2
    return left, top, left + crop, top + crop


def crop_and_resize(img: Image.Image, spec: PreprocessSpec, reducing_gap: float | None = None,
                    scale: int = 1, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """Centre crop and resize an RGB PIL image per ``spec``; returns HxWx3 uint8.

    ``reducing_gap``: Pillow's two-step resize (an integer box reduce first, while the crop is
    more than ``reducing_gap`` times the output), for speed; None resamples in one exact step.
    ``scale``/``full_size``: ``img`` is a 1/``scale`` DCT-scaled decode of an image of
    ``full_size``: the crop is computed on the full size and mapped exactly (sub-pixel box), so
    it covers the same part of the scene as a full decode would.
    """
    if scale > 1 and full_size is not None:
        box = tuple(v / scale for v in center_crop_box(*full_size, spec.crop_fraction))
    else:
        box = center_crop_box(img.width, img.height, spec.crop_fraction)
    out = img.resize((spec.size, spec.size), resample_filter(spec.resize_filter), box=box,
                     reducing_gap=reducing_gap)
    return np.asarray(out, dtype=np.uint8)


def preprocess(src: ImageInput, spec: PreprocessSpec, draft: bool = False) -> np.ndarray:
    """Decode, centre-crop and resize one image: HxWx3 uint8, ready for a uint8 model input.

    ``draft=True`` trades exactness for speed on large images: JPEGs decode at the smallest DCT
    scale that still covers the crop (:func:`draft_scale`), then a reduce step
    (:data:`REDUCING_GAP`) before the final resample.

    Raises:
        FileNotFoundError, ImageDecodeError: see :func:`open_image`.
    """
    gap = REDUCING_GAP if draft else None
    if isinstance(src, np.ndarray):
        img = array_to_image(src)
        if img.size == (spec.size, spec.size):
            return np.asarray(img, dtype=np.uint8)  # already model-sized: no crop, no resample
        return crop_and_resize(img, spec, gap)
    if isinstance(src, Image.Image):
        return _guarded(lambda i: crop_and_resize(to_rgb(i), spec, gap), src)
    return _decode(src, lambda img, s, full: crop_and_resize(img, spec, gap, s, full),
                   (lambda w, h: draft_scale(w, h, spec)) if draft else None)


def normalize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``(pixels - mean) / std`` as float32: the float input a model without in-graph
    normalisation expects."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (np.asarray(pixels, dtype=np.float32) - mean) / std
