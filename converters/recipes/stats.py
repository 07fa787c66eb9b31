"""Input statistics of each weighted layer, gathered stage by stage through the quantised network.

Recipes fix one layer at a time. The layer sees what it will see in the int8 model: the output
of the layers before it *after* they were rounded (GPTQ's sequential mode), while the float
model's input to the same layer is kept as the target (for bias correction). The network is cut
into stages (stem, each MBConv block, top, head); the inputs of a stage are cached for the
calibration images, so the whole pass costs about two forward passes of each model.

Rows are sampled: ``ROWS_PER_IMAGE`` output positions per image and layer (fewer for depthwise
layers, whose Hessians are only k²×k²), which is plenty for ``E[x xᵀ]`` and keeps memory small.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np

from .folding import QuantLayer, quant_layers

#: Output positions sampled per image for a convolution / depthwise layer.
ROWS_PER_IMAGE = 256
ROWS_PER_IMAGE_DEPTHWISE = 32
#: Images per Hessian update (rows are sampled per such chunk) and per Keras forward pass.
BATCH = 16
RUN_BATCH = 64

_STAGE = re.compile(r"^(block\d+[a-z]+)_")


@dataclass
class LayerStats:
    """Statistics of a layer's input rows, in the quantised network (``x``) and at the same
    positions in the float network (``x_f``).

    conv/dense: ``hessian`` ``E[x xᵀ]`` and ``cross`` ``E[x_f xᵀ]`` (fan_in × fan_in), ``mean``
    ``E[x]`` and ``float_mean`` ``E[x_f]`` (fan_in); depthwise: the same per channel
    (C × K × K and C × K).
    """

    hessian: np.ndarray
    cross: np.ndarray
    mean: np.ndarray
    float_mean: np.ndarray
    rows: int


def _stage_name(layer: str) -> str:
    m = _STAGE.match(layer)
    if m:
        return m.group(1)
    return "head" if layer == "predictions" else layer.split("_")[0]


def stages(model: Any) -> list[tuple[str, list[QuantLayer]]]:
    """Weighted layers grouped by stage (stem, block1a, …, top, head), in graph order."""
    out: list[tuple[str, list[QuantLayer]]] = []
    for q in quant_layers(model):
        name = _stage_name(q.name)
        if out and out[-1][0] == name:
            out[-1][1].append(q)
        else:
            out.append((name, [q]))
    return out


def sample_rows(a: np.ndarray, q: QuantLayer, rng: np.random.Generator) -> np.ndarray:
    """Input rows of layer ``q`` from its input activations ``a`` (N×H×W×C, or N×D for dense).

    conv: (rows, kh·kw·C) in the converter's flattening order; depthwise: (C, rows, kh·kw).
    Patches use TF "SAME" padding, as the model does.
    """
    if q.kind == "dense":
        return a.reshape(len(a), -1)
    n, h, w, c = a.shape
    k, s = q.kernel_size, q.strides
    ho, wo = -(-h // s), -(-w // s)
    r = min(ROWS_PER_IMAGE_DEPTHWISE if q.kind == "depthwise" else ROWS_PER_IMAGE, ho * wo)
    pos = np.stack([rng.choice(ho * wo, r, replace=False) for _ in range(n)])
    oi, oj = pos // wo, pos % wo
    if k == 1 and s == 1:
        rows = a[np.arange(n)[:, None], oi, oj]  # (n, r, C)
        return rows.reshape(-1, c)
    ph, pw = max((ho - 1) * s + k - h, 0), max((wo - 1) * s + k - w, 0)
    pad = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0))
    di, dj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    ii = (oi * s)[:, :, None] + di.reshape(-1)[None, None]
    jj = (oj * s)[:, :, None] + dj.reshape(-1)[None, None]
    ni = np.arange(n)[:, None, None]
    if q.kind == "depthwise" and r * k * k > h * w:
        # gather channel-first: when the patches outgrow the activations (late, small maps),
        # transposing the activations is cheaper than transposing the patches
        ap = np.pad(np.ascontiguousarray(a.transpose(3, 0, 1, 2)), ((0, 0),) + pad[:3])
        flat = (ni * ap.shape[2] + ii) * ap.shape[3] + jj  # (n, r, k*k) into n·H·W
        return np.take(ap.reshape(c, -1), flat.reshape(-1), axis=1).reshape(c, -1, k * k)
    ap = np.pad(a, pad)
    if q.kind == "depthwise":
        p = ap[ni, ii, jj].reshape(-1, k * k, c)
        return np.ascontiguousarray(p.transpose(2, 0, 1))  # (C, n·r, k*k)
    return ap[ni, ii, jj].reshape(-1, k * k * c)  # (n·r, k*k*C)


class _Accumulator:
    """Running sums of paired rows (quantised network, float network)."""

    def __init__(self) -> None:
        self.h: Any = 0.0
        self.c: Any = 0.0
        self.s: Any = 0.0
        self.sf: Any = 0.0
        self.n = 0

    def add(self, rows: np.ndarray, float_rows: np.ndarray, depthwise: bool) -> None:
        x = rows.astype(np.float32, copy=False)
        xf = float_rows.astype(np.float32, copy=False)
        if depthwise:  # (C, rows, K)
            self.h = self.h + np.matmul(x.transpose(0, 2, 1), x).astype(np.float64)
            self.c = self.c + np.matmul(xf.transpose(0, 2, 1), x).astype(np.float64)
            axis = 1
        else:  # (rows, D)
            self.h = self.h + (x.T @ x).astype(np.float64)
            self.c = self.c + (xf.T @ x).astype(np.float64)
            axis = 0
        # float32 sums of one chunk (numpy sums pairwise), accumulated in float64
        self.s = self.s + x.sum(axis=axis).astype(np.float64)
        self.sf = self.sf + xf.sum(axis=axis).astype(np.float64)
        self.n += x.shape[axis]

    def result(self) -> LayerStats:
        n = max(self.n, 1)
        return LayerStats(np.asarray(self.h) / n, np.asarray(self.c) / n, np.asarray(self.s) / n,
                          np.asarray(self.sf) / n, self.n)


def _batches(x: np.ndarray, size: int) -> Iterable[np.ndarray]:
    for i in range(0, len(x), size):
        yield x[i:i + size]


def _run(fn: Any, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(fn(b, training=False)) for b in _batches(x, RUN_BATCH)])


def _advance(keras: Any, model: Any, src: Any, dst: Any, x: np.ndarray,
             fallback: tuple[Any, np.ndarray]) -> np.ndarray:
    """Activations at tensor ``dst`` from those at ``src``; from the stage input ``fallback``
    when ``dst`` also depends on tensors before ``src`` (squeeze-excite's multiply)."""
    if dst is src:
        return x
    try:
        return _run(keras.Model(src, dst), x)
    except ValueError:  # not connected to src alone
        return _run(keras.Model(fallback[0], dst), fallback[1])


def sequential(
    reference: Any,
    net: Any,
    inputs: np.ndarray,
    fix_layer: Callable[[QuantLayer, LayerStats], None],
    seed: int = 0,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> None:
    """Walk ``net``'s weighted layers in order; for each, call ``fix_layer(q, stats)`` with the
    statistics of its input in ``net`` as fixed so far, paired with the input the same layer
    gets in ``reference`` (the float model, same architecture, never modified).
    ``fix_layer`` rewrites the layer in ``net``.

    ``inputs``: the model inputs (N×H×W×3, already in the model's input domain).
    """
    import keras  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    groups = stages(net)
    stage_q = stage_f = np.asarray(inputs, dtype=np.float32)
    in_q, in_f = net.input, reference.input
    for gi, (_, group) in enumerate(progress(groups) if progress else groups):
        # float side: every layer input of the stage in one pass (nothing changes there)
        targets = [reference.get_layer(q.name).input for q in group]
        inner = [t for t in targets if t is not in_f]
        got = iter(_run_multi(keras.Model(in_f, inner), stage_f) if inner else [])
        float_inputs = [stage_f if t is in_f else next(got) for t in targets]
        cur, x = in_q, stage_q  # quantised side: layer after layer, each input after the fixes
        for q, xf in zip(group, float_inputs):
            target = net.get_layer(q.name).input
            x = _advance(keras, net, cur, target, x, (in_q, stage_q))
            cur = target
            acc = _Accumulator()
            for i in range(0, len(x), BATCH):
                s = int(rng.integers(1 << 31))  # same positions in both networks
                acc.add(sample_rows(x[i:i + BATCH], q, np.random.default_rng(s)),
                        sample_rows(xf[i:i + BATCH], q, np.random.default_rng(s)),
                        q.kind == "depthwise")
            fix_layer(q, acc.result())
        del float_inputs, got
        if gi + 1 < len(groups):
            nxt = groups[gi + 1][1][0].name
            out_q, out_f = net.get_layer(nxt).input, reference.get_layer(nxt).input
            stage_q = _run(keras.Model(in_q, out_q), stage_q)
            stage_f = _run(keras.Model(in_f, out_f), stage_f)
            in_q, in_f = out_q, out_f


def _as_list(out: Any) -> list:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def _run_multi(fn: Any, x: np.ndarray) -> list[np.ndarray]:
    """A multi-output model over ``x`` in batches: one array per output."""
    parts = [_as_list(fn(b, training=False)) for b in _batches(x, RUN_BATCH)]
    return [np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(len(parts[0]))]
