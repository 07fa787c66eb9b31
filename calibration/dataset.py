"""Read a representative dataset from the user's images with the model's own preprocessing."""
from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge.preprocess import ImageDecodeError, preprocess
from edge.variants import PreprocessSpec

#: 500 images: the official Lite export used ~2,000 ImageNet images; min/max ranges settle after a
#: few hundred, and each sample costs one float inference during conversion (~25 ms for lite0 on
#: 2 cores), so 500 keeps a lite0 conversion around half a minute.
DEFAULT_NUM_SAMPLES = 500
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm", ".jfif")


class CalibrationError(ValueError):
    """No usable calibration data; the message says where it looked."""


@dataclass
class CalibrationData:
    """Preprocessed uint8 pixels (N×H×W×3) for calibration, plus held-out images for checking."""

    pixels: np.ndarray
    holdout: np.ndarray
    source: str
    is_default: bool = False
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pixels)


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def _list_files(source: str) -> list[str]:
    if os.path.isdir(source):
        found = []
        for root, dirs, files in os.walk(source):
            dirs.sort()
            found += [os.path.join(root, f) for f in sorted(files)
                      if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".")]
        return found
    if _is_glob(source):
        return sorted(p for p in glob.glob(source, recursive=True) if os.path.isfile(p))
    if os.path.isfile(source):
        return [source]
    raise CalibrationError(f"calibration source {source!r}: no such folder, file or glob match")


def _decode_files(paths: Sequence[str], spec: PreprocessSpec, want: int,
                  progress: Callable[[Iterable], Iterable] | None) -> tuple[list[np.ndarray], list[str]]:
    images, bad = [], []
    remaining = iter(paths)
    # The bar drives the loop, one step per decoded image, so its count is always right.
    for _ in progress(range(want)) if progress else range(want):
        for path in remaining:
            try:
                images.append(preprocess(path, spec, draft=True))
                break
            except (ImageDecodeError, OSError):
                bad.append(path)
        else:
            break  # out of files
    return images, bad


def _from_arrays(items: Iterable[Any], spec: PreprocessSpec, want: int) -> list[np.ndarray]:
    out = []
    for item in items:
        if len(out) >= want:
            break
        if isinstance(item, (tuple, list)):  # (image, label) pairs from a tf.data pipeline
            item = item[0]
        out.append(preprocess(np.asarray(item), spec))
    return out


def load_calibration(
    source: Any,
    spec: PreprocessSpec,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    holdout: int = 0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> CalibrationData:
    """Build a calibration set from a folder (recursive), a glob, a list of paths, an N×H×W×3
    array (uint8 or float 0–255), a ``tf.data.Dataset``, or ``None`` for the default set.

    Files are shuffled deterministically with ``seed``; the first ``holdout`` usable images are
    kept aside (never calibrated on) for checking agreement. Undecodable files are skipped with
    one warning listing them; fewer usable images than ``num_samples`` is a warning with both
    counts.

    Raises:
        CalibrationError: bad ``num_samples``, or no usable image (says where it looked).
    """
    if int(num_samples) < 1:
        raise CalibrationError(f"num_samples must be >= 1, got {num_samples!r}")
    want = int(num_samples) + int(holdout)
    skipped: list[str] = []
    if source is None:
        from edge.samples import sample_photos  # noqa: PLC0415

        from .defaults import default_calibration  # noqa: PLC0415

        pixels = default_calibration(spec, int(num_samples), seed)
        # held out: the photos' centre crops, which no random crop reproduces exactly
        held = np.stack([preprocess(p.path, spec) for p in sample_photos()[:holdout]]) \
            if holdout else np.empty((0, spec.size, spec.size, 3), np.uint8)
        return CalibrationData(pixels, held, "default set (shipped photos, random crops)", True)
    if isinstance(source, np.ndarray):
        arr = source if source.ndim == 4 else source[None]
        images = _from_arrays(arr[np.random.default_rng(seed).permutation(len(arr))], spec, want)
        where = f"array of shape {source.shape}"
    elif type(source).__module__.startswith("tensorflow") and hasattr(source, "as_numpy_iterator"):
        images = _from_arrays(source.as_numpy_iterator(), spec, want)
        where = "tf.data.Dataset"
    else:
        paths: list[str] = []
        if isinstance(source, (str, os.PathLike)):
            where = os.fspath(source)
            paths = _list_files(where)
        else:
            items = [os.fspath(p) for p in source]
            where = f"{len(items)} paths"
            for p in items:
                paths += _list_files(p) if os.path.isdir(p) else [p]
        paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
        images, skipped = _decode_files(paths, spec, want, progress)
        if skipped:
            shown = ", ".join(skipped[:20]) + (f" … (+{len(skipped) - 20})" if len(skipped) > 20 else "")
            warnings.warn(f"skipped {len(skipped)} calibration files that could not be decoded: {shown}",
                          UserWarning, stacklevel=2)
    if not images:
        raise CalibrationError(f"no usable calibration images in {where} "
                               f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    held = images[:holdout] if len(images) > holdout else []
    calib = images[len(held):]
    if len(calib) < num_samples:
        warnings.warn(f"asked for {num_samples} calibration images, found {len(calib)} usable in "
                      f"{where}", UserWarning, stacklevel=2)
    empty = np.empty((0, spec.size, spec.size, 3), np.uint8)
    return CalibrationData(np.stack(calib), np.stack(held) if held else empty, where, False, skipped)
