"""edge.layers: the per-layer int8 error report on the real lite0 fp32 / full-integer int8 pair
and real photos."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edge.layers import (LayerMetric, LayerReportError, format_table, keras_layers_of,
                         layer_errors, rank, weight_error_conv)


@pytest.fixture(scope="module")
def report(converted, full_int8, photos):
    return layer_errors(converted["fp32"][0], full_int8, [p.path for p in photos])


def test_every_keras_conv_and_dense_layer_is_reported_by_name(report, lite0_imagenet):
    keras_names = {layer.name for layer in lite0_imagenet.layers}
    weighted = {layer.name for layer in lite0_imagenet.layers
                if type(layer).__name__ in ("Conv2D", "DepthwiseConv2D", "Dense")}
    named = {n for e in report for n in e.keras_layers}
    assert named - {"output"} <= keras_names  # no invented names
    assert weighted <= named  # every conv, depthwise conv and the dense head
    stem = next(e for e in report if "stem_conv" in e.keras_layers)
    assert stem.keras_layers == ("stem_conv", "stem_bn", "stem_activation")  # BN folded, ReLU6 fused
    assert stem.op == "CONV_2D" and stem.weight_max > 1.0


def test_ranked_worst_first_and_the_first_layers_lead(report):
    noise = [e.weight_noise_in_scales for e in report if e.weight_noise_in_scales is not None]
    assert noise == sorted(noise, reverse=True)
    assert all(e.weight_noise_in_scales is None for e in report[len(noise):])
    # Measured on this model (the study found the same two): the stem conv and
    # block1a's depthwise conv, with BN-folded weights up to ~17.6, lead by a wide margin.
    assert {report[0].keras_layers[0], report[1].keras_layers[0]} == {"stem_conv", "block1a_dwconv"}
    assert report[1].weight_noise_in_scales > 2 * report[2].weight_noise_in_scales
    by_sqnr = rank(report, LayerMetric.SQNR)
    assert [e.sqnr_db for e in by_sqnr] == sorted(e.sqnr_db for e in report)
    by_rmse = rank(report, "rmse")
    assert by_rmse[0].rmse_in_scales == max(e.rmse_in_scales for e in report)


def test_isolated_weight_noise_explains_the_stem_error(report):
    """The uint8 input is exact, so the stem output's whole error is its int8 weights plus the
    output rounding (1/12 scale²), less what ReLU6 clips: the isolated estimate must match."""
    stem = next(e for e in report if "stem_conv" in e.keras_layers)
    expected = math.sqrt(stem.weight_noise_in_scales ** 2 + 1 / 12)
    assert stem.rmse_in_scales == pytest.approx(expected, rel=0.25)
    assert stem.rmse_in_scales <= expected * 1.02  # clipping only removes error


def test_output_error_equals_a_hand_computation(report, converted, full_int8, photos):
    from ai_edge_litert.interpreter import Interpreter

    from edge.preprocess import preprocess
    from edge.variants import preprocess_spec

    outs = []
    for path, dtype in ((converted["fp32"][0], np.float32), (full_int8, np.uint8)):
        it = Interpreter(model_path=path)
        it.allocate_tensors()
        o = it.get_output_details()[0]
        rows = []
        for p in photos:
            x = preprocess(p.path, preprocess_spec("lite0"))
            it.set_tensor(it.get_input_details()[0]["index"], x[None].astype(dtype))
            it.invoke()
            scale, zp = o["quantization"]
            y = it.get_tensor(o["index"]).astype(np.float64)
            rows.append((y - zp) * scale if scale else y)
        outs.append(np.concatenate(rows))
    err = outs[1] - outs[0]
    out = next(e for e in report if e.keras_layer == "output")
    assert out.rmse == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-4)
    assert out.sqnr_db == pytest.approx(10 * np.log10(np.sum(outs[0] ** 2) / np.sum(err ** 2)), rel=1e-4)


def test_xnnpack_intermediates_match_the_builtin_kernels(converted, full_int8, photos):
    """preserve_all_tensors with XNNPACK must give real intermediate values: the built-in
    reference kernels (XNNPACK off) tell the same story, tensor by tensor. (The final softmax
    differs by a few dB between the two kernel sets; the output is checked by hand above.)"""
    paths = [p.path for p in photos[:2]]
    fast = {e.tensor: e for e in layer_errors(converted["fp32"][0], full_int8, paths)}
    ref = layer_errors(converted["fp32"][0], full_int8, paths, delegate="cpu")
    assert len(ref) == len(fast)
    for e in (e for e in ref if e.keras_layer != "output"):
        f = fast[e.tensor]
        assert f.sqnr_db == pytest.approx(e.sqnr_db, abs=1.0), e.keras_layer
        if e.weight_noise_in_scales is not None:  # from float tensors only: the same model
            assert f.weight_noise_in_scales == pytest.approx(e.weight_noise_in_scales, rel=0.02)


def test_table_top_n_and_errors(converted, full_int8, photos):
    top3 = layer_errors(converted["fp32"][0], full_int8, [photos[0].path], top=3)
    assert len(top3) == 3
    table = format_table(top3)
    assert len(table.splitlines()) == 5 and "stem_conv+stem_bn+stem_activation" in table
    with pytest.raises(LayerReportError, match="fp32 model first"):
        layer_errors(full_int8, full_int8, [photos[0].path])
    with pytest.raises(LayerReportError, match="no quantised tensor"):
        layer_errors(converted["fp32"][0], converted["fp32"][0], [photos[0].path])
    with pytest.raises(ValueError, match="at least one image"):
        layer_errors(converted["fp32"][0], full_int8, [])
    with pytest.raises(FileNotFoundError):
        layer_errors("missing.tflite", full_int8, [photos[0].path])


def test_keras_layer_names_from_tensor_names():
    name = ("efficientnet-lite0_1/block1a_activation_1/Relu6;efficientnet-lite0_1/block1a_bn_1/"
            "batchnorm/add_1;efficientnet-lite0_1/block1a_dwconv_1/depthwise")
    assert keras_layers_of(name) == ("block1a_dwconv", "block1a_bn", "block1a_activation")
    assert keras_layers_of(name, known=["block1a_dwconv"]) == ("block1a_dwconv",)
    assert keras_layers_of("tfl.quantize") == ()
    assert keras_layers_of("model/conv_2/Conv2D", known=["conv_2"]) == ("conv_2",)


def test_weight_error_of_a_convolution_is_the_convolution_of_the_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 7, 3)).astype(np.float32)
    dw = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # [out, kh, kw, in]
    y = weight_error_conv(x, dw, "CONV_2D")
    # position (i, j) of the 'valid' output: the sum over the 3x3x3 window.
    assert y.shape == (4 * 5, 4)
    want = np.einsum("hwc,ohwc->o", x[1:4, 2:5], dw)
    np.testing.assert_allclose(y[1 * 5 + 2], want, rtol=1e-5)
    dd = rng.normal(size=(1, 3, 3, 3)).astype(np.float32)  # depthwise [1, kh, kw, C]
    yd = weight_error_conv(x, dd, "DEPTHWISE_CONV_2D", stride=2)
    assert yd.shape == (2 * 3, 3)
    np.testing.assert_allclose(yd[1 * 3 + 1], np.einsum("hwc,hwc->c", x[2:5, 2:5], dd[0]), rtol=1e-5)
