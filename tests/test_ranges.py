"""The ``range-mse`` recipe step: activation ranges by least int8 error instead of min/max."""
from __future__ import annotations

import numpy as np
import pytest

from converters.recipes.ranges import BINS, mse_range


def int8_error(x: np.ndarray, lo: float, hi: float) -> float:
    """Mean squared error of TFLite-style asymmetric uint8 quantisation of ``x`` over [lo, hi]
    (independent of the code under test: scale, integer zero point, round, clamp)."""
    scale = (hi - lo) / 255
    zp = np.clip(np.round(-lo / scale), 0, 255)
    q = np.clip(np.round(x / scale) + zp, 0, 255)
    return float(np.mean(((q - zp) * scale - x) ** 2))


def chosen(x: np.ndarray) -> tuple[float, float, float, float]:
    lo, hi = float(min(x.min(), 0)), float(max(x.max(), 0))
    h = np.histogram(x, BINS, (lo, hi))[0]
    return (lo, hi) + mse_range(h, lo, hi)


def test_a_long_thin_tail_gets_a_narrower_range_with_less_int8_error_on_new_values():
    rng = np.random.default_rng(0)
    # a post-ReLU activation: most values near 0, the max set by a handful of rare ones
    seen = rng.exponential(1.0, 2_000_000)
    lo, hi, a, b = chosen(seen)
    assert a == 0 and b < 0.9 * hi
    fresh = rng.exponential(1.0, 2_000_000)
    assert int8_error(fresh, a, b) < 0.9 * int8_error(fresh, lo, hi)


def test_signed_tails_are_narrowed_on_both_sides():
    rng = np.random.default_rng(1)
    seen = rng.laplace(0.3, 1.0, 2_000_000)
    lo, hi, a, b = chosen(seen)
    assert lo < a < 0 < b < hi
    fresh = rng.laplace(0.3, 1.0, 2_000_000)
    assert int8_error(fresh, a, b) < 0.9 * int8_error(fresh, lo, hi)


def test_a_range_that_is_all_used_is_kept():
    rng = np.random.default_rng(2)
    seen = rng.uniform(0, 6, 200_000)  # a saturating ReLU6: values all over [0, 6]
    lo, hi, a, b = chosen(seen)
    assert a == 0 and b >= 0.95 * hi


def test_empty_or_degenerate_histograms_keep_their_range():
    assert mse_range(np.zeros(BINS), -1.0, 2.0) == (-1.0, 2.0)
    assert mse_range(np.ones(BINS), 0.0, 0.0) == (0.0, 0.0)


def _output_scales(data: bytes) -> list[float]:
    """Output scales of the ops range-mse re-chooses: convolutions and residual adds."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    details = {d["index"]: d for d in it.get_tensor_details()}
    return [details[o["outputs"][0]]["quantization"][0] for o in it._get_ops_details()
            if o["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD")]


def test_range_mse_narrows_conv_and_add_output_scales_of_the_converted_model(photos, monkeypatch):
    import tensorflow as tf

    import converters.recipes.ranges as ranges
    from converters.efficientnet import create_model
    from converters.tflite import convert, quantize_calibrated
    from tests.conftest import centre_crops

    seen = {}

    def spy(calibrated, inputs, progress=None):  # keep the calibrated model the step received
        seen["calibrated"] = calibrated
        return real(calibrated, inputs, progress)

    real = ranges.mse_ranges
    monkeypatch.setattr(ranges, "mse_ranges", spy)
    small = create_model("lite0", input_size=96)
    pixels = centre_crops(photos, "lite0")[:, ::2, ::2][:, :96, :96].copy()
    data, report = convert(small, "int8", calibration=pixels, num_samples=len(pixels), holdout=0,
                           recipe="range-mse", keep_float="none", layer_report=0)
    step = report.recipe.steps[-1]
    assert report.recipe.recipe == "range-mse" and step["step"] == "range-mse"
    # the same calibration quantised with TFLite's own min/max ranges: plain int8
    plain = _output_scales(quantize_calibrated(seen["calibrated"], tf.uint8, tf.uint8))
    narrowed = _output_scales(data)
    assert step["tensors"] == len(plain) == len(narrowed) and step["images"] == len(pixels)
    assert all(n <= p * (1 + 1e-6) for n, p in zip(narrowed, plain))
    assert sum(n < 0.99 * p for n, p in zip(narrowed, plain)) == step["narrowed"] > 0


def test_range_mse_is_a_recipe_step_in_any_order():
    from converters.recipes import RecipeStep, parse_recipe

    assert parse_recipe("range-mse+gptq") == (RecipeStep.RANGE_MSE, RecipeStep.GPTQ)
    with pytest.raises(ValueError, match="range-mse"):
        parse_recipe("range-mse+range-mse")
