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


def _progress_callback(keras: Any, steps: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm  # noqa: PLC0415

    class Bar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # noqa: ANN001
            self.bar = tqdm(total=steps, desc=desc, unit="batch", file=sys.stderr,
                            disable=not enabled, leave=False, dynamic_ncols=True)

        def on_train_batch_end(self, batch, logs=None):  # noqa: ANN001
            if batch == 0:
                self.first_batch_end = time.perf_counter()
            self.bar.update(1)
            if logs:
                self.bar.set_postfix(loss=f"{float(logs.get('loss', 0)):.3f}",
                                     acc=f"{float(logs.get('accuracy', 0)):.3f}", refresh=False)

        def on_train_end(self, logs=None):  # noqa: ANN001
            self.bar.close()
    return Bar()


def _better(result: dict, best: dict) -> bool:
    """Higher validation accuracy wins; on a tie, lower validation loss."""
    if not best:
        return True
    if result["val_accuracy"] != best["val_accuracy"]:
        return result["val_accuracy"] > best["val_accuracy"]
    return result["val_loss"] < best["val_loss"]


def run_phases(classifier: Any, backbone: Any, splits: Splits, opts: TrainOptions,
               spec: Any, strategy: Any, folder: str, chief: bool,
               log: Callable[[str], None] = print) -> ckpt.LoopState:
    """Train ``classifier`` in place (ending with its best weights); checkpoints go to
    ``folder`` (chief only). Continues from ``folder/last.npz`` when it exists.

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
    if os.path.exists(last):
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
    steps = n // batch
    weights = None
    if opts.class_weights.value == "auto":
        weights = class_weights(splits.train_labels, splits.num_classes)[splits.train_labels]
    aug = Augment(enabled=opts.augment, min_area=opts.min_crop_area)
    val_ds = make_dataset(splits.val_paths, splits.val_labels, splits.num_classes, spec,
                          batch, Augment(enabled=False)) if splits.val_paths else None
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
            classifier.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=opts.label_smoothing),
                metrics=["accuracy"])
            optimizer.build(classifier.trainable_variables)
            if saved_opt and state.epoch > 0 and not ckpt.restore_optimizer(optimizer, saved_opt):
                warnings.warn("the optimizer state in the checkpoint does not match: Adam "
                              "restarts from zero moments", UserWarning, stacklevel=2)
        saved_opt = []
        what = "head on the frozen backbone" if phase == 1 else \
            f"{len(unfrozen)} top blocks + head conv unfrozen, BatchNorm frozen"
        if state.epoch < max_epochs:
            log(f"phase {phase} ({what}): up to {max_epochs} epochs, Adam lr {lr:g}, "
                f"{steps} batches of {batch}")
        while state.epoch < max_epochs:
            order, seeds = epoch_order(n, opts.seed, phase * 100_000 + state.epoch)
            ds = make_dataset([splits.train_paths[i] for i in order], splits.train_labels[order],
                              splits.num_classes, spec, batch, aug, seeds[order],
                              None if weights is None else weights[order], drop_remainder=True)
            bar = _progress_callback(keras, steps, f"phase {phase} epoch {state.epoch + 1}/{max_epochs}",
                                     opts.progress and chief)
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                hist = classifier.fit(ds, epochs=1, verbose=0, callbacks=[bar])
                t1, c1 = time.perf_counter(), time.process_time()
                # The first batch of a phase includes tracing the step function: the steady
                # rate is measured from the end of the first batch.
                first = getattr(bar, "first_batch_end", t0) - t0
                steady = (t1 - t0 - first) * steps / (steps - 1) if steps > 1 else t1 - t0
                result = {"phase": phase, "epoch": state.epoch + 1, "seconds": round(t1 - t0, 2),
                          "steady_seconds": round(steady, 2),
                          "cpu_seconds": round(c1 - c0, 2),  # all threads: honest on a busy machine
                          "loss": float(hist.history["loss"][-1]),
                          "accuracy": float(hist.history["accuracy"][-1])}
                if val_ds is not None:
                    ev = classifier.evaluate(val_ds, verbose=0, return_dict=True)
                    result.update(val_loss=float(ev["loss"]), val_accuracy=float(ev["accuracy"]))
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
                log(f"phase {phase}: no better validation accuracy for {opts.patience} epochs: "
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
