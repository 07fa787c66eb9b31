"""Per-layer int8 error report: each quantised tensor against the float model, by Keras layer.

Both models run with ``experimental_preserve_all_tensors`` on the same decoded pixels (each gets
its own input: Lite int8 models take raw uint8 pixels, fp32 models raw float pixels). Tensors are
matched by the Keras layer names the converter writes into TFLite tensor names; BN is folded
into the convolution and the activation fused, so one int8 tensor often stands for
``conv+bn+activation``.

Two kinds of error are reported per tensor:

* cumulative: dequantised int8 output minus the float output (RMSE, in units of the tensor's
  quantisation scale, and SQNR). It grows with depth, because every upstream error arrives too.
* isolated (convolutions and dense layers): ``(W_q - W) · x`` — the output error the layer's own
  int8 weights cause on the float model's input ``x``, as RMS in output scales, and its
  per-channel mean (the part bias correction removes). Estimated on all stride-1 windows of
  the input, padding ignored. This is what singles out the layers worth fixing.
"""
from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

from . import quant
from .backends import load_backend
from .classifier import default_input_norm
from .metadata import MetadataError, ModelSource, load_model_bytes, read_metadata
from .preprocess import ImageInput, preprocess
from .sysinfo import usable_cores
from .variants import PreprocessSpec

#: Ops whose second input is a weight tensor ``(W_q - W) · x`` is estimated for.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
#: Output positions per image and layer sampled for the weight-error estimate.
MAX_POSITIONS = 512
_SKIP_OPS = ("QUANTIZE", "DEQUANTIZE", "DELEGATE")
_SUFFIX = re.compile(r"_\d+$")


class LayerMetric(str, enum.Enum):
    """What :func:`layer_errors` ranks by (worst first); shared by the API and the CLI."""

    WEIGHT_NOISE = "weight-noise"  # isolated: RMS of (W_q - W)·x in output scales
    RMSE = "rmse"  # cumulative: RMSE in output scales
    SQNR = "sqnr"  # cumulative: lowest SQNR first


class LayerReportError(ValueError):
    """The two models cannot be compared tensor by tensor (see the message for why)."""


@dataclass(frozen=True)
class LayerError:
    """One quantised tensor of the int8 model against its float counterpart."""

    tensor: str  #: TFLite tensor name in the int8 model
    keras_layer: str  #: Keras layer(s) it stands for, e.g. ``stem_conv+stem_bn+stem_activation``
    keras_layers: tuple[str, ...]
    op: str  #: TFLite op producing it (CONV_2D, DEPTHWISE_CONV_2D, ADD, …)
    position: int  #: order of the op in the int8 graph
    shape: tuple[int, ...]
    scale: float  #: the tensor's quantisation scale
    zero_point: int
    rmse: float  #: cumulative RMSE of dequantised int8 − float, in real units
    rmse_in_scales: float  #: ``rmse / scale``; plain rounding alone gives 1/√12 ≈ 0.29
    sqnr_db: float  #: ``10·log10(Σ float² / Σ error²)``
    weight_noise_in_scales: float | None = None  #: RMS of ``(W_q − W)·x`` / scale (weighted ops)
    weight_bias_in_scales: float | None = None  #: RMS over channels of its per-channel mean
    weight_max: float | None = None  #: largest |float weight| (BN folded)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["keras_layers"], d["shape"] = list(self.keras_layers), list(self.shape)
        return d


