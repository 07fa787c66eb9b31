"""Bias recipes: analytic bias correction and bias fine-tuning against the float model.

Rounding weights moves each output channel's mean; both recipes put it back through the biases
(BN beta after folding), which stay float in the model and become exact int32 in TFLite.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from .folding import QuantLayer
from .stats import LayerStats

#: Bias fine-tuning defaults: Adam on the biases only, KL(float ‖ int8-weight model).
TUNE_EPOCHS = 3
TUNE_LR = 1e-3
TUNE_BATCH = 16


def correction_shift(q: QuantLayer, float_rows: np.ndarray, rounded_rows: np.ndarray,
                     stats: LayerStats) -> np.ndarray:
    """Per-channel bias shift that restores each output channel's mean: the float layer on the
    float model's input minus the rounded layer on the quantised model's input."""
    if q.kind == "depthwise":
        return ((float_rows * stats.float_mean).sum(axis=1)
                - (rounded_rows * stats.mean).sum(axis=1))
    return float_rows @ stats.float_mean - rounded_rows @ stats.mean


def bias_variables(model: Any) -> list:
    """The biases of ``model``: BatchNorm betas and conv/dense biases (Keras variables)."""
    out = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            out.append(layer.beta)
        elif kind in ("Conv2D", "DepthwiseConv2D", "Dense") and getattr(layer, "use_bias", False):
            out.append(layer.bias)
    return out


def tune_biases(student: Any, inputs: np.ndarray, teacher_probs: np.ndarray,
                epochs: int = TUNE_EPOCHS, lr: float = TUNE_LR, batch: int = TUNE_BATCH,
                seed: int = 0, progress: Callable[[Iterable], Iterable] | None = None) -> list[float]:
    """Fine-tune only the biases of ``student`` (int8-grid weights, BatchNorm in inference mode)
    so its probabilities match the float model's (``teacher_probs``) on ``inputs``: distillation,
    no labels. Returns the mean KL per epoch."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    variables = bias_variables(student)
    handles = [v.value for v in variables]
    opt = keras.optimizers.Adam(lr)

    @tf.function(reduce_retracing=True)
    def step(x: Any, t: Any) -> Any:
        with tf.GradientTape() as tape:
            p = student(x, training=False)
            loss = tf.reduce_mean(tf.reduce_sum(
                t * (tf.math.log(t + 1e-7) - tf.math.log(p + 1e-7)), axis=-1))
        opt.apply_gradients(zip(tape.gradient(loss, handles), variables))
        return loss

    rng = np.random.default_rng(seed)
    history = []
    x = np.asarray(inputs, dtype=np.float32)
    t = np.asarray(teacher_probs, dtype=np.float32)
    for _ in progress(range(epochs)) if progress else range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(0, len(x), batch):
            idx = np.sort(order[i:i + batch])
            total += float(step(tf.constant(x[idx]), tf.constant(t[idx]))) * len(idx)
        history.append(total / len(x))
    return history
