"""GPTQ rounding (Frantar et al., 2022) onto TFLite's per-channel int8 weight grid. Pure numpy.

Each weight is rounded in turn and the rounding error is spread over the weights not yet
rounded, weighted by the inverse Hessian ``H = E[x xᵀ]`` of the layer's input, so the layer's
output on real data moves as little as possible. Two constraints keep the result on the grid
the converter will choose: each channel's scale stays ``max|w| / 127`` (its largest weight is
pinned at ±127 and never updated), and no other weight leaves [-127, 127].
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np

from .folding import QMAX, grid_scales, live_channels

if TYPE_CHECKING:
    from .stats import LayerStats

#: Damping added to the Hessian diagonal, as a fraction of its mean (GPTQ's default).
DAMP = 0.01
#: Columns processed per block before the lazy update of the rest (BLAS-friendly).
BLOCK = 128


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS limited to one thread, for LAPACK calls on stacks of tiny matrices (one 9×9 or 25×25
    system per depthwise channel). Threaded OpenBLAS spends those calls waking threads: on this
    2-core machine under load, np.linalg.inv of 1,152 25×25 matrices took 9.1 s threaded and
    0.06 s on one thread, np.linalg.solve 14.7 s vs 0.05 s."""
    try:
        from threadpoolctl import threadpool_limits  # noqa: PLC0415
    except ImportError:  # not installed: run as is
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def _upper_inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor of ``(H + damp·mean(diag H)·I)⁻¹`` (dead inputs made harmless)."""
    h = np.array(h, dtype=np.float64)
    d = np.diag(h).copy()
    dead = d <= 0
    h[dead, dead] = 1.0
    h[np.diag_indices_from(h)] += damp * (d[~dead].mean() if (~dead).any() else 1.0)
    return np.linalg.cholesky(np.linalg.inv(h)).T


def _grid(rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """A float64 copy of ``rows``, each channel's grid scale (1 where the channel is dead), the
    live channels, and where each channel's largest weight sits and its value (pinned)."""
    w = np.array(rows, dtype=np.float64)
    s = grid_scales(w)
    pin = np.abs(w).argmax(axis=1)
    return w, np.where(s > 0, s, 1.0), live_channels(w), pin, w[np.arange(len(w)), pin].copy()


def _dequantised(q: np.ndarray, safe: np.ndarray, live: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Integers × scale for live channels; dead channels as they were."""
    return np.where(live[:, None], q * safe[:, None], rows)


def gptq_rows(rows: np.ndarray, hessian: np.ndarray, damp: float = DAMP,
              block: int = BLOCK) -> np.ndarray:
    """Round ``rows`` (channels × fan_in) sharing one input Hessian (fan_in × fan_in).

    Returns the dequantised rows (integers × scale); dead channels come back unchanged.
    """
    w, safe, live, pin, pinned = _grid(rows)
    d = w.shape[1]
    u = _upper_inverse_cholesky(hessian, damp)
    q = np.zeros_like(w)
    for i1 in range(0, d, block):
        i2 = min(i1 + block, d)
        w1 = w[:, i1:i2].copy()
        err = np.zeros_like(w1)
        for i in range(i2 - i1):
            col = w1[:, i]
            qi = np.clip(np.rint(col / safe), -QMAX, QMAX)
            q[:, i1 + i] = qi
            e = (col - qi * safe) / u[i1 + i, i1 + i]
            w1[:, i:] -= np.outer(e, u[i1 + i, i1 + i:i2])
            err[:, i] = e
            ahead = (pin > i1 + i) & (pin < i2)
            w1[ahead, pin[ahead] - i1] = pinned[ahead]
        w[:, i2:] -= err @ u[i1:i2, i2:]
        ahead = pin >= i2
        w[ahead, pin[ahead]] = pinned[ahead]
    return _dequantised(q, safe, live, rows)


def gptq_depthwise(rows: np.ndarray, hessians: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """Round depthwise rows (channels × taps), each channel with its own Hessian (C × K × K)."""
    w, safe, live, pin, pinned = _grid(rows)
    k = w.shape[1]
    h = np.array(hessians, dtype=np.float64)
    diag = np.einsum("cii->ci", h)
    h[:, np.arange(k), np.arange(k)] += (damp * diag.mean(axis=1) + 1e-12)[:, None]
    with one_blas_thread():
        u = np.transpose(np.linalg.cholesky(np.linalg.inv(h)), (0, 2, 1))
    q = np.zeros_like(w)
    for i in range(k):
        qi = np.clip(np.rint(w[:, i] / safe), -QMAX, QMAX)
        q[:, i] = qi
        e = (w[:, i] - qi * safe) / u[:, i, i]
        w[:, i:] -= e[:, None] * u[:, i, i:]
        ahead = pin > i
        w[ahead, pin[ahead]] = pinned[ahead]
    return _dequantised(q, safe, live, rows)


#: Ridge toward the float weights when solving the asymmetric target (fraction of mean diag H).
RIDGE = 0.01


def asymmetric_target(float_rows: np.ndarray, stats: LayerStats, depthwise: bool,
                      ridge: float = RIDGE) -> np.ndarray:
    """Weights that best reproduce the float layer's output on the float network's input from
    the quantised network's input: ``argmin_W E‖W_f x_f − W x‖² + λ‖W − W_f‖²``, i.e.
    ``W = W_f (C + λI)(H + λI)⁻¹`` with ``C = E[x_f xᵀ]``, ``H = E[x xᵀ]``. Rounding this target
    (instead of ``W_f``) also undoes the error the layers before have already made."""
    w = np.asarray(float_rows, dtype=np.float64)
    if depthwise:
        h, c = stats.hessian, stats.cross
        k = h.shape[-1]
        lam = ridge * np.einsum("cii->c", h)[:, None, None] / k + 1e-12
        eye = np.eye(k)[None]
        rhs = np.einsum("ck,ckl->cl", w, c + lam * eye)
        with one_blas_thread():
            return np.linalg.solve(np.transpose(h + lam * eye, (0, 2, 1)), rhs[..., None])[..., 0]
    h, c = stats.hessian, stats.cross
    lam = ridge * np.trace(h) / len(h) + 1e-12
    eye = np.eye(len(h))
    return np.linalg.solve((h + lam * eye).T, (w @ (c + lam * eye)).T).T