# -- pure functions ---------------------------------------------------------------------------
def keras_layers_of(tensor_name: str, known: Iterable[str] | None = None) -> tuple[str, ...]:
    """Keras layer names in a TFLite tensor name, conv/dense first, then BN, then activation.

    A name is ``;``-joined op paths such as ``efficientnet-lite0_1/stem_bn_1/batchnorm/add_1``:
    the component after the model scope is the layer, with Keras 3's ``_<n>`` scope suffix
    removed. With ``known`` (the Keras model's layer names) only those names are kept and the
    suffix is removed only when that gives a known name.
    """
    known_set = set(known) if known is not None else None
    found: list[str] = []
    for part in tensor_name.split(";"):
        comps = part.split("/")
        if len(comps) < 2:
            continue
        raw = comps[1]
        bare = _SUFFIX.sub("", raw)
        if known_set is None:
            name = bare
        else:
            name = raw if raw in known_set else (bare if bare in known_set else None)
        if name and name not in found:
            found.append(name)

    def role(n: str) -> int:
        if n.endswith("bn") or "batchnorm" in n:
            return 1
        return 2 if "activation" in n or n.endswith("relu") else 0

    return tuple(sorted(found, key=role))


def weight_error_conv(x: np.ndarray, dw: np.ndarray, op: str, stride: int = 1) -> np.ndarray:
    """``(W_q - W) · x`` at every ``stride``-th 'valid' position: (positions, out channels).

    ``x``: the layer's float input, [1x]HxWxC (conv) or (…, C) (dense). ``dw``: weight error in
    TFLite layout: CONV_2D ``[out, kh, kw, in]``, DEPTHWISE_CONV_2D ``[1, kh, kw, C·m]``,
    FULLY_CONNECTED ``[out, in]``. Padding is ignored (only windows inside the input count).
    """
    x = np.asarray(x, dtype=np.float32)
    dw = np.asarray(dw, dtype=np.float32)
    if op == "FULLY_CONNECTED":
        return x.reshape(-1, dw.shape[-1]) @ dw.reshape(dw.shape[0], -1).T
    if x.ndim == 4:
        x = x[0]
    kh, kw = int(dw.shape[1]), int(dw.shape[2])
    h, w = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    cout = dw.shape[0] if op == "CONV_2D" else dw.shape[-1]
    if h < 1 or w < 1:
        return np.zeros((0, cout), np.float32)

    def window(i: int, j: int) -> np.ndarray:
        return x[i:i + (h - 1) * stride + 1:stride, j:j + (w - 1) * stride + 1:stride]

    if op == "CONV_2D":
        out = np.zeros((h * w, cout), np.float32)
        for i in range(kh):
            for j in range(kw):
                out += window(i, j).reshape(h * w, -1) @ dw[:, i, j, :].T
        return out
    mult = cout // x.shape[-1]  # depth multiplier: output channel c·m+k reads input c
    if mult > 1:
        x = np.repeat(x, mult, axis=-1)
    out = np.zeros((h, w, cout), np.float32)
    for i in range(kh):
        for j in range(kw):
            out += window(i, j) * dw[0, i, j, :]
    return out.reshape(h * w, -1)


def dequantize_weights(q: np.ndarray, params: dict) -> np.ndarray:
    """Per-tensor or per-channel dequantisation of a weight tensor (``quantization_parameters``)."""
    scales = np.asarray(params["scales"], dtype=np.float64)
    zps = np.asarray(params["zero_points"], dtype=np.int64)
    shape = [1] * q.ndim
    if scales.size > 1:
        shape[int(params.get("quantized_dimension", 0))] = -1
    return (q.astype(np.int64) - zps.reshape(shape)) * scales.reshape(shape)


# -- interpreter-bound ------------------------------------------------------------------------
@dataclass
class _Model:
    interp: Any
    spec: PreprocessSpec
    affine: quant.InputAffine
    in_index: int
    in_dtype: np.dtype
    out_index: int


