"""Image preprocessing: the one implementation shared by the runtime and calibration.

decode (EXIF orientation applied, any mode to RGB) → centre crop of ``spec.crop_fraction`` of the
short side → resize to ``spec.size`` with ``spec.resize_filter`` → HxWx3 uint8 pixels.
Normalisation to the model's float input is a separate pure function (:func:`normalize`).
"""
from __future__ import annotations

import io
import os
from typing import Union

import numpy as np
from PIL import Image, ImageOps

from .variants import PreprocessSpec

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, Image.Image, np.ndarray]

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


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
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
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


def open_image(src: ImageInput, draft_size: int | None = None) -> Image.Image:
    """Open a path, bytes, PIL image or numpy array as an RGB PIL image.

    ``draft_size``: for JPEGs, let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) as long as
    the short side stays ≥ ``draft_size`` pixels. Much faster for large photos.

    Raises:
        FileNotFoundError: a path that does not exist.
        ImageDecodeError: anything that cannot be decoded as an image.
    """
    if isinstance(src, np.ndarray):
        return array_to_image(src)
    if isinstance(src, Image.Image):
        return to_rgb(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        fp, name = io.BytesIO(bytes(src)), "<bytes>"
    elif isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        if not os.path.exists(name):
            raise FileNotFoundError(f"no such image: {name}")
        fp = name
    else:
        raise ImageDecodeError(f"cannot read an image from {type(src).__name__}")
    try:
        img = Image.open(fp)
        if draft_size and img.format == "JPEG":
            w, h = img.size
            scale = max(1.0, min(w, h) / float(draft_size))
            img.draft("RGB", (int(w / scale), int(h / scale)))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"cannot decode image {name}: {e}") from e
    return to_rgb(img)


def center_crop_box(width: int, height: int, crop_fraction: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square crop, as tensorflow/tpu computes it."""
    crop = max(1, int(crop_fraction * min(width, height)))
    top = (height - crop + 1) // 2
    left = (width - crop + 1) // 2
    return left, top, left + crop, top + crop


def crop_and_resize(img: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """Centre crop and resize an RGB PIL image per ``spec``; returns HxWx3 uint8."""
    box = center_crop_box(img.width, img.height, spec.crop_fraction)
    out = img.resize((spec.size, spec.size), resample_filter(spec.resize_filter), box=box)
    return np.asarray(out, dtype=np.uint8)


def preprocess(src: ImageInput, spec: PreprocessSpec, draft: bool = False) -> np.ndarray:
    """Decode, centre-crop and resize one image: HxWx3 uint8, ready for a uint8 model input.

    ``draft=True`` decodes large JPEGs at reduced scale (never below 2× the crop the model sees).

    Raises:
        FileNotFoundError, ImageDecodeError: see :func:`open_image`.
    """
    draft_size = int(2 * spec.size / spec.crop_fraction) if draft else None
    img = open_image(src, draft_size=draft_size)
    if isinstance(src, np.ndarray) and img.size == (spec.size, spec.size):
        return np.asarray(img, dtype=np.uint8)  # already model-sized: no crop, no resample
    return crop_and_resize(img, spec)


def normalize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """``(pixels - mean) / std`` as float32: the float input a model without in-graph
    normalisation expects."""
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (np.asarray(pixels, dtype=np.float32) - mean) / std
