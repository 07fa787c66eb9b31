"""The two-phase fine-tuning loop: head first, then the top blocks; early stopping, best and
last checkpoints after every epoch, resumable at any epoch boundary."""
from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import checkpoint as ckpt
from .model import set_trainable
from .options import TrainOptions, TrainingError
from .pipeline import Augment, class_weights, epoch_order, make_dataset


@dataclass
class Splits:
    """What the loop trains and validates on."""

    train_paths: list[str]
    train_labels: np.ndarray
    val_paths: list[str]
    val_labels: np.ndarray
    num_classes: int


class Steps:
    """Compiled steps: ``train(batch)`` (after :meth:`start_phase`) and :meth:`evaluate` run on
    every replica through ``strategy.run`` and sum (loss, correct, images) over the global batch.

    An explicit loop rather than ``Model.fit``: Keras 3's fit cannot run under
    MultiWorkerMirroredStrategy (it reduces scalar logs along axis 0, keras-team/keras#20585),
    and one loop for every strategy makes "same result as one device" a property of the code.
    The per-replica loss is divided by the global batch and the optimizer sums gradients over
    replicas, so a step is the same step on any number of devices.
    """

    def __init__(self, model: Any, strategy: Any, label_smoothing: float, global_batch: int):
        import keras  # noqa: PLC0415
        import tensorflow as tf  # noqa: PLC0415

        self.model, self.strategy, self.global_batch, self.tf = model, strategy, global_batch, tf
        self.loss_fn = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing,
                                                            reduction=None)

        def eval_replica(x, y):
            p = model(x, training=False)
            return self._totals(y, p, self.loss_fn(y, p))

        self._eval = tf.function(lambda batch: self._reduce(strategy.run(eval_replica, args=batch)),
                                 reduce_retracing=True)
        self._train = None

    def _totals(self, y: Any, p: Any, per_example: Any) -> tuple:
        tf = self.tf
        hit = tf.cast(tf.equal(tf.argmax(p, -1), tf.argmax(y, -1)), tf.float32)
        return tf.reduce_sum(per_example), tf.reduce_sum(hit), tf.cast(tf.shape(y)[0], tf.float32)

    def _reduce(self, out: Any) -> list:
        return [self.strategy.reduce(self.tf.distribute.ReduceOp.SUM, v, axis=None) for v in out]

    def start_phase(self, optimizer: Any) -> None:
        """A new train step for the model's current trainable variables and ``optimizer``."""
        tf, model = self.tf, self.model
        variables = model.trainable_variables

        def train_replica(x, y, w=None):
            with tf.GradientTape() as tape:
                p = model(x, training=True)
                per_example = self.loss_fn(y, p) * (1.0 if w is None else w)
                loss = tf.reduce_sum(per_example) / self.global_batch
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, variables))
            return self._totals(y, p, per_example)

        self._train = tf.function(lambda batch: self._reduce(self.strategy.run(train_replica, args=batch)))

    def train(self, batch: Any) -> np.ndarray:
        return np.array([float(v) for v in self._train(batch)])

    def evaluate(self, dataset: Any) -> dict:
        total = np.zeros(3)
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            total += [float(v) for v in self._eval(batch)]
        return {"val_loss": total[0] / max(total[2], 1), "val_accuracy": total[1] / max(total[2], 1)}


def _train_epoch(steps: Steps, dataset: Any, n_steps: int, desc: str, show: bool) -> dict:
    """One pass over ``dataset``: mean loss and accuracy, wall and CPU seconds (steady: the
    first step, which traces the step function, left out)."""
    from tqdm import tqdm  # noqa: PLC0415

    total = np.zeros(3)
    t0, c0 = time.perf_counter(), time.process_time()
    first = None
    with tqdm(total=n_steps, desc=desc, unit="batch", file=sys.stderr, disable=not show,
              leave=False, dynamic_ncols=True) as bar:
        for batch in steps.strategy.experimental_distribute_dataset(dataset):
            total += steps.train(batch)
            first = first or time.perf_counter()
            bar.update(1)
            bar.set_postfix(loss=f"{total[0] / total[2]:.3f}", acc=f"{total[1] / total[2]:.3f}",
                            refresh=False)
    t1, c1 = time.perf_counter(), time.process_time()
    steady = (t1 - first) * n_steps / (n_steps - 1) if n_steps > 1 and first else t1 - t0
    return {"loss": total[0] / max(total[2], 1), "accuracy": total[1] / max(total[2], 1),
            "seconds": round(t1 - t0, 2), "steady_seconds": round(steady, 2),
            "cpu_seconds": round(c1 - c0, 2)}  # all threads: honest on a busy machine


def _better(result: dict, best: dict) -> bool:
    """Lower validation loss wins (Keras' EarlyStopping default: on a few hundred validation
    images, accuracy moves in steps of one image; the loss still ranks epochs)."""
    return not best or result["val_loss"] < best["val_loss"]


