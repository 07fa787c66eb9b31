"""The model zoo: every variant builds with the official shapes, counts and layer names."""
from __future__ import annotations

import numpy as np
import pytest

from converters.arch import decode_block, model_config
from converters.efficientnet import create_model, efficientnet_lite0
from edge.variants import MODEL_NAMES, get_variant, preprocess_spec

# Official trainable parameter counts (tensorflow/tpu lite README / reference implementation).
OFFICIAL_LITE_PARAMS = {"lite0": 4_652_008, "lite1": 5_416_680, "lite2": 6_092_072,
                        "lite3": 8_197_096, "lite4": 13_006_568}


def trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name", sorted(OFFICIAL_LITE_PARAMS))
def test_lite_builds_with_official_parameter_count_relu6_and_no_se(name):
    model = create_model(name, input_size=64)
    assert trainable(model) == OFFICIAL_LITE_PARAMS[name]
    out = model(np.full((2, 64, 64, 3), 127.0, np.float32))
    assert out.shape == (2, 1000)
    np.testing.assert_allclose(np.asarray(out).sum(axis=1), 1.0, atol=1e-5)
    names = [layer.name for layer in model.layers]
    assert not any("_se_" in n for n in names)
    acts = [layer for layer in model.layers if "activation" in layer.name]
    assert acts and all(type(layer).__name__ == "ReLU" and float(layer.max_value) == 6.0 for layer in acts)
    assert model.get_layer("stem_conv").filters == 32  # stem fixed
    assert model.get_layer("top_conv").filters == 1280  # head fixed


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n.startswith("b")])
def test_b_models_match_keras_applications(name):
    import keras

    ours = create_model(name, input_size=64)
    ref = getattr(keras.applications, f"EfficientNet{name.upper()}")(weights=None, input_shape=(64, 64, 3))
    assert trainable(ours) == trainable(ref)
    assert any(layer.name == "block1a_se_excite" for layer in ours.layers)
    assert ours.get_layer("stem_activation").get_config()["activation"] in ("swish", "silu")
    def weighted(m):
        return {lyr.name for lyr in m.layers if lyr.weights and not lyr.name.startswith("normalization")}

    assert weighted(ref) == weighted(ours)


def test_b0_weight_transfer_reproduces_keras_applications_outputs():
    """The path 'imagenet' weights take: Keras applications layers → ours, by name."""
    import keras

    from converters.weights import transfer_from_keras

    ref = keras.applications.EfficientNetB0(weights=None, input_shape=(96, 96, 3))
    ours = create_model("b0", input_size=96, include_preprocessing=False)
    transfer_from_keras(ours, ref, "test")
    # Keras computes Rescaling(1/255) then an un-adapted Normalization (identity): feed 255*z.
    rng = np.random.default_rng(0)
    z = rng.normal(size=(2, 96, 96, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(z), ref(z * 255.0), atol=1e-5)


def test_layer_names_are_stable_and_meaningful():
    a = [layer.name for layer in efficientnet_lite0(input_size=64).layers]
    b = [layer.name for layer in efficientnet_lite0(input_size=64).layers]
    assert a == b
    for n in ("image", "normalization", "stem_conv", "stem_bn", "block1a_dwconv",
              "block1a_project_conv", "block2a_expand_conv", "block2b_add", "block7a_project_bn",
              "top_conv", "top_bn", "avg_pool", "top_dropout", "predictions"):
        assert n in a
    assert a.index("normalization") == 1 and a.index("stem_conv") == 2  # separate, in front


def test_normalisation_is_in_graph_for_raw_pixels():
    model = create_model("lite0", input_size=64)
    norm = model.get_layer("normalization")
    x = np.array([[[[0.0, 127.0, 255.0]]]], np.float32)
    np.testing.assert_allclose(np.asarray(norm(x)), [[[[-127 / 128, 0.0, 1.0]]]], atol=1e-6)
    bnorm = create_model("b0", input_size=64).get_layer("normalization")
    y = np.asarray(bnorm(np.array([[[[0.485 * 255, 0.0, 255.0]]]], np.float32)))
    np.testing.assert_allclose(y, [[[[0.0, -0.456 / 0.224, (1 - 0.406) / 0.225]]]], atol=1e-5)


def test_tf_keras_builds_the_same_model_for_qat():
    tf_keras = pytest.importorskip("tf_keras")
    k3 = create_model("lite0", input_size=64)
    k2 = create_model("lite0", input_size=64, keras_module=tf_keras)
    assert isinstance(k2, tf_keras.Model)
    assert [lyr.name for lyr in k2.layers] == [lyr.name for lyr in k3.layers]
    k2.set_weights(k3.get_weights())
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    np.testing.assert_allclose(k2(x).numpy(), np.asarray(k3(x)), atol=1e-5)


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="lite4") as e:
        create_model("b9")
    assert "b0" in str(e.value)
    assert get_variant("efficientnet-lite2").name == "lite2"


@pytest.mark.parametrize("text,token", [("r1_k3_s11_e1_i32_o16_xx9", "xx9"),
                                        ("r1_k3_s11_e1_i32", "'o'"), ("r1_k3_s12_e1_i32_o16", "s12")])
def test_block_strings_reject_bad_tokens_by_name(text, token):
    with pytest.raises(ValueError, match=token):
        decode_block(text)


def test_variant_table_and_specs():
    assert [model_config(n).resolution for n in ("b0", "b7", "lite0", "lite4")] == [224, 600, 224, 300]
    cfg = model_config("lite3")
    assert cfg.stages()[0].filters_in == 32  # lite3's first block receives the fixed stem
    assert cfg.stages()[0].repeats == 1 and cfg.stages()[-1].repeats == 1
    spec = preprocess_spec("lite0")
    assert (spec.size, spec.resize_filter, spec.crop_fraction) == (224, "bicubic", 0.875)
    assert spec.mean == (127.0,) * 3 and spec.std == (128.0,) * 3
