"""Quantisation-aware fine-tuning (QAT), distilled from the float model: no labels needed.

tensorflow-model-optimization (tfmot) fake-quantises a ``tf_keras`` (Keras 2) twin of the model,
laid out as TFLite will run it:

- BatchNorm folded first, as the converter folds it: each convolution holds its BN-folded kernel
  and the BN only adds the folded bias (frozen statistics). The optimiser then steps in the very
  weights TFLite quantises;
- weights: per output channel, symmetric, narrow range, scale ``max|w| / 127`` (the converter's
  grid), depthwise kernels included (tfmot's default quantises those per tensor);
- activations: one asymmetric int8 range per tensor, the min/max over every value seen (TFLite's
  calibration rule), where TFLite has a quantised tensor: after each ReLU6 / activation (conv +
  BN + ReLU6 fuse: nothing in between), after a BN with no activation, Add, Multiply, pooling
  and the input normalisation; the classifier's logits before softmax. Normalization, Rescaling
  and Multiply, which tfmot's registry refuses, get their configs here.

The loss is KL(float model ‖ QAT model) on the calibration images and their mirror images;
kernels, biases and BN scales train. The trained weights go back into the Keras 3 model through
its own BN, already on the int8 grid, and the converter quantises them as usual. Adam's steps
are the same size for every weight, so a large fan-in (1,152 inputs into a project conv) sums
them coherently: the learning rate is small (measured, ``benchmarks/int8_recipes.py``).

tfmot reaches Keras through ``tf.keras``, which is Keras 3 in a process that uses Keras 3 (this
one), so the fine-tuning runs in a child process started with ``TF_USE_LEGACY_KERAS=1``. The
child gets the weights, inputs and float targets in a temporary folder and streams one line per
step back; an interrupt or error stops it with the parent.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np

#: Fine-tuning defaults (measured in ``benchmarks/int8_recipes.py``): Adam, KL distillation.
QAT_EPOCHS = 3
QAT_LR = 2e-6
QAT_BATCH = 16
#: Learning-rate multipliers for depthwise kernels, other kernels, and biases / BN scales.
QAT_LR_SCALE = (10.0, 1.0, 10.0)


class QATError(RuntimeError):
    """The quantisation-aware fine-tuning could not run (tfmot / tf_keras missing, or the
    worker process failed); the message says why."""


# ----------------------------------------------------------------------------- parent side


def layer_weights(model: Any) -> dict[str, np.ndarray]:
    """Every layer's weights by ``"layer/index"``: the same in Keras 3 and tf_keras."""
    return {f"{lyr.name}/{i}": w for lyr in model.layers for i, w in enumerate(lyr.get_weights())}


def set_layer_weights(model: Any, arrays: Any) -> None:
    """Set the layers of ``model`` found in ``arrays`` (from :func:`layer_weights`)."""
    for lyr in model.layers:
        n = len(lyr.get_weights())
        if n and f"{lyr.name}/0" in arrays:
            lyr.set_weights([arrays[f"{lyr.name}/{i}"] for i in range(n)])


def _folded_copy(net: Any) -> Any:
    """A copy of ``net`` whose convolutions hold the BN-folded kernels, each BN reduced to adding
    the folded bias (gamma 1, mean 0, variance 1 − eps). Same function, but the optimiser now
    steps in the weights TFLite quantises: an unfolded kernel behind a large BN multiplier
    would move whole grid steps per Adam step."""
    from ..tflite import clone  # noqa: PLC0415
    from .folding import from_rows, quant_layers, read_folded  # noqa: PLC0415

    copy = clone(net)
    for q in quant_layers(copy):
        if q.bn is None:
            continue
        f = read_folded(copy, q)
        layer, bn = copy.get_layer(q.name), copy.get_layer(q.bn)
        w = layer.get_weights()
        w[0] = from_rows(f.rows, q.kind, w[0].shape).astype(np.float32)
        if len(w) > 1:
            w[1] = np.zeros_like(w[1])  # folded into the bias below
        layer.set_weights(w)
        ones = np.ones_like(f.bias, dtype=np.float32)
        bn.set_weights([ones, f.bias.astype(np.float32), np.zeros_like(ones),
                        np.full_like(ones, 1.0 - bn.epsilon)])
    return copy


class _Steps:
    """The child's per-step lines as an iterable of losses with a length (for progress bars)."""

    def __init__(self, proc: subprocess.Popen, total: int) -> None:
        self.proc, self.total, self.losses = proc, total, []

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[float]:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if line.startswith("step "):
                loss = float(line.split()[2])
                self.losses.append(loss)
                yield loss


