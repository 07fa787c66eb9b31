"""The offline default calibration set: random crops and flips of the photos shipped in wheels."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.preprocess import open_image, resample_filter
from edge.samples import sample_photos
from edge.variants import PreprocessSpec

if TYPE_CHECKING:
    from .dataset import HeldOut

DEFAULT_SET_WARNING = (
    "calibrating on the SDK's default set: crops of 9 stock photos shipped in Python wheels. "
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
                        warn: bool = True, with_sources: bool = False) -> Any:
    """``num_samples`` deterministic crops/flips spread evenly over the shipped photos
    (``with_sources``: also the photo name of each crop).

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
    counts = _spread(num_samples, len(photos))
    parts = [random_crops(open_image(p.path), spec, c, rng) for p, c in zip(photos, counts) if c]
    names = [p.name for p, c in zip(photos, counts) for _ in range(c)]
    order = rng.permutation(sum(counts))
    data = np.concatenate(parts)[order]
    return (data, [names[i] for i in order]) if with_sources else data


def _spread(n: int, k: int) -> list[int]:
    return [n // k + (i < n % k) for i in range(k)]


def _crops_of(photos: list, spec: PreprocessSpec, n: int, rng: np.random.Generator,
              area: tuple[float, float]) -> np.ndarray:
    parts = [random_crops(open_image(p.path), spec, c, rng, area=area)
             for p, c in zip(photos, _spread(n, len(photos))) if c]
    return np.concatenate(parts) if parts else np.empty((0, spec.size, spec.size, 3), np.uint8)


def default_heldout(spec: PreprocessSpec, n_inputs: int = 200, seed: int = 0) -> HeldOut:
    """Inputs the default set never calibrates on: half crops of photos outside it
    (:func:`edge.samples.sample_photos` ``'heldout'``), half crops of its own photos drawn with
    another seed and a wider range of crop sizes."""
    from .dataset import HeldOut  # noqa: PLC0415

    outside, inside = sample_photos("heldout"), sample_photos()
    rng = np.random.default_rng([seed, 104729])
    n_out = n_inputs // 2 if outside else 0
    a = _crops_of(outside, spec, n_out, rng, HELDOUT_AREA)
    b = _crops_of(inside, spec, n_inputs - n_out, rng, HELDOUT_AREA)
    desc = (f"{n_inputs} inputs never calibrated on: {len(a)} crops of "
            f"{', '.join(p.name for p in outside)} (photos outside the default set) and "
            f"{len(b)} crops of the default set's photos drawn with another seed")
    return HeldOut(np.concatenate([a, b]), desc, [p.name for p in outside + inside])


#: Crop sizes (share of the photo's area) of held-out and fidelity inputs: wider than the
#: calibration crops' 55-100 %, so they are not near-copies of calibration crops.
HELDOUT_AREA = (0.1, 1.0)
#: Seed of the fidelity set used by the tests and benchmarks/int8_recipes.py (never a
#: calibration seed there).
FIDELITY_SEED = 2026


@dataclass
class FidelitySet:
    """A fixed set of inputs never calibrated on, in named groups."""

    pixels: np.ndarray
    groups: dict[str, slice]  # group name -> rows
    description: str


def fidelity_set(spec: PreprocessSpec, n_default: int = 500, n_heldout: int = 100,
                 n_ood: int = 0, seed: int = FIDELITY_SEED) -> FidelitySet:
    """Crops (10-100 % of the area, half mirrored) of: the nine default-set photos
    (``n_default``), the three photos outside it (``n_heldout``) and, optionally, the three
    far-from-ImageNet images (``n_ood``), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    parts, groups, start = [], {}, 0
    for name, which, n in (("default-set photos", "default", n_default),
                           ("held-out photos", "heldout", n_heldout),
                           ("far-from-ImageNet images", "ood", n_ood)):
        if n:
            x = _crops_of(sample_photos(which), spec, n, rng, HELDOUT_AREA)
            parts.append(x)
            groups[name] = slice(start, start + len(x))
            start += len(x)
    desc = ", ".join(f"{s.stop - s.start} crops of {g}" for g, s in groups.items())
    return FidelitySet(np.concatenate(parts), groups, f"{desc} (seed {seed}, 10-100 % of the area)")
