"""edge.quant: the pure numpy pieces under the classifier (no model needed)."""
import numpy as np
import pytest

from edge.quant import dequantize, input_affine, looks_like_probabilities, quantize, softmax, top_k


def test_quantize_rounds_and_clips_to_dtype_range():
    q = quantize(np.array([-1000.0, -0.26, 0.24, 0.26, 1000.0]), 0.5, 10, np.uint8)
    assert q.dtype == np.uint8
    assert q.tolist() == [0, 9, 10, 11, 255]
    assert quantize(np.array([-1e9, 1e9]), 1.0, 0, np.int8).tolist() == [-128, 127]


def test_dequantize_extreme_zero_points_do_not_overflow():
    q = np.array([0, 255], dtype=np.uint8)
    assert dequantize(q, 1.0, 255).tolist() == [-255.0, 0.0]  # uint8 arithmetic would wrap
    q8 = np.array([-128, 127], dtype=np.int8)
    assert dequantize(q8, 2.0, 127).tolist() == [-510.0, 0.0]
    assert dequantize(q8, 1.0, -128).tolist() == [0.0, 255.0]


def test_input_affine_identity_when_quantisation_undoes_normalisation():
    # real = (pixel - 127) / 128, quantised with scale 1/128, zp 127: raw pixels ARE the tensor
    assert input_affine([127.0], [128.0], 1 / 128, 127).identity
    assert input_affine([0.0], [1.0], 1.0, 0).identity
    assert input_affine(0.0, 1.0).identity  # float input taking raw 0–255 pixels
    assert not input_affine([127.0], [128.0]).identity  # float input wanting [-1, 1]
    assert not input_affine([127.5], [127.5], 1 / 128, 127).identity


def test_input_affine_maps_pixels_like_normalise_then_quantise():
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    mean, std, scale, zp = [120.0, 115.0, 100.0], [60.0, 58.0, 57.0], 0.02, -5
    expected = quantize((pixels.astype(np.float64) - mean) / std, scale, zp, np.int8)
    got = input_affine(mean, std, scale, zp).apply(pixels, np.int8)
    assert got.dtype == np.int8
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_identity_apply_returns_the_same_array_without_copying():
    pixels = np.zeros((4, 4, 3), np.uint8)
    assert input_affine([0.0], [1.0], 1.0, 0).apply(pixels, np.uint8) is pixels


def test_input_affine_rejects_bad_channels_and_zero_std():
    with pytest.raises(ValueError):
        input_affine([1.0, 2.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        input_affine([0.0], [0.0])


def test_top_k_ties_keep_lower_index_first_and_threshold_filters():
    scores = np.array([0.1, 0.3, 0.3, 0.05, 0.3, 0.2])
    assert [i for i, _ in top_k(scores, 4)] == [1, 2, 4, 5]
    assert top_k(scores, 10, threshold=0.25) == [(1, 0.3), (2, 0.3), (4, 0.3)]
    assert top_k(scores, 0) == []
    assert len(top_k(scores, None)) == 6
    with pytest.raises(ValueError):
        top_k(scores, -1)


def test_softmax_and_probability_detection():
    p = softmax(np.array([1000.0, 1000.0, -1000.0]))
    assert np.allclose(p, [0.5, 0.5, 0.0])
    assert looks_like_probabilities(p)
    assert not looks_like_probabilities(np.array([2.0, -1.0, 0.5]))
    assert not looks_like_probabilities(np.array([0.2, 0.2, 0.2]))
    # a uint8 softmax output dequantised with scale 1/256 sums to slightly less than 1
    assert looks_like_probabilities(np.array([142, 113, 0]) / 256.0)
