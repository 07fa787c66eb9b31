"""Read a representative dataset from the user's images with the model's own preprocessing."""
from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from edge.preprocess import ImageDecodeError, crop_and_resize, open_image, preprocess
from edge.variants import PreprocessSpec

#: 256 images: min/max ranges settle after a few hundred (the official Lite export used ~2,000
#: ImageNet images), the recipes' layer statistics use 128 and range-mse 64 of them, and each one
#: costs a float inference in TFLite's calibrator (about 0.11 s for lite0 on 2 cores). On the
#: default set, lite0 with 256 crops kept 95.7 / 97.2 % of the float decisions (strict / with
#: ties, 600 crops never calibrated on), with 500 crops 96.5 / 97.8 %: within the 0.8 pt that
#: GPTQ's rounding moves between equivalent runs; 256 saves about 30 s of a lite0 conversion.
DEFAULT_NUM_SAMPLES = 256
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm",
                    ".pgm", ".jfif")


class CalibrationError(ValueError):
    """No usable calibration data; the message says where it looked."""


#: Share of the user's images kept aside (never calibrated on) to measure int8 agreement; at
#: most HOLDOUT_MAX_ITEMS of them, so a large folder still calibrates on ``num_samples``.
HOLDOUT_SHARE = 0.2
HOLDOUT_MAX_ITEMS = 200
#: Fewer usable items than this: nothing is held out (calibration needs them all).
HOLDOUT_MIN_ITEMS = 10
#: Inputs derived from the held-out items (their centre crop, then random crops) on which the
#: conversion report measures agreement, and the count below which it calls the figure thin.
AGREEMENT_INPUTS = 200
THIN_INPUTS = 100


@dataclass
class HeldOut:
    """Inputs never calibrated on, for measuring int8 agreement, and what they are."""

    pixels: np.ndarray  # N×H×W×3 uint8, preprocessed like the calibration images
    description: str
    sources: list[str] = field(default_factory=list)  # files / photo names they came from

    def __len__(self) -> int:
        return len(self.pixels)


