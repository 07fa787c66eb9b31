"""The int8 view of a Keras EfficientNet: BN-folded weights on TFLite's per-channel int8 grid.

TFLite's converter folds each BatchNorm into the convolution before it and quantises every output
channel of the folded weights symmetrically, with scale ``max|w| / 127``. Folded weights that
already lie on that grid (each channel's largest magnitude kept) come out as exactly those
integers, so a recipe can choose the integers here, on the Keras model, and let the converter do
the rest (``tests/test_recipes.py`` checks this against the converter we pin). The one
exception are dead channels (weights ~1e-7 with a large bias), whose scale the converter widens
to keep the int32 bias in range: recipes leave those alone.

Weights are handled as "rows": one row per quantisation channel (output channel), in the order
the converter flattens them (Keras kernel ``(kh, kw, in)`` for convolutions, ``(kh, kw)`` per
channel for depthwise convolutions, inputs for dense layers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

#: Largest integer of the symmetric int8 weight grid (TFLite uses [-127, 127] for weights).
QMAX = 127
#: Channels whose largest folded weight is below this are "dead": left untouched.
DEAD_WEIGHT = 1e-5

_KINDS = {"Conv2D": "conv", "DepthwiseConv2D": "depthwise", "Dense": "dense"}


@dataclass(frozen=True)
class QuantLayer:
    """One weighted layer as the int8 converter sees it: the layer and the BN folded into it."""

    name: str  #: Keras layer name of the convolution / dense layer
    kind: str  #: 'conv', 'depthwise' or 'dense'
    bn: str | None  #: Keras name of the BatchNormalization folded into it, if any
    kernel_size: int = 1
    strides: int = 1

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.name,) if self.bn is None else (self.name, self.bn)


def _histories(node: Any) -> Iterator[str]:
    """Names of the layers whose outputs a serialised node reads (``keras_history`` entries)."""
    if isinstance(node, dict):
        if "keras_history" in node:
            yield node["keras_history"][0]
        for value in node.values():
            yield from _histories(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _histories(value)


def consumers(model: Any) -> dict[str, list[str]]:
    """Layer name → the layers of ``model`` that read its output, from the model's own config:
    unlike a layer's outbound nodes, blind to any other graph the layer was called in (recipes
    call layers inside sub-models)."""
    out: dict[str, list[str]] = {}
    for spec in model.get_config()["layers"]:
        for source in dict.fromkeys(_histories(spec.get("inbound_nodes", []))):
            out.setdefault(source, []).append(spec["name"])
    return out


def quant_layers(model: Any) -> list[QuantLayer]:
    """Every convolution / dense layer of ``model`` in graph order, with its folded BN."""
    reads = consumers(model)
    out = []
    for layer in model.layers:
        kind = _KINDS.get(type(layer).__name__)
        if kind is None:
            continue
        k = int(layer.kernel_size[0]) if kind != "dense" else 1
        s = int(layer.strides[0]) if kind != "dense" else 1
        after = reads.get(layer.name, [])
        bn = (after[0] if len(after) == 1
              and type(model.get_layer(after[0])).__name__ == "BatchNormalization" else None)
        out.append(QuantLayer(layer.name, kind, bn, k, s))
    return out


@dataclass
class Folded:
    """A layer's BN-folded weights as rows ``(channels, fan_in)``, its folded bias, and the BN
    multiplier ``gamma / sqrt(var + eps)`` (None without BN) needed to write them back."""

    rows: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray | None


def to_rows(kernel: np.ndarray, kind: str) -> np.ndarray:
    if kind == "depthwise":  # (kh, kw, C, 1) -> (C, kh*kw)
        return kernel[:, :, :, 0].reshape(-1, kernel.shape[2]).T
    if kind == "dense":  # (in, out) -> (out, in)
        return kernel.T
    return kernel.reshape(-1, kernel.shape[-1]).T  # (kh, kw, in, out) -> (out, kh*kw*in)


def from_rows(rows: np.ndarray, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    if kind == "depthwise":
        return rows.T.reshape(shape[0], shape[1], shape[2])[..., None]
    if kind == "dense":
        return rows.T
    return rows.T.reshape(shape)


def read_folded(model: Any, q: QuantLayer) -> Folded:
    """The BN-folded weights (float64 rows) and bias of one layer."""
    layer = model.get_layer(q.name)
    w = layer.get_weights()
    kernel = w[0].astype(np.float64)
    channels = kernel.shape[2] if q.kind == "depthwise" else kernel.shape[-1]
    bias = w[1].astype(np.float64) if len(w) > 1 else np.zeros(channels)
    rows = to_rows(kernel, q.kind)
    if q.bn is None:
        return Folded(rows.copy(), bias, None)
    bn = model.get_layer(q.bn)
    gamma, beta, mean, var = (a.astype(np.float64) for a in bn.get_weights())
    mult = gamma / np.sqrt(var + bn.epsilon)
    return Folded(rows * mult[:, None], beta - mean * mult + bias * mult, mult)


def write_folded(model: Any, q: QuantLayer, rows: np.ndarray | None = None,
                 bias_shift: np.ndarray | None = None) -> None:
    """Set a layer's folded weights to ``rows`` (unfolding the BN multiplier) and/or shift its
    folded bias by ``bias_shift`` (into BN beta, or the layer's own bias without BN)."""
    layer = model.get_layer(q.name)
    w = layer.get_weights()
    f = read_folded(model, q) if rows is not None else None
    if rows is not None:
        raw = rows if f.multiplier is None else rows / f.multiplier[:, None]
        w[0] = from_rows(raw, q.kind, w[0].shape).astype(np.float32)
    if bias_shift is not None and q.bn is None:
        if len(w) < 2:
            raise ValueError(f"layer {q.name!r} has no bias to correct")
        w[1] = (w[1] + bias_shift).astype(np.float32)
    layer.set_weights(w)
    if bias_shift is not None and q.bn is not None:
        bn = model.get_layer(q.bn)
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([gamma, (beta + bias_shift).astype(np.float32), mean, var])


def grid_scales(rows: np.ndarray) -> np.ndarray:
    """Per-channel int8 weight scale the converter uses: ``max|w| / 127``."""
    return np.abs(rows).max(axis=1) / QMAX


def live_channels(rows: np.ndarray) -> np.ndarray:
    """Channels the converter quantises on the ``max|w|/127`` grid (not dead ones)."""
    return np.abs(rows).max(axis=1) >= DEAD_WEIGHT


def round_to_grid(rows: np.ndarray) -> np.ndarray:
    """Nearest-rounded int8 weights, dequantised (what plain post-training quantisation gives)."""
    s = grid_scales(rows)
    safe = np.where(s > 0, s, 1.0)[:, None]
    q = np.clip(np.rint(rows / safe), -QMAX, QMAX) * safe
    return np.where(live_channels(rows)[:, None], q, rows)


def iter_layers(model: Any, names: set[str] | None = None) -> Iterator[QuantLayer]:
    for q in quant_layers(model):
        if names is None or q.name in names:
            yield q
