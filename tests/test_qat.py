"""The ``qat`` recipe: tfmot fake-quant fine-tuning of a tf_keras twin, distilled from the float
model, whose weights come back into the Keras 3 model on the converter's int8 grid."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge import EdgeClassifier
from tests.conftest import centre_crops

# Not imported here: tfmot reads tf.keras, which is Keras 3 in this process (qat runs a worker).
pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("tensorflow_model_optimization", "tf_keras")),
    reason="qat needs tensorflow-model-optimization and tf-keras (the convert extra)")


def _distance(p: np.ndarray, q: np.ndarray) -> float:
    """Mean total-variation distance: unlike KL, blind to the uint8 output's zeros."""
    return float(np.mean(0.5 * np.abs(p - q).sum(axis=1)))


def test_qat_learns_lands_on_the_grid_and_brings_the_int8_model_closer(photos, monkeypatch):
    from converters.efficientnet import create_model
    from converters.recipes import apply_recipe, parse_recipe, qat
    from converters.recipes.folding import quant_layers, read_folded, round_to_grid
    from converters.tflite import clone, convert, strip_normalization

    # Longer and faster than the default on these 18 images, so that what it changes in the
    # TFLite model below stands out from the calibration noise. ImageNet lite0 at 128 px (the
    # weights do not depend on the input size): a third of the time at 224.
    monkeypatch.setattr(qat, "QAT_EPOCHS", 10)
    lite0_imagenet = create_model("lite0", weights="imagenet", input_size=128)
    pixels = centre_crops(photos, "lite0", 128)
    pixels = np.concatenate([pixels, pixels[:, :, ::-1]])  # 18 images
    x = (pixels.astype(np.float32) - 127) / 128
    net = strip_normalization(lite0_imagenet)
    ref = clone(net)
    report = apply_recipe(net, ref, x, parse_recipe("qat"), skip=["predictions"])
    step = report.steps[-1]
    assert step["step"] == "qat" and step["images"] == len(x) and step["epochs"] == 10
    assert step["kl_last_epoch"] < step["kl_first_epoch"], step  # the distillation learns

    moved = 0
    for q in quant_layers(net):
        rows = read_folded(net, q).rows
        if q.name == "predictions":  # kept float: trained, never snapped to the grid
            assert not np.allclose(rows, round_to_grid(rows), atol=1e-7)
            continue
        np.testing.assert_allclose(rows, round_to_grid(rows), atol=1e-6, err_msg=q.name)
        moved += not np.allclose(rows, round_to_grid(read_folded(ref, q).rows), atol=1e-6)
    assert moved >= len(quant_layers(net)) // 2, moved  # weights the plain rounding would not pick

    # The fake-quant layout mirrors TFLite's: what QAT learned carries over to the converter's
    # int8 model (same images, quantised from the same weights with no further recipe).
    probs = np.asarray(lite0_imagenet.predict(pixels.astype(np.float32), verbose=0))
    drift = {}
    for name, model in (("ptq", ref), ("qat", net)):
        data, _ = convert(model, "int8", calibration=pixels, recipe="ptq", keep_float="none",
                          num_samples=len(pixels), holdout=0, layer_report=0)
        with EdgeClassifier(data) as clf:
            drift[name] = _distance(probs, np.stack([clf.scores(p) for p in pixels]))
    print(drift)
    assert drift["qat"] < drift["ptq"], drift