@dataclass
class CalibrationData:
    """Preprocessed uint8 pixels (N×H×W×3) for calibration, plus held-out inputs for checking."""

    pixels: np.ndarray
    source: str
    is_default: bool = False
    skipped: list[str] = field(default_factory=list)
    heldout: HeldOut | None = None
    #: files (or default-set photo names) the calibration pixels came from
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def holdout(self) -> np.ndarray:
        """The held-out pixels (empty when nothing was held out)."""
        if self.heldout is None:
            return np.empty((0,) + self.pixels.shape[1:], np.uint8)
        return self.heldout.pixels


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
                  progress: Callable[[Iterable], Iterable] | None
                  ) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Decode ``paths`` in order until ``want`` images: (pixels, their paths, undecodable paths)."""
    images, used, bad = [], [], []
    remaining = iter(paths)
    # The bar drives the loop, one step per decoded image, so its count is always right.
    for _ in progress(range(want)) if progress else range(want):
        for path in remaining:
            try:
                images.append(preprocess(path, spec, draft=True))
                used.append(path)
                break
            except (ImageDecodeError, OSError):
                bad.append(path)
        else:
            break  # out of files
    return images, used, bad


def holdout_count(items: int, share: float) -> int:
    """How many of ``items`` usable sources to hold out: ``share`` of them, at most
    :data:`HOLDOUT_MAX_ITEMS`, none below :data:`HOLDOUT_MIN_ITEMS` items."""
    if share <= 0 or items < HOLDOUT_MIN_ITEMS:
        return 0
    return min(HOLDOUT_MAX_ITEMS, int(items * share))


def heldout_inputs(images: Sequence[Any], spec: PreprocessSpec, n_inputs: int, seed: int
                   ) -> tuple[np.ndarray, list[int], list[int]]:
    """Model inputs from held-out images (paths, PIL images or arrays): each one's centre crop
    (as served), then random crops of them, ``n_inputs`` in all (at least one per image).

    Returns ``(pixels, indices of the images used, indices of those that did not decode)``.
    """
    from .defaults import random_crops  # noqa: PLC0415

    rng = np.random.default_rng([seed, 7919])
    per = max(1, -(-n_inputs // max(len(images), 1)))
    out: list[np.ndarray] = []
    used, bad = [], []
    for i, img in enumerate(images):
        try:
            pil = open_image(img, draft_size=int(2 * spec.size / spec.crop_fraction))
        except (ImageDecodeError, OSError):
            bad.append(i)
            continue
        used.append(i)
        out.append(crop_and_resize(pil, spec))
        if per > 1:
            out.extend(random_crops(pil, spec, per - 1, rng, area=(0.25, 1.0)))
    out = out[:max(n_inputs, len(used))]
    pixels = np.stack(out) if out else np.empty((0, spec.size, spec.size, 3), np.uint8)
    return pixels, used, bad


def _describe_heldout(n_items: int, what: str, where: str, n_inputs: int) -> str:
    if n_inputs <= n_items:
        return f"{n_inputs} held-out {what} of {where}, never calibrated on (centre crops)"
    return (f"{n_inputs} inputs from {n_items} held-out {what} of {where}, never calibrated on "
            "(each one's centre crop, then random crops)")


def load_calibration(
    source: Any,
    spec: PreprocessSpec,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    holdout: float = HOLDOUT_SHARE,
    progress: Callable[[Iterable], Iterable] | None = None,
    agreement_inputs: int = AGREEMENT_INPUTS,
) -> CalibrationData:
    """Build a calibration set from a folder (recursive), a glob, a list of paths, an N×H×W×3
    array (uint8 or float 0–255), a ``tf.data.Dataset``, or ``None`` for the default set.

    Sources are shuffled deterministically with ``seed``. A share ``holdout`` of them (at most
    :data:`HOLDOUT_MAX_ITEMS`; none when fewer than :data:`HOLDOUT_MIN_ITEMS`) is kept aside,
    never calibrated on, and turned into ``agreement_inputs`` held-out inputs (centre crops, then
    random crops) for measuring int8 agreement; the rest calibrates, up to ``num_samples``. For
    the default set, the held-out inputs are crops of photos outside it and crops of its photos
    drawn with another seed. Undecodable files are skipped with one warning listing them; fewer
    usable images than ``num_samples`` is a warning giving every count.

    Raises:
        CalibrationError: bad ``num_samples`` or ``holdout``, or no usable image (says where
            it looked).
    """
    if int(num_samples) < 1:
        raise CalibrationError(f"num_samples must be >= 1, got {num_samples!r}")
    if not 0 <= float(holdout) < 1:
        raise CalibrationError(f"holdout is a share in [0, 1), got {holdout!r}")
    if source is None:
        from .defaults import default_calibration, default_heldout  # noqa: PLC0415

        pixels, names = default_calibration(spec, int(num_samples), seed, with_sources=True)
        held = default_heldout(spec, agreement_inputs, seed) if holdout > 0 else None
        return CalibrationData(pixels, "default set (shipped photos, random crops)", True,
                               heldout=held, sources=names)
    skipped: list[str] = []
    if isinstance(source, np.ndarray) or (
            type(source).__module__.startswith("tensorflow") and hasattr(source, "as_numpy_iterator")):
        if isinstance(source, np.ndarray):
            arr = source if source.ndim == 4 else source[None]
            items = [arr[i] for i in np.random.default_rng(seed).permutation(len(arr))]
            where = f"array of shape {source.shape}"
        else:
            cap = int(np.ceil(num_samples / (1 - holdout))) if holdout else int(num_samples)
            items = []
            for item in source.as_numpy_iterator():
                if len(items) >= cap:
                    break
                items.append(item[0] if isinstance(item, (tuple, list)) else item)
            where = "tf.data.Dataset"
        h = holdout_count(len(items), holdout)
        held_items, calib_items = items[:h], items[h:h + int(num_samples)]
        images = [preprocess(np.asarray(i), spec) for i in calib_items]
        sources = [f"{where}[{i}]" for i in range(h, h + len(images))]
        what = "items"
    else:
        paths: list[str] = []
        if isinstance(source, (str, os.PathLike)):
            where = os.fspath(source)
            paths = _list_files(where)
        else:
            listed = [os.fspath(p) for p in source]
            where = f"{len(listed)} paths"
            for p in listed:
                paths += _list_files(p) if os.path.isdir(p) else [p]
        paths = [paths[i] for i in np.random.default_rng(seed).permutation(len(paths))]
        h = holdout_count(len(paths), holdout)
        held_items = paths[:h]
        images, sources, skipped = _decode_files(paths[h:], spec, int(num_samples), progress)
        what = "files"
    held = None
    if held_items:
        px, used, bad = heldout_inputs(held_items, spec, agreement_inputs, seed)
        skipped += [held_items[i] for i in bad]
        if used:
            names = [held_items[i] if isinstance(held_items[i], str) else f"{where} item"
                     for i in used]
            held = HeldOut(px, _describe_heldout(len(used), what, where, len(px)), names)
    if skipped:
        shown = ", ".join(skipped[:20]) + (f" … (+{len(skipped) - 20})" if len(skipped) > 20 else "")
        warnings.warn(f"skipped {len(skipped)} calibration files that could not be decoded: {shown}",
                      UserWarning, stacklevel=2)
    if not images:
        raise CalibrationError(f"no usable calibration images in {where} "
                               f"(looked for {', '.join(IMAGE_EXTENSIONS)})")
    if len(images) < num_samples:
        kept = f"; {len(held_items)} more held out to measure int8 agreement" if held_items else ""
        warnings.warn(f"asked for {num_samples} calibration images, found {len(images)} usable in "
                      f"{where}{kept}", UserWarning, stacklevel=2)
    return CalibrationData(np.stack(images), where, False, skipped, held, sources)