def run_phases(classifier: Any, backbone: Any, splits: Splits, opts: TrainOptions,
               spec: Any, strategy: Any, folder: str, chief: bool,
               log: Callable[[str], None] = print) -> ckpt.LoopState:
    """Train ``classifier`` in place (ending with its best weights); checkpoints go to
    ``folder`` (chief only). With ``opts.resume``, continues from ``folder/last.npz``.

    Raises:
        TrainingError: an image that stopped decoding mid-run, or a checkpoint of another run.
    """
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    state = ckpt.LoopState()
    # The best weights are kept in memory too: in a multi-worker run only the chief writes
    # files, and every worker must switch to the same weights.
    best_vars: dict[str, np.ndarray] = {}
    last = os.path.join(folder, ckpt.LAST)
    saved_opt: list[np.ndarray] = []
    if opts.resume and os.path.exists(last):
        loaded = ckpt.load(last)
        with strategy.scope():
            ckpt.restore_model(classifier, loaded.weights, last)
        state, saved_opt = loaded.state or state, loaded.optimizer
        best_file = os.path.join(folder, ckpt.BEST)
        if os.path.exists(best_file):
            best_vars = ckpt.load(best_file).weights
        log(f"resuming from {last}: phase {state.phase}, {state.epoch} epochs done")

    n = len(splits.train_paths)
    batch = min(opts.batch_size, n)
    n_steps = n // batch
    weights = None
    if opts.class_weights.value == "auto":
        weights = class_weights(splits.train_labels, splits.num_classes)[splits.train_labels]
    aug = Augment(enabled=opts.augment, min_area=opts.min_crop_area, flip=opts.flip)
    val_ds = make_dataset(splits.val_paths, splits.val_labels, splits.num_classes, spec,
                          batch, Augment(enabled=False)) if splits.val_paths else None
    steps = Steps(classifier, strategy, opts.label_smoothing, batch)
    phases = [(1, opts.head_epochs, opts.learning_rate, 0)]
    if opts.fine_tune_blocks != 0 and opts.epochs > 0:
        phases.append((2, opts.epochs, opts.phase2_learning_rate, opts.fine_tune_blocks))

    for phase, max_epochs, lr, blocks in phases:
        if phase < state.phase:
            continue
        if phase == 2 and state.epoch == 0 and best_vars:
            _restore(classifier, best_vars, strategy)  # fine-tune from the best head
        with strategy.scope():
            unfrozen = set_trainable(backbone, blocks)
            optimizer = keras.optimizers.Adam(lr)
            optimizer.build(classifier.trainable_variables)
            if saved_opt and state.epoch > 0 and not ckpt.restore_optimizer(optimizer, saved_opt):
                warnings.warn("the optimizer state in the checkpoint does not match: Adam "
                              "restarts from zero moments", UserWarning, stacklevel=2)
            steps.start_phase(optimizer)
        saved_opt = []
        what = "head on the frozen backbone" if phase == 1 else \
            f"{len(unfrozen)} top blocks + head conv unfrozen, BatchNorm frozen"
        if state.epoch < max_epochs:
            log(f"phase {phase} ({what}): up to {max_epochs} epochs, Adam lr {lr:g}, "
                f"{n_steps} batches of {batch}")
        while state.epoch < max_epochs:
            order, seeds = epoch_order(n, opts.seed, phase * 100_000 + state.epoch)
            ds = make_dataset([splits.train_paths[i] for i in order], splits.train_labels[order],
                              splits.num_classes, spec, batch, aug, seeds[order],
                              None if weights is None else weights[order], drop_remainder=True)
            try:
                result = {"phase": phase, "epoch": state.epoch + 1}
                result.update(_train_epoch(steps, ds, n_steps,
                                           f"phase {phase} epoch {state.epoch + 1}/{max_epochs}",
                                           opts.progress and chief))
                if val_ds is not None:
                    result.update(steps.evaluate(val_ds))
            except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
                raise TrainingError(f"an image could not be read during training: "
                                    f"{str(e).splitlines()[0]}") from e
            state.epoch += 1
            state.history.append(result)
            improved = val_ds is None or _better(result, state.best)
            if improved:
                state.best = {k: result.get(k) for k in ("phase", "epoch", "val_accuracy", "val_loss")}
                state.wait = 0
                best_vars = ckpt.variables_by_path(classifier.weights)
            else:
                state.wait += 1
            log(_epoch_line(result, max_epochs, improved and val_ds is not None))
            if chief:
                ckpt.save(folder, classifier, optimizer, state, improved)
            if state.wait >= opts.patience:
                log(f"phase {phase}: no lower validation loss for {opts.patience} epochs: "
                    "stopping early")
                break
        state.phase, state.epoch, state.wait = phase + 1, 0, 0
        if chief:
            ckpt.save(folder, classifier, None, state, False)
    state.phase = 3
    if best_vars:
        _restore(classifier, best_vars, strategy)
    return state


def _restore(classifier: Any, weights: dict, strategy: Any) -> None:
    with strategy.scope():
        ckpt.restore_model(classifier, weights, "the best checkpoint")


def _epoch_line(r: dict, max_epochs: int, best: bool) -> str:
    line = (f"phase {r['phase']} epoch {r['epoch']}/{max_epochs}: loss {r['loss']:.4f} "
            f"accuracy {r['accuracy']:.4f}")
    if "val_accuracy" in r:
        line += f" | val loss {r['val_loss']:.4f} accuracy {r['val_accuracy']:.4f}"
        line += " (best)" if best else ""
    return line + f" | {r['seconds']:.1f} s"