def qat_finetune(net: Any, reference: Any, inputs: np.ndarray, skip: Iterable[str] = (),
                 epochs: int | None = None, lr: float | None = None, batch: int | None = None,
                 seed: int = 0, progress: Callable[[Iterable], Iterable] | None = None) -> dict:
    """Fine-tune ``net`` (Keras 3, changed in place) quantisation-aware against ``reference``'s
    outputs on ``inputs`` (the models' input domain). Layers in ``skip`` stay float (no weight
    fake-quant) and are not rounded afterwards. Returns what was done (for the recipe report).

    Raises:
        QATError: tfmot/tf_keras not installed, or the worker failed (its last lines quoted).
    """
    from ..tflite import build_args  # noqa: PLC0415 - avoids an import cycle
    from . import float_outputs  # noqa: PLC0415
    from .folding import quant_layers, read_folded, round_to_grid, write_folded  # noqa: PLC0415

    epochs = QAT_EPOCHS if epochs is None else int(epochs)
    lr = QAT_LR if lr is None else float(lr)
    batch = QAT_BATCH if batch is None else int(batch)
    x = np.asarray(inputs, dtype=np.float32)
    skip = sorted(set(skip))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="efficientnet-qat-") as tmp:
        student = _folded_copy(net)
        np.savez(os.path.join(tmp, "weights.npz"), **layer_weights(student))
        np.save(os.path.join(tmp, "inputs.npy"), x)
        np.save(os.path.join(tmp, "targets.npy"), float_outputs(reference, x))
        np.save(os.path.join(tmp, "targets_flipped.npy"), float_outputs(reference, x[:, :, ::-1]))
        steps_per_epoch = -(-len(x) // batch)
        with open(os.path.join(tmp, "job.json"), "w", encoding="utf-8") as f:
            json.dump({"build": build_args(net), "skip": skip, "epochs": int(epochs), "lr": float(lr),
                       "lr_scale": list(QAT_LR_SCALE), "batch": int(batch), "seed": int(seed)}, f)
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        with open(os.path.join(tmp, "stderr.txt"), "w+", encoding="utf-8", errors="replace") as err:
            cmd = [sys.executable, "-m", "converters.recipes.qat", tmp]
            with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                  cwd=_package_root()) as proc:
                try:
                    steps = _Steps(proc, epochs * steps_per_epoch)
                    for _ in progress(steps) if progress else steps:
                        pass
                    rc = proc.wait()
                except BaseException:
                    proc.kill()
                    raise
            if rc != 0:
                err.seek(0)
                tail = err.read()[-1500:].strip()
                raise QATError(f"quantisation-aware fine-tuning failed (worker exit {rc}): {tail}")
        set_layer_weights(student, np.load(os.path.join(tmp, "trained.npz")))
    # Back into ``net`` through its own BN (folded weights and biases as trained), on the int8
    # grid as the fake-quant saw them: the converter keeps these integers exactly.
    for q in quant_layers(net):
        f = read_folded(student, q)
        rows = f.rows if q.name in skip else round_to_grid(f.rows)
        write_folded(net, q, rows, f.bias - read_folded(net, q).bias)
    losses = steps.losses
    per_epoch = [float(np.mean(losses[i:i + steps_per_epoch]))
                 for i in range(0, len(losses), steps_per_epoch)]
    return {"step": "qat", "epochs": int(epochs), "learning_rate": float(lr), "images": len(x),
            "kl_first_epoch": round(per_epoch[0], 6) if per_epoch else None,
            "kl_last_epoch": round(per_epoch[-1], 6) if per_epoch else None,
            "seconds": round(time.perf_counter() - t0, 2)}


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ------------------------------------------------------------------------------ child side


