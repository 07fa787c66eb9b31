"""Export the trained model (Keras weights, fp32 and int8/fp16 .tflite with the class names) and
measure both .tflite models on held-out images through :class:`edge.EdgeClassifier`."""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

from converters.tflite import convert

from .options import QuantPrecision, TrainOptions


def keras_weights_bytes(model: Any) -> bytes:
    """``model.save_weights`` as bytes (written to a private temp folder first)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.weights.h5")
        model.save_weights(path)
        with open(path, "rb") as f:
            return f.read()


def convert_both(flat: Any, classes: Sequence[str], opts: TrainOptions,
                 calibration_paths: Sequence[str], progress: bool) -> tuple[bytes, bytes, Any]:
    """(fp32 bytes, int8-or-fp16 bytes, the converter's report of the second)."""
    fp32, _ = convert(flat, "fp32", labels=list(classes))
    if opts.precision is QuantPrecision.FP16:
        small, report = convert(flat, "fp16", labels=list(classes))
        return fp32, small, report
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415

        def bar(it):  # noqa: ANN001, ANN202
            return tqdm(it, desc="calibrating", unit="img", file=sys.stderr, leave=False)
    extra = {} if opts.int8_recipe is None else {"recipe": opts.int8_recipe}
    small, report = convert(flat, "int8", calibration=list(calibration_paths), labels=list(classes),
                            num_samples=opts.num_calibration, seed=opts.seed, holdout=0,
                            progress=bar, **extra)
    return fp32, small, report


def predict_top1(model_bytes: bytes, paths: Sequence[str], desc: str, progress: bool) -> np.ndarray:
    """Top-1 class of each image, served by :class:`edge.EdgeClassifier` as users run it (its
    own preprocessing spec from the model's metadata, XNNPACK)."""
    from tqdm import tqdm  # noqa: PLC0415

    from edge.classifier import EdgeClassifier  # noqa: PLC0415

    out = np.empty(len(paths), np.int64)
    with EdgeClassifier(model_bytes, delegate="xnnpack", top_k=1) as clf:
        for i, p in enumerate(tqdm(paths, desc=desc, unit="img", file=sys.stderr, leave=False,
                                   disable=not progress)):
            out[i] = int(np.argmax(clf.scores(p)))
    return out