def _open(model: ModelSource, delegate: str, num_threads: int | None) -> _Model:
    buf = load_model_bytes(model)
    try:
        info = read_metadata(buf)
    except MetadataError as e:
        raise LayerReportError(str(e)) from e
    backend = load_backend()
    kwargs: dict[str, Any] = {"model_content": buf, "experimental_preserve_all_tensors": True,
                              "num_threads": int(num_threads or usable_cores())}
    if delegate == "cpu":
        resolver = backend.builtin_without_default_delegates()
        if resolver is None:
            raise LayerReportError(f"the {backend.name} runtime cannot turn XNNPACK off")
        kwargs["experimental_op_resolver_type"] = resolver
    elif delegate != "xnnpack":
        raise ValueError(f"delegate must be 'xnnpack' or 'cpu', got {delegate!r}")
    import warnings  # noqa: PLC0415

    with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": that is the point
        warnings.simplefilter("ignore", UserWarning)
        interp = backend.Interpreter(**kwargs)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    dtype = np.dtype(inp["dtype"])
    scale, zp = inp["quantization"]
    size = int(inp["shape"][1])
    spec = info.spec if info and info.spec else PreprocessSpec(size=size)
    mean, std = (info.input_mean, info.input_std) if info else default_input_norm(dtype, scale, zp)
    return _Model(interp, spec, quant.input_affine(mean, std, scale, zp), int(inp["index"]), dtype,
                  int(out["index"]))


def _ops(interp: Any) -> list[dict]:
    return [op for op in interp._get_ops_details() if op["op_name"] not in _SKIP_OPS]  # noqa: SLF001


@dataclass
class _Pair:
    op: dict
    q_index: int
    f_index: int
    detail: dict
    layers: tuple[str, ...]
    f_input: int | None = None  # float model's input activation of the matching op
    dw: np.ndarray | None = None  # W_q - W
    wmax: float | None = None
    sums: list = field(default_factory=lambda: [0.0, 0.0, 0])  # Σ err², Σ f², n
    wsq: float = 0.0  # Σ ((W_q - W)·x)²
    wsum: np.ndarray | None = None  # Σ per channel of (W_q - W)·x
    wn: int = 0
    stride: int = 1


def _match(fm: _Model, qm: _Model, known: Iterable[str] | None) -> list[_Pair]:
    known = list(known) if known is not None else None
    f_by_key: dict[tuple, list[dict]] = {}
    for op in _ops(fm.interp):
        name = fm.interp._get_tensor_details(op["outputs"][0], 0)["name"]  # noqa: SLF001
        key = tuple(sorted(keras_layers_of(name, known)))
        if key:
            f_by_key.setdefault(key, []).append(op)
    pairs: list[_Pair] = []
    for op in _ops(qm.interp):
        d = qm.interp._get_tensor_details(op["outputs"][0], 0)  # noqa: SLF001
        if not d["quantization"][0]:
            continue
        layers = keras_layers_of(d["name"], known)
        cands = f_by_key.get(tuple(sorted(layers)))
        if not layers or not cands:
            continue
        fop = cands.pop(0)
        pair = _Pair(op, int(op["outputs"][0]), int(fop["outputs"][0]), d, layers)
        if op["op_name"] in WEIGHTED_OPS and fop["op_name"] == op["op_name"]:
            wq_d = qm.interp._get_tensor_details(int(op["inputs"][1]), 0)  # noqa: SLF001
            wf = fm.interp.get_tensor(int(fop["inputs"][1])).astype(np.float64)
            wq = qm.interp.get_tensor(int(op["inputs"][1]))
            if wq_d["quantization_parameters"]["scales"].size and wq.shape == wf.shape:
                pair.dw = (dequantize_weights(wq, wq_d["quantization_parameters"]) - wf).astype(np.float32)
                pair.wmax = float(np.abs(wf).max())
                pair.f_input = int(fop["inputs"][0])
                in_shape = fm.interp._get_tensor_details(pair.f_input, 0)["shape"]  # noqa: SLF001
                if len(in_shape) == 4:  # the op's stride, from its input and output heights
                    pair.stride = max(1, round(int(in_shape[1]) / int(d["shape"][1])))
        pairs.append(pair)
    # The model outputs (softmax): their names carry no layer, match them as the outputs.
    qo = qm.interp.get_output_details()[0]
    if qo["quantization"][0]:
        pairs.append(_Pair({"op_name": "OUTPUT", "index": 10 ** 6}, qm.out_index, fm.out_index,
                           qo, ("output",)))
    return pairs


def _pixels(img: ImageInput, spec: PreprocessSpec) -> np.ndarray:
    return preprocess(img, spec, draft=False)


