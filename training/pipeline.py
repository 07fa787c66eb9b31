"""Streaming tf.data pipelines: augmented training batches and evaluation batches.

Images are decoded by Pillow through :mod:`edge.preprocess` (EXIF orientation, every mode to
RGB), the same code the runtime uses. Evaluation images get exactly the model's preprocessing
spec (:func:`edge.preprocess.preprocess`). Training images get a random-resized crop of the
decoded image (resized with the spec's filter, in one Pillow call), a horizontal flip and a
mild colour jitter, drawn from a per-image seed: the batches of epoch ``e`` depend only on
``(seed, e)``, whatever the strategy, the number of workers or an interruption.

Nothing is cached: the path list is the only per-image state, so memory stays bounded by
``batch_size`` × prefetch depth for 100,000 images as for 100.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from edge.preprocess import open_image, preprocess, resample_filter
from edge.variants import PreprocessSpec


@dataclass(frozen=True)
class Augment:
    """Training augmentation; ``enabled=False`` gives the evaluation preprocessing."""

    enabled: bool = True
    min_area: float = 0.5  # random-resized crop: share of the image area kept, at least
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio range
    flip: bool = True
    brightness: float = 0.15  # ± share of the pixel values
    contrast: float = 0.15  # ± around the mean
    saturation: float = 0.15  # ± away from grey


def random_crop_box(width: int, height: int, rng: np.random.Generator, min_area: float,
                    ratio: tuple[float, float]) -> tuple[float, float, float, float]:
    """(left, top, right, bottom), fractional pixels: a random share of the area in
    [min_area, 1] with aspect in ``ratio`` (Inception-style), always inside the image."""
    area = width * height * rng.uniform(min_area, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]))))
    w = min(float(width), float(np.sqrt(area * aspect)))
    h = min(float(height), float(np.sqrt(area / aspect)))
    left = rng.uniform(0, width - w)
    top = rng.uniform(0, height - h)
    return left, top, left + w, top + h


def color_jitter(pixels: np.ndarray, rng: np.random.Generator, aug: Augment) -> np.ndarray:
    """Brightness, contrast and saturation scaled by factors in 1 ± strength (HxWx3 uint8)."""
    x = pixels.astype(np.float32)
    x *= rng.uniform(1 - aug.brightness, 1 + aug.brightness)
    mean = x.mean()
    x = (x - mean) * rng.uniform(1 - aug.contrast, 1 + aug.contrast) + mean
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey[..., None]) * rng.uniform(1 - aug.saturation, 1 + aug.saturation) + grey[..., None]
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augmented_image(path: str, seed: int, spec: PreprocessSpec, aug: Augment) -> np.ndarray:
    """One training image: decode, random-resized crop to ``spec.size``, flip, colour jitter.

    Raises:
        FileNotFoundError, edge.ImageDecodeError: the file cannot be read.
    """
    rng = np.random.default_rng(seed)
    img = open_image(path, draft_size=2 * spec.size)
    box = random_crop_box(img.width, img.height, rng, aug.min_area, aug.ratio)
    out = img.resize((spec.size, spec.size), resample_filter(spec.resize_filter), box=box)
    if aug.flip and rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return color_jitter(np.asarray(out, dtype=np.uint8), rng, aug)


def epoch_order(n: int, seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The shuffled order of the training images in ``epoch`` and one augmentation seed each."""
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n), rng.integers(0, 2**31 - 1, size=n)


def _decoder(spec: PreprocessSpec, aug: Augment):
    def decode(path: bytes, seed: np.int64) -> np.ndarray:
        p = os.fsdecode(path)
        if aug.enabled:
            return augmented_image(p, int(seed), spec, aug)
        return preprocess(p, spec, draft=True)
    return decode


def _options(tf: Any) -> Any:
    opts = tf.data.Options()
    # Every worker builds the same list and keeps its share of each batch: the path list is one
    # tensor, so file-based sharding cannot apply.
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    opts.deterministic = True
    return opts


def make_dataset(paths: Sequence[str], labels: np.ndarray, num_classes: int, spec: PreprocessSpec,
                 batch_size: int, aug: Augment, seeds: np.ndarray | None = None,
                 sample_weights: np.ndarray | None = None, drop_remainder: bool = False) -> Any:
    """A batched ``tf.data.Dataset`` of ``(float32 pixels 0–255, one-hot labels[, weights])``.

    ``paths`` are read in the given order (shuffle them with :func:`epoch_order` first);
    ``seeds`` drive the augmentation of each image.
    """
    import tensorflow as tf  # noqa: PLC0415

    n = len(paths)
    seeds = np.zeros(n, np.int64) if seeds is None else np.asarray(seeds, np.int64)
    cols: list[Any] = [tf.constant([os.fsencode(p) for p in paths], tf.string),
            np.asarray(labels, np.int64), seeds]
    if sample_weights is not None:
        cols.append(np.asarray(sample_weights, np.float32))
    decode = _decoder(spec, aug)
    size = spec.size

    def load(path, label, seed, *weight):
        img = tf.numpy_function(decode, [path, seed], tf.uint8, stateful=False)
        img = tf.ensure_shape(img, (size, size, 3))
        out = (tf.cast(img, tf.float32), tf.one_hot(label, num_classes))
        return out + tuple(weight)

    ds = tf.data.Dataset.from_tensor_slices(tuple(cols))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(2)
    return ds.with_options(_options(tf))


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced class weights ``n / (k · n_c)`` (scikit-learn's 'balanced')."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)
