"""The offline default calibration set: random crops and flips of the photos shipped in wheels."""
from __future__ import annotations

import warnings

import numpy as np

from edge.preprocess import open_image, resample_filter
from edge.samples import sample_photos
from edge.variants import PreprocessSpec

DEFAULT_SET_WARNING = (
    "calibrating int8 on the SDK's default set: crops of 9 stock photos shipped in Python wheels. "
    "Pass --calibration DIR (calibration=...) with a few hundred images from your own domain: "
    "they make better int8 models.")


def random_crops(img, spec: PreprocessSpec, n: int, rng: np.random.Generator,
                 area=(0.55, 1.0), flip: bool = True) -> np.ndarray:
    """``n`` random square-ish crops (fraction ``area`` of the image, aspect 3/4–4/3) of a PIL
    RGB image, resized to the spec's size with its filter, half of them mirrored: N×H×W×3 uint8."""
    w, h = img.size
    out = np.empty((n, spec.size, spec.size, 3), np.uint8)
    filt = resample_filter(spec.resize_filter)
    for i in range(n):
        a = rng.uniform(*area) * w * h
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = int(min(w, round(np.sqrt(a * ratio))))
        ch = int(min(h, round(np.sqrt(a / ratio))))
        left = int(rng.integers(0, w - cw + 1))
        top = int(rng.integers(0, h - ch + 1))
        crop = np.asarray(img.resize((spec.size, spec.size), filt, box=(left, top, left + cw, top + ch)))
        out[i] = crop[:, ::-1] if flip and rng.random() < 0.5 else crop
    return out


def default_calibration(spec: PreprocessSpec, num_samples: int, seed: int = 0,
                        warn: bool = True) -> np.ndarray:
    """``num_samples`` deterministic crops/flips spread evenly over the shipped photos.

    Raises:
        LookupError: the photos' packages (scikit-image, matplotlib, scikit-learn) are missing.
    """
    photos = sample_photos()
    if not photos:
        raise LookupError("no default calibration photos: install scikit-image, matplotlib and "
                          "scikit-learn, or pass your own calibration images")
    if warn:
        warnings.warn(DEFAULT_SET_WARNING, UserWarning, stacklevel=2)
    rng = np.random.default_rng(seed)
    counts = [num_samples // len(photos) + (i < num_samples % len(photos)) for i in range(len(photos))]
    parts = [random_crops(open_image(p.path), spec, c, rng) for p, c in zip(photos, counts) if c]
    data = np.concatenate(parts)
    return data[rng.permutation(len(data))]