def _configs(tfmot: Any, tf: Any) -> tuple[type, type]:
    """tfmot QuantizeConfig and per-channel weight quantizer classes (defined once tfmot loads)."""
    quantizers = tfmot.quantization.keras.quantizers
    plain = tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow

    class PerChannelWeights(quantizers.Quantizer):
        """Symmetric narrow-range int8 per output channel, scale ``max|w|/127`` (TFLite's rule);
        ``axis`` is the channel axis (2 for depthwise kernels ``(kh, kw, C, 1)``)."""

        def __init__(self, axis: int = -1) -> None:
            self.axis = axis

        def build(self, tensor_shape: Any, name: str, layer: Any) -> dict:
            return {}

        @plain
        def __call__(self, inputs: Any, training: Any, weights: dict, **kwargs: Any) -> Any:
            rank = len(inputs.shape)
            axis = self.axis % rank
            perm = [i for i in range(rank) if i != axis] + [axis]
            inverse = [perm.index(i) for i in range(rank)]
            t = tf.transpose(inputs, perm)
            m = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(t), axis=list(range(rank - 1))), 1e-12))
            q = tf.quantization.fake_quant_with_min_max_vars_per_channel(
                t, -m, m, num_bits=8, narrow_range=True)
            return tf.transpose(q, inverse)

        def get_config(self) -> dict:
            return {"axis": self.axis}

        @classmethod
        def from_config(cls, config: dict) -> "PerChannelWeights":
            return cls(**config)

    def activations() -> Any:
        return quantizers.AllValuesQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                             narrow_range=False)

    class Config(tfmot.quantization.keras.QuantizeConfig):
        """Which weight, activation function and output of one layer are fake-quantised."""

        def __init__(self, weight: str | None = None, axis: int = -1, activation: bool = False,
                     output: bool = False) -> None:
            self.weight, self.axis, self.activation, self.output = weight, axis, activation, output

        @plain
        def get_weights_and_quantizers(self, layer: Any) -> list:
            return [(getattr(layer, self.weight), PerChannelWeights(self.axis))] if self.weight else []

        @plain
        def get_activations_and_quantizers(self, layer: Any) -> list:
            return [(layer.activation, activations())] if self.activation else []

        @plain
        def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
            if self.weight:
                setattr(layer, self.weight, quantize_weights[0])

        @plain
        def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
            if self.activation:
                layer.activation = quantize_activations[0]

        @plain
        def get_output_quantizers(self, layer: Any) -> list:
            return [activations()] if self.output else []

        def get_config(self) -> dict:
            return {"weight": self.weight, "axis": self.axis, "activation": self.activation,
                    "output": self.output}

        @classmethod
        def from_config(cls, config: dict) -> "Config":
            return cls(**config)

    return Config, PerChannelWeights


_WEIGHT = {"Conv2D": ("kernel", -1), "DepthwiseConv2D": ("depthwise_kernel", 2), "Dense": ("kernel", -1)}
_OUTPUT = {"ReLU", "Activation", "Add", "Multiply", "GlobalAveragePooling2D", "Normalization",
           "Rescaling"}


def layer_config(layer: Any, skip: set[str], config: type) -> Any:
    """The fake-quant layout of one layer, mirroring what TFLite quantises (None: nothing)."""
    kind = type(layer).__name__
    consumers = [n.outbound_layer for n in layer._outbound_nodes]  # noqa: SLF001 - Keras' graph
    if kind in _WEIGHT:
        weight, axis = _WEIGHT[kind]
        act = getattr(layer.activation, "__name__", str(layer.activation))
        fused = len(consumers) == 1 and type(consumers[0]).__name__ == "BatchNormalization"
        return config(weight=None if layer.name in skip else weight, axis=axis,
                      activation=act != "linear", output=act == "linear" and not fused)
    if kind == "BatchNormalization":
        activated = len(consumers) == 1 and type(consumers[0]).__name__ in ("ReLU", "Activation")
        return None if activated else config(output=True)
    if kind in _OUTPUT:
        return config(output=True)
    return None


def _quantised_twin(tmp: str) -> tuple:
    """Child process: the tf_keras twin with the weights of ``tmp``, fake-quantised by tfmot.
    Returns ``(model, trainable variables, weight names per layer, job)``."""
    from dataclasses import replace  # noqa: PLC0415

    from edge.cliutil import quiet_native_logs  # noqa: PLC0415

    with quiet_native_logs():
        import tensorflow as tf  # noqa: PLC0415
        import tensorflow_model_optimization as tfmot  # noqa: PLC0415
        import tf_keras  # noqa: PLC0415
    from ..arch import model_config  # noqa: PLC0415
    from ..efficientnet import build_model  # noqa: PLC0415

    with open(os.path.join(tmp, "job.json"), encoding="utf-8") as f:
        job = json.load(f)
    b = job["build"]
    tf.random.set_seed(job["seed"])
    # No dropout: the student should see the network the int8 model will be.
    cfg = replace(model_config(b["name"]), drop_connect_rate=0.0, dropout=0.0)
    twin = build_model(cfg, input_size=b["input_size"], classes=b["classes"],
                       include_top=b["include_top"], include_preprocessing=b["include_preprocessing"],
                       classifier_activation=b["classifier_activation"], keras_module=tf_keras)
    set_layer_weights(twin, np.load(os.path.join(tmp, "weights.npz")))
    for lyr in twin.layers:
        if type(lyr).__name__ == "BatchNormalization":
            lyr.trainable = False  # inference mode: frozen statistics, foldable as TFLite folds
    order = {lyr.name: [_short(v.name) for v in lyr.weights] for lyr in twin.layers if lyr.weights}
    Config, PerChannel = _configs(tfmot, tf)
    skip = set(job["skip"])
    qk = tfmot.quantization.keras

    configs = {lyr.name: layer_config(lyr, skip, Config) for lyr in twin.layers}  # before cloning

    def annotate(layer: Any) -> Any:
        c = configs.get(layer.name)
        return layer if c is None else qk.quantize_annotate_layer(layer, c)

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    with qk.quantize_scope({"Config": Config, "PerChannelWeights": PerChannel}):
        model = qk.quantize_apply(annotated, _Scheme(qk))
    variables = list(model.trainable_variables)
    for lyr in model.layers:  # BN gamma/beta train too (frozen layers hide them)
        inner = getattr(lyr, "layer", lyr)
        if type(inner).__name__ == "BatchNormalization":
            variables += [inner.gamma, inner.beta]
    return model, variables, order, job


