"""Resumable checkpoints: model and optimizer variables plus the loop's state, in one file.

Each checkpoint is one ``.npz`` written with :func:`edge.cliutil.write_files_atomic` (temp file,
fsync, rename), so a kill at any moment leaves the previous checkpoint whole. Variables are
stored by their Keras path, which does not depend on which layers are trainable.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.cliutil import write_files_atomic

LAST = "last.npz"
BEST = "best.npz"


@dataclass
class LoopState:
    """Where the two-phase loop stands (saved with every checkpoint)."""

    phase: int = 1  # 1: head on the frozen backbone, 2: fine-tuning, 3: done
    epoch: int = 0  # epochs completed in ``phase``
    wait: int = 0  # epochs since the best validation result
    best: dict = field(default_factory=dict)  # phase, epoch, val_accuracy, val_loss
    history: list = field(default_factory=list)  # one dict per epoch

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "LoopState":
        return cls(**json.loads(text))


class CheckpointError(ValueError):
    """A checkpoint that does not belong to this run (another model or class count)."""


def variables_by_path(variables: Any) -> dict[str, np.ndarray]:
    return {v.path: np.asarray(v.numpy()) for v in variables}


def _pack(model_vars: dict[str, np.ndarray], opt_vars: list[np.ndarray] | None,
          state: LoopState | None) -> bytes:
    arrays = {f"model/{k}": v for k, v in model_vars.items()}
    for i, v in enumerate(opt_vars or []):
        arrays[f"optimizer/{i:05d}"] = v
    if state is not None:
        arrays["state"] = np.frombuffer(state.to_json().encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(folder: str, model: Any, optimizer: Any, state: LoopState, best: bool) -> None:
    """Write ``last.npz`` (weights, optimizer, state) and, when ``best``, ``best.npz`` too,
    all or nothing."""
    weights = variables_by_path(model.weights)
    files = {os.path.join(folder, LAST): _pack(
        weights, [np.asarray(v.numpy()) for v in optimizer.variables] if optimizer else None, state)}
    if best:
        files[os.path.join(folder, BEST)] = _pack(weights, None, state)
    write_files_atomic(files)


@dataclass
class Loaded:
    weights: dict[str, np.ndarray]
    optimizer: list[np.ndarray]
    state: LoopState | None


def load(path: str) -> Loaded:
    """Read a checkpoint written by :func:`save`.

    Raises:
        CheckpointError: not a readable checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = {k[len("model/"):]: z[k] for k in z.files if k.startswith("model/")}
            opt = [z[k] for k in sorted(k for k in z.files if k.startswith("optimizer/"))]
            state = LoopState.from_json(z["state"].tobytes().decode()) if "state" in z.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    return Loaded(weights, opt, state)


def restore_model(model: Any, weights: dict[str, np.ndarray], source: str) -> None:
    """Assign saved weights to ``model``'s variables by path.

    Raises:
        CheckpointError: a variable missing from the checkpoint or of another shape.
    """
    for v in model.weights:
        if v.path not in weights:
            raise CheckpointError(f"{source} has no value for {v.path}: it belongs to another model")
        if tuple(weights[v.path].shape) != tuple(v.shape):
            raise CheckpointError(f"{source}: {v.path} has shape {weights[v.path].shape}, the "
                                  f"model {tuple(v.shape)}: another model or class count")
    for v in model.weights:
        v.assign(weights[v.path])


def restore_optimizer(optimizer: Any, values: list[np.ndarray]) -> bool:
    """Assign saved optimizer variables (Adam moments, step count); False when they do not
    match (then the optimizer starts afresh)."""
    current = list(optimizer.variables)
    if len(current) != len(values) or any(tuple(c.shape) != tuple(v.shape)
                                          for c, v in zip(current, values)):
        return False
    for c, v in zip(current, values):
        c.assign(v)
    return True