def layer_errors(float_model: ModelSource, quant_model: ModelSource,
                 images: Sequence[ImageInput] | np.ndarray, top: int | None = None,
                 rank_by: LayerMetric | str = LayerMetric.WEIGHT_NOISE, *,
                 keras_layers: Iterable[str] | None = None, delegate: str = "xnnpack",
                 num_threads: int | None = None) -> list[LayerError]:
    """Error of every quantised tensor of ``quant_model`` against ``float_model``, worst first.

    Args:
        float_model: fp32 .tflite (path or bytes) converted from the same Keras model.
        quant_model: the int8 .tflite.
        images: paths, bytes, PIL images or HxWx3 arrays (or an NxHxWx3 array); each model
            preprocesses them with its own metadata spec. ~20 real images are plenty.
        top: keep only the ``top`` worst (None: all).
        rank_by: 'weight-noise' (isolated error of the layer's own int8 weights; tensors
            without weights follow, in graph order), 'rmse' (cumulative, in scales) or 'sqnr'.
        keras_layers: the Keras model's layer names, for exact name matching (optional).
        delegate: 'xnnpack' (the kernels users run) or 'cpu' (built-in reference kernels).

    Raises:
        FileNotFoundError: a model path that does not exist.
        LayerReportError: unreadable model, different input sizes, a quant model without
            quantised tensors, or no tensor of one model found in the other.
        ValueError: no images, bad ``rank_by``/``delegate``/``top``.
        edge.ImageDecodeError: an image that cannot be decoded.
    """
    rank_by = LayerMetric(rank_by)
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    imgs = list(images)
    if not imgs:
        raise ValueError("layer_errors needs at least one image")
    try:
        fm, qm = _open(float_model, delegate, num_threads), _open(quant_model, delegate, num_threads)
    except MetadataError as e:
        raise LayerReportError(str(e)) from e
    if fm.spec.size != qm.spec.size:
        raise LayerReportError(f"input sizes differ: float {fm.spec.size}, quantised {qm.spec.size}")
    if fm.in_dtype != np.float32:
        raise LayerReportError(f"float_model has a {fm.in_dtype} input: pass the fp32 model first")
    pairs = _match(fm, qm, keras_layers)
    if not any(p.op["op_name"] != "OUTPUT" for p in pairs):
        raise LayerReportError(
            "no quantised tensor of the int8 model matches a float tensor by Keras layer name: "
            "are both converted from the same Keras model, the second one to int8?")

    with _one_blas_thread():
        for img in imgs:
            _accumulate(img, fm, qm, pairs)
    out = [_result(p) for p in pairs if p.sums[2]]
    return rank(out, rank_by)[:top] if top else rank(out, rank_by)


def _one_blas_thread() -> Any:
    """Many small matrix products next to XNNPACK's spinning worker threads: a threaded BLAS
    only oversubscribes the cores (measured 3-10x slower on 2 busy cores). threadpoolctl is
    optional; without it the BLAS keeps its own threads."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:
        import contextlib  # noqa: PLC0415

        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _accumulate(img: ImageInput, fm: _Model, qm: _Model, pairs: list[_Pair]) -> None:
    """Run both models on one image and add its errors to every pair's sums."""
    fp = _pixels(img, fm.spec)
    qp = fp if qm.spec == fm.spec else _pixels(img, qm.spec)
    fm.interp.set_tensor(fm.in_index, fm.affine.apply(fp, fm.in_dtype)[None])
    qm.interp.set_tensor(qm.in_index, qm.affine.apply(qp, qm.in_dtype)[None])
    fm.interp.invoke()
    qm.interp.invoke()
    for p in pairs:
        f = fm.interp.get_tensor(p.f_index).reshape(-1)
        scale, zp = p.detail["quantization"]
        q = qm.interp.get_tensor(p.q_index).astype(np.float32).reshape(-1)
        q -= zp  # int8/uint8 values are exact in float32: same as quant.dequantize, faster
        q *= scale
        if q.size != f.size:
            continue
        err = q - f
        p.sums[0] += float(np.dot(err, err))
        p.sums[1] += float(np.dot(f, f))
        p.sums[2] += f.size
        if p.dw is not None:
            x = fm.interp.get_tensor(p.f_input)
            # a grid of <= ~MAX_POSITIONS output positions per image is plenty for an RMS
            step = p.stride * max(1, math.ceil(math.sqrt(x[0].size / x.shape[-1] / p.stride ** 2
                                                         / MAX_POSITIONS))) if x.ndim == 4 else 1
            y = weight_error_conv(x, p.dw, p.op["op_name"], step)
            p.wsq += float(np.sum(np.square(y, dtype=np.float64)))
            s = y.sum(axis=0, dtype=np.float64)
            p.wsum = s if p.wsum is None else p.wsum + s
            p.wn += y.shape[0]


