"""Small real TFLite test models for the runtime tests, built once per session with TensorFlow.

A tiny position-sensitive conv net (raw 0–255 pixels in, normalisation inside the graph, 10-way
softmax out) converted to fp32 and to full-int8 with uint8 I/O calibrated on the shipped photos;
plus a logits variant with no metadata at all ("someone else's .tflite"). Kept tiny so the
whole runtime test set stays fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge import preprocess
from edge.metadata import ModelInfo, write_metadata
from edge.samples import sample_photos
from edge.variants import PreprocessSpec

SIZE = 224
LABELS = [f"class_{c}" for c in "abcdefghij"]
#: Smaller crop/size than a real model is not needed: the spec is the real Lite0 one.
SPEC = PreprocessSpec(size=SIZE, crop_fraction=SIZE / (SIZE + 32))


@dataclass(frozen=True)
class EdgeModels:
    fp32: str  # float in (raw pixels), softmax out, with metadata
    int8: str  # uint8 in (scale≈1, zp 0 → identity affine), uint8 softmax out, with metadata
    bare_logits: str  # float in expecting (pixel-127)/128, logits out, NO metadata
    labels: tuple[str, ...]


def _keras_model(logits: bool, normalise_inside: bool):
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1234)
    inp = tf.keras.Input((SIZE, SIZE, 3), batch_size=1, name="image")
    x = tf.keras.layers.Rescaling(1 / 128.0, offset=-127 / 128.0)(inp) if normalise_inside else inp
    x = tf.keras.layers.AveragePooling2D(8)(x)  # 28x28: keeps where things are in the image
    x = tf.keras.layers.Conv2D(8, 3, strides=2, activation="relu",
                               kernel_initializer=tf.keras.initializers.RandomNormal(0, 0.6))(x)
    x = tf.keras.layers.AveragePooling2D(2)(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(len(LABELS), kernel_initializer=tf.keras.initializers.RandomNormal(0, 0.3))(x)
    if not logits:
        x = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inp, x)


def _calibration():
    for p in sample_photos():
        yield [preprocess(p.path, SPEC)[None].astype(np.float32)]
        yield [preprocess(p.path, SPEC)[:, ::-1][None].astype(np.float32).copy()]


def build_models(out_dir: str) -> EdgeModels:
    import tensorflow as tf

    os.makedirs(out_dir, exist_ok=True)
    info = dict(name="tiny-test-net", description="tiny test model", spec=SPEC,
                labels=list(LABELS), input_mean=[0.0], input_std=[1.0])
    km = _keras_model(logits=False, normalise_inside=True)
    conv = tf.lite.TFLiteConverter.from_keras_model(km)
    fp32 = write_metadata(conv.convert(), ModelInfo(**info))

    conv = tf.lite.TFLiteConverter.from_keras_model(km)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = _calibration
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    int8 = write_metadata(conv.convert(), ModelInfo(**info))

    bare = tf.lite.TFLiteConverter.from_keras_model(
        _keras_model(logits=True, normalise_inside=False)).convert()
    paths = []
    for name, data in (("fp32", fp32), ("int8", int8), ("bare_logits", bare)):
        path = os.path.join(out_dir, f"tiny_{name}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
    return EdgeModels(*paths, labels=tuple(LABELS))


@lru_cache(maxsize=None)
def cached_models(out_dir: str) -> EdgeModels:
    """Build once per directory (test modules share the session's base temp dir)."""
    return build_models(out_dir)


def edge_models_fixture(tmp_path_factory) -> EdgeModels:
    return cached_models(str(tmp_path_factory.getbasetemp() / "edge_models"))
