"""The fine-tuning model (ImageNet backbone + new head), which blocks train, and its export.

Training uses the Keras fine-tuning guide's layout: the backbone is one nested model run in
inference mode in both phases: its BatchNorm layers are frozen (their ImageNet statistics) and
it is built without stochastic depth; only the new head's dropout is active. For
export the weights move by layer name into the flat model :func:`converters.efficientnet.
create_model` builds, which the converter, ``efficientnet-convert --weights`` and the weight
loaders all know.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from converters.arch import model_config
from converters.efficientnet import build_model, create_model
from converters.weights import WeightsError, WeightsMismatchError, load_weights
from edge.variants import get_variant

from .options import TrainingError

_BLOCK = re.compile(r"^(block\d+[a-z]+)_")
#: Layers after the last MBConv block (1×1 head conv + its BatchNorm): unfrozen in phase 2.
HEAD_CONV = ("top_conv", "top_bn", "top_activation")


def _backbone(name: str, weights: str | None, input_size: int, classes: int | None = None) -> Any:
    """The variant (with a head of ``classes`` when given) without stochastic depth: in Keras 3
    the outer model's ``training=True`` reaches a nested model whatever it was called with, so
    the backbone's drop-connect layers are left out rather than switched off."""
    cfg = replace(model_config(name), drop_connect_rate=0.0)
    model = build_model(cfg, input_size=input_size, include_top=classes is not None,
                        classes=classes or 1000)
    if weights is not None:
        load_weights(model, cfg.name, weights)
    return model


def load_backbone(name: str, weights: str | None, input_size: int) -> Any:
    """The variant without its classifier, with ``weights`` ('imagenet', a path, or None).

    A path may hold a backbone or a whole model of any class count (e.g. an earlier fine-tune's
    ``model.weights.h5``): its classifier is dropped.

    Raises:
        converters.weights.WeightsUnavailableError: weights that cannot be obtained here.
        TrainingError: weights of another architecture.
    """
    try:
        return _backbone(name, weights, input_size)
    except WeightsMismatchError as first:
        if weights in (None, "imagenet"):
            raise TrainingError(str(first)) from first
        # A Keras weights file of a whole model: load it into a model with a head of the same
        # size (read from the file), then keep the backbone.
        classes = _classes_in_keras_file(str(weights))
        if classes is None:
            raise TrainingError(str(first)) from first
        try:
            full = _backbone(name, weights, input_size, classes)
        except WeightsError as e:
            raise TrainingError(str(e)) from e
        backbone = _backbone(name, None, input_size)
        for layer in backbone.layers:
            if layer.weights:
                layer.set_weights(full.get_layer(layer.name).get_weights())
        return backbone


def _classes_in_keras_file(path: str) -> int | None:
    """Class count of the ``predictions`` layer stored in a Keras ``.weights.h5``/``.h5`` file."""
    try:
        import h5py  # noqa: PLC0415

        with h5py.File(path, "r") as f:
            found: list[int] = []

            def visit(name: str, obj: Any) -> None:
                if "predictions" in name and hasattr(obj, "shape") and len(obj.shape) == 1:
                    found.append(int(obj.shape[0]))
            f.visititems(visit)
            return found[0] if found else None
    except (OSError, ImportError, ValueError):
        return None


def build_classifier(backbone: Any, num_classes: int, dropout: float, keras_module: Any = None) -> Any:
    """``backbone(x, training=False)`` → global average pool → dropout → dense softmax."""
    if keras_module is None:
        import keras as keras_module  # noqa: PLC0415
    layers = keras_module.layers
    size = int(backbone.input_shape[1])
    inputs = layers.Input(shape=(size, size, 3), name="image")
    x = backbone(inputs, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="top_dropout")(x)
    # Zero-initialised head (as in Big Transfer): phase 1 starts from uniform predictions, and
    # the result depends on no random draw, so every strategy starts from the same weights.
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer="zeros",
                           name="predictions")(x)
    return keras_module.Model(inputs, outputs, name="classifier")


def block_names(backbone: Any) -> list[str]:
    """The MBConv blocks in order (``block1a`` … ``block7a`` for lite0)."""
    out: list[str] = []
    for layer in backbone.layers:
        m = _BLOCK.match(layer.name)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out


def set_trainable(backbone: Any, blocks: int) -> list[str]:
    """Freeze the backbone except the last ``blocks`` whole MBConv blocks (-1: all) and the
    head conv; BatchNorm layers stay frozen everywhere. Returns the unfrozen block names.

    Call :meth:`compile` afterwards: Keras reads ``trainable`` when it compiles.
    """
    names = block_names(backbone)
    if blocks == 0:
        backbone.trainable = False
        return []
    chosen = set(names if blocks < 0 else names[-blocks:])
    backbone.trainable = True
    for layer in backbone.layers:
        m = _BLOCK.match(layer.name)
        in_scope = (m is not None and m.group(1) in chosen) or layer.name in HEAD_CONV
        layer.trainable = in_scope and type(layer).__name__ != "BatchNormalization"
    return [n for n in names if n in chosen]


def default_dropout(name: str) -> float:
    return get_variant(name).dropout


def export_model(classifier: Any, name: str, num_classes: int) -> Any:
    """The flat :func:`create_model` model holding the classifier's weights (raw pixels in,
    probabilities out), ready for :func:`converters.tflite.convert`."""
    size = int(classifier.input_shape[1])
    flat = create_model(name, None, classes=num_classes, input_size=size)
    backbone = next(layer for layer in classifier.layers if hasattr(layer, "layers"))
    for layer in flat.layers:
        if not layer.weights or layer.name == "normalization":
            continue
        src = classifier.get_layer("predictions") if layer.name == "predictions" else \
            backbone.get_layer(layer.name)
        layer.set_weights(src.get_weights())
    return flat