def _result(p: _Pair) -> LayerError:
    e2, f2, n = p.sums
    scale, zp = p.detail["quantization"]
    rmse = math.sqrt(e2 / n)
    sqnr = 10 * math.log10(f2 / e2) if e2 > 0 and f2 > 0 else (math.inf if e2 == 0 else -math.inf)
    wn = wb = None
    if p.dw is not None and p.wn:
        wn = math.sqrt(p.wsq / (p.wn * p.wsum.size)) / scale
        wb = float(np.sqrt(np.mean((p.wsum / p.wn) ** 2))) / scale
    name = str(p.detail["name"])
    return LayerError(
        tensor=name, keras_layer="+".join(p.layers), keras_layers=p.layers,
        op=p.op["op_name"] if p.op["op_name"] != "OUTPUT" else "output",
        position=int(p.op["index"]), shape=tuple(int(v) for v in p.detail["shape"]),
        scale=float(scale), zero_point=int(zp), rmse=rmse, rmse_in_scales=rmse / scale,
        sqnr_db=sqnr, weight_noise_in_scales=wn, weight_bias_in_scales=wb, weight_max=p.wmax)


def rank(errors: Sequence[LayerError], by: LayerMetric | str = LayerMetric.WEIGHT_NOISE) -> list[LayerError]:
    """``errors`` sorted worst first by ``by`` (ties and tensors without the metric: graph order)."""
    by = LayerMetric(by)
    if by is LayerMetric.WEIGHT_NOISE:
        def key(e: LayerError):
            v = e.weight_noise_in_scales
            return (v is None, -(v or 0.0), e.position)
    elif by is LayerMetric.RMSE:
        def key(e: LayerError):
            return (-e.rmse_in_scales, e.position)
    else:
        def key(e: LayerError):
            return (e.sqnr_db, e.position)
    return sorted(errors, key=key)


def format_table(errors: Sequence[LayerError]) -> str:
    """A fixed-width text table of ``errors`` (as ranked), one line per tensor."""
    head = (f"{'#':>3}  {'Keras layer(s)':<52} {'op':<10} {'weight noise':>12} {'w. bias':>8} "
            f"{'rmse':>7} {'SQNR dB':>8} {'max|w|':>7}")
    lines = [head, "     (noise, bias and rmse in units of the tensor's quantisation scale)"]

    def f(v: float | None, fmt: str) -> str:
        return format(v, fmt) if v is not None else "-"

    for i, e in enumerate(errors, 1):
        op = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "FULLY_CONNECTED": "dense"}.get(
            e.op, e.op.lower())
        lines.append(f"{i:>3}  {e.keras_layer[:52]:<52} {op:<10} "
                     f"{f(e.weight_noise_in_scales, '12.2f'):>12} {f(e.weight_bias_in_scales, '8.2f'):>8} "
                     f"{e.rmse_in_scales:7.2f} {e.sqnr_db:8.1f} {f(e.weight_max, '7.2f'):>7}")
    return "\n".join(lines)


__all__ = ["LayerError", "LayerMetric", "LayerReportError", "layer_errors", "rank", "format_table",
           "keras_layers_of", "weight_error_conv", "dequantize_weights"]
