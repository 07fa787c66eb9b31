"""Pure numpy (de)quantisation, input affine folding, softmax and top-k: no interpreter here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


def _as_channels(v: float | Sequence[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64).reshape(-1)
    if a.size not in (1, 3):
        raise ValueError(f"expected 1 or 3 values (one per channel), got {a.size}")
    return a


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype) -> np.ndarray:
    """``round(x / scale) + zero_point``, clipped to ``dtype``'s range.

    Raises:
        ValueError: ``scale`` is not positive, or ``dtype`` is not an integer type.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        raise ValueError(f"quantize needs an integer dtype, got {dtype}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    info = np.iinfo(dtype)
    q = np.rint(np.asarray(x, dtype=np.float64) / scale) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``scale * (q - zero_point)`` as float32; int64 arithmetic so nothing overflows."""
    return (scale * (np.asarray(q).astype(np.int64) - int(zero_point))).astype(np.float32)


@dataclass(frozen=True)
class InputAffine:
    """``tensor_value = pixel * gain + offset`` (per channel), folding normalisation + quantisation.

    ``identity`` means raw uint8 pixels ARE the tensor values: feed them with no work at all.
    """

    gain: np.ndarray
    offset: np.ndarray
    identity: bool

    def apply(self, pixels: np.ndarray, dtype) -> np.ndarray:
        """Map HxWx3 pixels to a tensor of ``dtype`` (rounded and clipped for integer dtypes)."""
        dtype = np.dtype(dtype)
        if self.identity and pixels.dtype == dtype:
            return pixels
        v = np.asarray(pixels, dtype=np.float32) * self.gain.astype(np.float32) \
            + self.offset.astype(np.float32)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(v), info.min, info.max).astype(dtype)
        return v.astype(dtype, copy=False)


def input_affine(input_mean: float | Sequence[float], input_std: float | Sequence[float],
                 scale: float = 0.0, zero_point: int = 0, tol: float = 1e-6) -> InputAffine:
    """Fold ``real = (pixel - mean) / std`` and ``q = real / scale + zero_point`` into one map.

    ``scale == 0`` means a float (unquantised) input: the map is just the normalisation, and
    it is the identity when mean 0 / std 1. For a quantised input it is the identity when
    ``std * scale == 1`` and ``mean == zero_point`` (pycoral's test, per channel).

    Raises:
        ValueError: wrong number of values, zero std, or negative scale.
    """
    mean, std = _as_channels(input_mean), _as_channels(input_std)
    if np.any(std == 0):
        raise ValueError("input_std must be non-zero")
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    gain = 1.0 / std
    offset = -mean / std
    if scale > 0:
        gain, offset = gain / scale, offset / scale + zero_point
    identity = bool(np.all(np.abs(gain - 1.0) <= tol) and np.all(np.abs(offset) <= tol * 255))
    return InputAffine(gain, offset, identity)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float32)."""
    x = np.asarray(x, dtype=np.float32)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def looks_like_probabilities(v: np.ndarray, tol: float = 0.02) -> bool:
    """True when ``v`` is in [0, 1] and sums to 1 (within ``tol``, room for uint8 rounding)."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.all(np.isfinite(v)):
        return False
    return bool(v.min() >= -1e-6 and v.max() <= 1 + 1e-6 and abs(v.sum() - 1.0) <= tol)


def top_k(scores: np.ndarray, k: int | None = 5,
          threshold: float | None = None) -> list[tuple[int, float]]:
    """The ``k`` best ``(index, score)`` pairs with score ≥ ``threshold``.

    Sorted by score, highest first; ties keep the lower index first (stable). ``k=None``: all.

    Raises:
        ValueError: ``k`` < 0.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if k is not None and k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    idx = np.arange(s.size)
    if threshold is not None:
        idx = idx[s >= threshold]
    order = idx[np.argsort(-s[idx], kind="stable")]
    if k is not None:
        order = order[:k]
    return [(int(i), float(s[i])) for i in order]
