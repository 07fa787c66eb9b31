"""The ``range-mse`` recipe step: activation ranges chosen by quantisation error, not min/max.

TFLite's calibration gives each activation tensor the min and max it saw. One rare large value
then stretches the int8 step for every other value. This step runs the calibrated float model
over the calibration inputs, histograms each convolution output, and replaces its range by the
one that minimises the expected squared error of int8 quantisation: rounding noise inside the
range (step² / 12) plus clipping outside it (TensorRT's and ACIQ's MSE calibration). The
quantiser then derives scales and zero points from the new ranges as usual.

The pure numpy core is :func:`mse_range`; :func:`mse_ranges` binds it to a calibrated model.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Iterable

import numpy as np

#: Calibration inputs whose activations are histogrammed.
RANGE_IMAGES = 64
#: Histogram bins per tensor, spread over its calibrated [min, max].
BINS = 2048
#: Ops whose output ranges are re-chosen: convolutions and the residual ADDs. The ADDs kept
#: min/max while blocks 1-3 were int8 (clipping them then lost 1.2 pt on lite0, 600 crops); with
#: those blocks in float (keep_float 'auto'), re-choosing the later ADDs' ranges too lifted lite1
#: (seed-11 folder, 3,000 crops) from 96.6 / 98.4 % to 97.2 / 98.8 % (benchmarks/int8_recipes.py).
RANGE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD")
#: Candidate ranges: the calibrated range shrunk by these factors (towards 0 on both sides).
SHRINK = np.linspace(0.2, 1.0, 81)


def mse_range(hist: np.ndarray, lo: float, hi: float, levels: int = 256,
              shrink: Iterable[float] = SHRINK) -> tuple[float, float]:
    """The range (a shrunk copy of [lo, hi], always containing 0) that minimises the expected
    squared int8 error of values histogrammed into ``hist`` (equal bins over [lo, hi]).

    Error model: values inside the range get uniform rounding noise of step² / 12 (step =
    width / (levels - 1)); values outside are clipped to its ends.
    """
    h = np.asarray(hist, dtype=np.float64)
    if h.sum() == 0 or not hi > lo:
        return float(lo), float(hi)
    edges = np.linspace(lo, hi, len(h) + 1)
    c = (edges[:-1] + edges[1:]) / 2
    best = (np.inf, float(lo), float(hi))
    for k in shrink:
        a, b = min(lo * k, 0.0), max(hi * k, 0.0)
        step = (b - a) / (levels - 1)
        inside = (c >= a) & (c <= b)
        err = float((h * (c - np.clip(c, a, b)) ** 2).sum() + h[inside].sum() * step * step / 12)
        if err < best[0]:
            best = (err, a, b)
    return best[1], best[2]


def _targets(model: Any, op_names: Iterable[str]) -> dict[int, tuple[float, float]]:
    """Output tensors of ``op_names`` ops that carry a calibrated per-tensor [min, max]."""
    from tensorflow.lite.python import schema_py_generated as schema  # noqa: PLC0415

    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    wanted = {getattr(schema.BuiltinOperator, n) for n in op_names}
    sg = model.subgraphs[0]
    out = {}
    for op in sg.operators:
        if codes[op.opcodeIndex] not in wanted:
            continue
        i = int(op.outputs[0])
        q = sg.tensors[i].quantization
        if q is not None and q.min is not None and q.max is not None and len(q.min) == 1:
            out[i] = (float(q.min[0]), float(q.max[0]))
    return out


def activation_histograms(calibrated: bytes, inputs: np.ndarray,
                          tensors: dict[int, tuple[float, float]], bins: int = BINS,
                          progress: Callable[[Iterable], Iterable] | None = None
                          ) -> dict[int, np.ndarray]:
    """Histograms (``bins`` over each tensor's [min, max]) of ``tensors`` of the calibrated float
    model over ``inputs`` (N×H×W×3 in the model's input domain)."""
    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415

    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": reading them is the point
        warnings.simplefilter("ignore")
        it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                         num_threads=None)
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    hist = {i: np.zeros(bins, np.int64) for i in tensors}
    for x in (progress(inputs) if progress else inputs):
        it.set_tensor(index, np.asarray(x, np.float32)[None])
        it.invoke()
        for i, (lo, hi) in tensors.items():
            hist[i] += np.histogram(it.get_tensor(i), bins, (lo, hi))[0]
    return hist


def mse_ranges(calibrated: bytes, inputs: np.ndarray,
               progress: Callable[[Iterable], Iterable] | None = None) -> tuple[bytes, dict]:
    """``calibrated`` (a TFLite model from calibration, before quantisation) with the ranges of
    its :data:`RANGE_OPS` outputs re-chosen by :func:`mse_range` over the first
    :data:`RANGE_IMAGES` of ``inputs``; and what the step did (for the recipe report)."""
    from tensorflow.lite.tools import flatbuffer_utils  # noqa: PLC0415

    t0 = time.perf_counter()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(calibrated))
    tensors = _targets(model, RANGE_OPS)
    x = np.asarray(inputs, np.float32)[:RANGE_IMAGES]
    hist = activation_histograms(calibrated, x, tensors, progress=progress)
    kept = []
    sg = model.subgraphs[0]
    for i, (lo, hi) in tensors.items():
        a, b = mse_range(hist[i], lo, hi)
        q = sg.tensors[i].quantization
        q.min, q.max = np.array([a], np.float32), np.array([b], np.float32)
        kept.append((b - a) / (hi - lo) if hi > lo else 1.0)
    out = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    kept_arr = np.array(kept) if kept else np.ones(1)
    return out, {"step": "range-mse", "tensors": len(tensors), "images": len(x),
                 "narrowed": int((kept_arr < 0.999).sum()),
                 "median_range_kept": round(float(np.median(kept_arr)), 4),
                 "min_range_kept": round(float(kept_arr.min()), 4),
                 "seconds": round(time.perf_counter() - t0, 2)}