def _worker(tmp: str) -> None:
    """Child process: fine-tune the fake-quantised twin and write ``trained.npz``."""
    import tensorflow as tf  # noqa: PLC0415
    import tf_keras  # noqa: PLC0415

    model, variables, order, job = _quantised_twin(tmp)
    x = np.load(os.path.join(tmp, "inputs.npy"))
    targets = np.load(os.path.join(tmp, "targets.npy"))
    flipped = np.load(os.path.join(tmp, "targets_flipped.npy"))
    softmax = job["build"]["classifier_activation"] == "softmax"
    # Adam per group: a depthwise kernel sums 9-25 inputs, a conv kernel up to 1,152, so the
    # depthwise kernels (and the biases, which sum nothing) take larger steps.
    groups = [[v for v in variables if "depthwise_kernel" in v.name],
              [v for v in variables if v.name.split("/")[-1].startswith("kernel")],
              [v for v in variables if "kernel" not in v.name.split("/")[-1]]]
    opts = [tf_keras.optimizers.Adam(job["lr"] * m) for m in job["lr_scale"]]

    def loss_fn(t: Any, p: Any) -> Any:
        if softmax:
            return tf.reduce_mean(tf.reduce_sum(t * (tf.math.log(t + 1e-7) - tf.math.log(p + 1e-7)), -1))
        return tf.reduce_mean(tf.square(t - p))

    @tf.function(reduce_retracing=True)
    def calibrate(xb: Any) -> Any:
        return model(xb, training=True)

    @tf.function(reduce_retracing=True)
    def step(xb: Any, tb: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(tb, model(xb, training=True))
        grads = tape.gradient(loss, groups)
        for opt, g, v in zip(opts, grads, groups):
            if v:
                opt.apply_gradients(zip(g, v))
        return loss

    batch = job["batch"]
    for i in range(0, len(x), batch):  # activation ranges first: min/max over all values
        calibrate(tf.constant(x[i:i + batch]))
        calibrate(tf.constant(x[i:i + batch, :, ::-1]))
    rng = np.random.default_rng(job["seed"])
    for _ in range(job["epochs"]):
        order_ = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = np.sort(order_[i:i + batch])
            flip = rng.random(len(idx)) < 0.5
            xb = np.where(flip[:, None, None, None], x[idx][:, :, ::-1], x[idx])
            tb = np.where(flip[:, None], flipped[idx], targets[idx])
            loss = float(step(tf.constant(xb), tf.constant(tb)))
            print(f"step {i // batch} {loss:.8f}", flush=True)
    out = {}
    for lyr in model.layers:  # by variable name: a wrapped layer no longer tracks its kernel
        inner = getattr(lyr, "layer", lyr)
        if inner.name not in order:
            continue
        found = {_short(v.name): v for v in lyr.weights}
        for j, short in enumerate(order[inner.name]):
            out[f"{inner.name}/{j}"] = found[short].numpy()
    tmp_out = os.path.join(tmp, "trained.tmp.npz")
    np.savez(tmp_out, **out)
    os.replace(tmp_out, os.path.join(tmp, "trained.npz"))


def _short(name: str) -> str:
    """``quant_stem_conv/kernel:0`` → ``kernel``."""
    return name.split("/")[-1].split(":")[0]


def _Scheme(qk: Any) -> Any:  # noqa: N802 - a class factory
    """A tfmot scheme with no layout transforms (the configs above already mirror TFLite's
    layout) and no registry (every quantised layer carries its config)."""

    class NoTransform(qk.QuantizeLayoutTransform):
        def apply(self, model: Any, layer_quantize_map: dict) -> tuple:
            return model, layer_quantize_map

    class NoRegistry(qk.QuantizeRegistry):
        def get_quantize_config(self, layer: Any) -> None:
            return None

        def supports(self, layer: Any) -> bool:
            return False

    class Scheme(qk.QuantizeScheme):
        def get_layout_transformer(self) -> Any:
            return NoTransform()

        def get_quantize_registry(self) -> Any:
            return NoRegistry()

    return Scheme()


if __name__ == "__main__":
    from edge.cliutil import die_with_parent

    die_with_parent()  # a killed conversion takes its QAT worker with it
    if os.getppid() == 1:  # the parent died before that
        sys.exit(1)
    _worker(sys.argv[1])
