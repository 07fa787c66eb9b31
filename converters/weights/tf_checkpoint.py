"""Official tensorflow/tpu EfficientNet-Lite checkpoints (``efficientnet-liteN/model.ckpt*``).

Variables are named ``<model>/stem/conv2d/kernel``, ``<model>/blocks_<n>/depthwise_conv2d/
depthwise_kernel``, ``<model>/blocks_<n>/tpu_batch_normalization_<k>/gamma``,
``<model>/head/dense/bias`` …; the exponential-moving-average copies (``…/ExponentialMovingAverage``),
which the official evaluation uses, win when present. Kernel layouts are already Keras layouts.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from . import WeightsMismatchError, WeightsUnavailableError, assign
from .layout import slots, tf_variable_names

_EMA = "/ExponentialMovingAverage"


def _prefix(path: str) -> str | None:
    """The checkpoint prefix for a directory or prefix path, or None."""
    if os.path.isdir(path):
        state = os.path.join(path, "checkpoint")
        if os.path.isfile(state):
            import tensorflow as tf  # noqa: PLC0415

            latest = tf.train.latest_checkpoint(path)
            if latest:
                return latest
        idx = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        return os.path.join(path, idx[-1][: -len(".index")]) if idx else None
    return path if os.path.isfile(path + ".index") else None


def is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a TF checkpoint directory or prefix."""
    return _prefix(os.fspath(path)) is not None


def _model_scope(names: list[str]) -> str:
    for n in names:
        if n.endswith("/stem/conv2d/kernel"):
            return n[: -len("/stem/conv2d/kernel")]
    raise WeightsMismatchError("checkpoint has no '<model>/stem/conv2d/kernel': not an "
                               "official EfficientNet checkpoint")


def load_checkpoint(model: Any, path: str) -> None:
    """Load an official EfficientNet(-Lite) checkpoint into a Keras model of this package.

    Raises:
        WeightsUnavailableError: not a checkpoint.
        WeightsMismatchError: a variable missing or of another shape; names the first one.
    """
    prefix = _prefix(os.fspath(path))
    if prefix is None:
        raise WeightsUnavailableError(f"{path} is not a TensorFlow checkpoint")
    import tensorflow as tf  # noqa: PLC0415

    reader = tf.train.load_checkpoint(prefix)
    names = list(reader.get_variable_to_shape_map())
    scope = _model_scope(names)
    available = set(names)
    out: dict[str, list[np.ndarray]] = {}
    for slot in slots(model):
        n_weights = len(model.get_layer(slot.layer).weights)
        arrays = []
        for var in tf_variable_names(slot, n_weights):
            full = f"{scope}/{var}"
            key = full + _EMA if full + _EMA in available else full
            if key not in available:
                raise WeightsMismatchError(
                    f"checkpoint {prefix} does not fit this model: no variable {full!r} for "
                    f"layer {slot.layer!r}")
            arrays.append(reader.get_tensor(key))
        out[slot.layer] = arrays
    assign(model, out, f"checkpoint {prefix}")


def save_checkpoint(model: Any, prefix: str, scope: str, ema: bool = True) -> str:
    """Write the model's weights as an official-style checkpoint (``scope`` e.g.
    ``efficientnet-lite0``); with ``ema`` also the ``ExponentialMovingAverage`` copies.

    Returns the prefix written.
    """
    import tensorflow as tf  # noqa: PLC0415

    names, tensors = [], []
    for slot in slots(model):
        layer = model.get_layer(slot.layer)
        values = layer.get_weights()
        for var, value in zip(tf_variable_names(slot, len(values)), values):
            names.append(f"{scope}/{var}")
            tensors.append(tf.constant(value))
            if ema:
                names.append(f"{scope}/{var}{_EMA}")
                tensors.append(tf.constant(value))
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    return prefix
