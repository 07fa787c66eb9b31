"""EdgeClassifier: a TFLite image classifier with the model's own preprocessing, on any delegate.

Thread safety: one interpreter per classifier, guarded by a lock. Decoding and resizing run
outside the lock (in parallel across threads); only set_tensor/invoke/get_tensor are serialised,
so answers from many threads are exactly those of one thread. For parallel inference, make one
classifier per thread.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from . import quant
from .backends import Backend, load_backend
from .delegates import DelegatePlan, DelegateUnavailableError, count_delegated_ops, plan_delegate
from .metadata import MetadataError, ModelInfo, ModelSource, load_model_bytes, read_metadata
from .preprocess import ImageInput, preprocess
from .variants import PreprocessSpec


@dataclass(frozen=True)
class Category:
    """One class of a prediction. ``label`` is None when neither model nor caller gave labels."""

    index: int
    label: str | None
    score: float


class ModelLoadError(ValueError):
    """The model file cannot be read or the interpreter refuses it."""


class ClassifierClosedError(RuntimeError):
    """The classifier was used after :meth:`EdgeClassifier.close`."""


def default_input_norm(dtype: np.dtype, scale: float, zero_point: int) -> tuple[list, list]:
    """Pixel → input normalisation assumed for a model WITHOUT metadata.

    float input: raw 0–255 pixels (Keras applications and this SDK's converter keep the
    normalisation inside the graph); uint8 quantised input: raw pixels fed as they are (the
    Coral / TF Hub convention); int8 quantised input: ``pixel - 128`` fed as is. Pass
    ``input_mean``/``input_std`` to :class:`EdgeClassifier` for anything else.
    """
    if scale > 0 and dtype == np.uint8:
        return [float(zero_point)], [1.0 / scale]
    if scale > 0 and dtype == np.int8:
        return [128.0 + zero_point], [1.0 / scale]
    return [0.0], [1.0]


class EdgeClassifier:
    """Classify images with a TFLite model (path or bytes), preprocessed as its metadata says.

    Args:
        model: path to a ``.tflite`` file, or its bytes.
        delegate: 'auto', 'xnnpack', 'cpu', 'gpu', 'edgetpu[:usb[:N]|:pci[:N]]', a delegate
            library path, or a loaded delegate object (see :func:`edge.delegates.plan_delegate`).
        num_threads: CPU threads for the interpreter (default: all cores).
        labels: class names overriding the model's own.
        top_k, score_threshold: defaults for :meth:`predict`.
        fallback: if the delegate cannot load, warn and run on XNNPACK instead of raising.
        backend: 'litert', 'tflite_runtime' or 'tensorflow' (default: first available).
        delegate_options: options passed to the delegate library (e.g. ``{'device': 'usb:0'}``).
        input_mean, input_std: raw pixel → input value normalisation, overriding the metadata
            (or :func:`default_input_norm` for models without metadata).
        draft: let libjpeg decode large JPEGs at reduced scale (paths and bytes).

    Raises:
        FileNotFoundError: no such model file.
        ModelLoadError: not a TFLite model, unreadable metadata, or the interpreter refuses it.
        BackendUnavailableError: no TFLite interpreter (or not the one named) can be imported.
        DelegateUnavailableError: the delegate cannot be loaded and ``fallback`` is False.
        ValueError: bad delegate name, device string or normalisation.
    """

    def __init__(self, model: ModelSource, delegate: Any = "auto", num_threads: int | None = None,
                 labels: Sequence[str] | None = None, top_k: int | None = 5,
                 score_threshold: float | None = None, fallback: bool = False,
                 backend: str | None = None, delegate_options: Mapping[str, Any] | None = None,
                 input_mean: Sequence[float] | float | None = None,
                 input_std: Sequence[float] | float | None = None, draft: bool = True):
        try:
            self._model = load_model_bytes(model)
            self._info: ModelInfo | None = read_metadata(self._model)
        except MetadataError as e:
            raise ModelLoadError(str(e)) from e
        self._backend: Backend = load_backend(backend)
        self._num_threads = int(num_threads) if num_threads else (os.cpu_count() or 1)
        self._top_k, self._threshold, self._draft = top_k, score_threshold, draft
        self._lock = threading.Lock()
        plan = plan_delegate(delegate, self._backend, self._model, delegate_options, fallback)
        self._interp, self._plan = self._build(plan, fallback)

        inp = self._interp.get_input_details()[0]
        out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype = np.dtype(inp["dtype"])
        self._in_shape = tuple(int(v) for v in inp["shape"])
        if len(self._in_shape) != 4 or self._in_shape[-1] != 3:
            raise ModelLoadError(f"expected a 1xHxWx3 image input, got shape {self._in_shape}")
        in_scale, in_zp = inp["quantization"]
        self._out_scale, self._out_zp = out["quantization"]
        self._num_classes = int(out["shape"][-1])

        info = self._info
        size = self._in_shape[1]
        self._spec = info.spec if info and info.spec else PreprocessSpec(size=size)
        if self._spec.size != size:
            raise ModelLoadError(f"metadata says size {self._spec.size}, the input is {size}")
        d_mean, d_std = (info.input_mean, info.input_std) if info else \
            default_input_norm(self._in_dtype, in_scale, in_zp)
        mean = d_mean if input_mean is None else np.atleast_1d(input_mean).tolist()
        std = d_std if input_std is None else np.atleast_1d(input_std).tolist()
        self._affine = quant.input_affine(mean, std, in_scale, in_zp)
        self._fast = self._affine.identity and self._in_dtype == np.uint8
        self._labels = list(labels) if labels is not None else (info.labels if info else None)
        if self._labels is not None and len(self._labels) != self._num_classes:
            raise ValueError(f"{len(self._labels)} labels for {self._num_classes} classes")
        # Trust output_kind only from our own spec file; other metadata: look at the values.
        self._logits = None if info is None or info.spec is None else info.output_kind == "logits"

    def _build(self, plan: DelegatePlan, fallback: bool) -> tuple[Any, DelegatePlan]:
        kwargs: dict[str, Any] = {"model_content": self._model, "num_threads": self._num_threads}
        if plan.op_resolver is not None:
            kwargs["experimental_op_resolver_type"] = plan.op_resolver
        if plan.delegates:
            kwargs["experimental_delegates"] = plan.delegates
        try:
            interp = self._backend.Interpreter(**kwargs)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            if plan.delegates and fallback:
                warnings.warn(f"delegate {plan.name} failed to apply ({e}); falling back to "
                              "XNNPACK on the CPU", RuntimeWarning, stacklevel=3)
                return self._build(DelegatePlan("xnnpack", fallback_reason=str(e)), False)
            if plan.delegates:
                raise DelegateUnavailableError(f"delegate {plan.name} failed to apply: {e}") from e
            raise ModelLoadError(f"the interpreter cannot load this model: {e}") from e
        self._delegated_ops = count_delegated_ops(interp)
        if plan.name == "xnnpack" and self._delegated_ops == 0:
            plan = DelegatePlan("cpu", fallback_reason=plan.fallback_reason)  # XNNPACK took nothing
        return interp, plan

    # -- properties ---------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self._spec.size

    @property
    def labels(self) -> list[str] | None:
        return None if self._labels is None else list(self._labels)

    @property
    def delegate(self) -> str:
        """What actually runs: 'xnnpack', 'cpu', 'gpu', 'edgetpu', 'external:<lib>', 'custom:…'."""
        return self._plan.name

    @property
    def fallback_reason(self) -> str | None:
        """Why the requested delegate was replaced by XNNPACK, or None."""
        return self._plan.fallback_reason

    @property
    def delegated_ops(self) -> int | None:
        """Nodes a delegate took over (0: all on built-in kernels; None: runtime can't say)."""
        return self._delegated_ops

    @property
    def backend(self) -> str:
        return self._backend.name

    @property
    def spec(self) -> PreprocessSpec:
        return self._spec

    @property
    def metadata(self) -> ModelInfo | None:
        return self._info

    # -- inference ----------------------------------------------------------------------------
    def _input(self, img: ImageInput) -> np.ndarray:
        if (self._fast and isinstance(img, np.ndarray) and img.dtype == np.uint8
                and img.shape == self._in_shape[1:]):
            return img  # zero work: raw pixels are the tensor values
        pixels = preprocess(img, self._spec, draft=self._draft)
        return self._affine.apply(pixels, self._in_dtype)

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            interp = self._interp
            if interp is None:
                raise ClassifierClosedError("this EdgeClassifier is closed")
            interp.set_tensor(self._in_index, x[None])
            interp.invoke()
            raw = interp.get_tensor(self._out_index)
        return raw.reshape(-1)

    def _scores(self, raw: np.ndarray) -> np.ndarray:
        v = quant.dequantize(raw, self._out_scale, self._out_zp) if self._out_scale else raw
        logits = self._logits if self._logits is not None else not quant.looks_like_probabilities(v)
        return quant.softmax(v) if logits else v.astype(np.float32, copy=False)

    def _categories(self, scores: np.ndarray, top_k, threshold) -> list[Category]:
        labels = self._labels
        return [Category(i, labels[i] if labels else None, s)
                for i, s in quant.top_k(scores, top_k, threshold)]

    def scores(self, img: ImageInput) -> np.ndarray:
        """All class probabilities for one image (float32, dequantised, softmaxed if logits).

        Raises:
            FileNotFoundError, ImageDecodeError: the image cannot be read.
            ClassifierClosedError: after :meth:`close`.
        """
        self._check_open()
        return self._scores(self._run(self._input(img)))

    def predict(self, img: ImageInput, top_k: int | None = None,
                score_threshold: float | None = None) -> list[Category]:
        """The best classes for one image (path, bytes, PIL image or HxW[x3] array), best first.

        Raises:
            FileNotFoundError, ImageDecodeError: the image cannot be read.
            ClassifierClosedError: after :meth:`close`.
        """
        return self._categories(self.scores(img), self._top_k if top_k is None else top_k,
                                self._threshold if score_threshold is None else score_threshold)

    def predict_batch(self, imgs: Iterable[ImageInput], top_k: int | None = None,
                      score_threshold: float | None = None) -> list[list[Category]]:
        """:meth:`predict` for each image, in order.

        Raises:
            see :meth:`predict` (the first image that fails stops the batch).
        """
        return [self.predict(i, top_k, score_threshold) for i in imgs]

    # -- lifetime -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._interp is None:
            raise ClassifierClosedError("this EdgeClassifier is closed")

    def close(self) -> None:
        """Free the interpreter and delegates. Safe to call more than once."""
        with self._lock:
            self._interp = None
            self._plan = DelegatePlan(self._plan.name, [], None, self._plan.fallback_reason)

    def __enter__(self) -> "EdgeClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._interp is None else "open"
        return (f"EdgeClassifier(size={self.input_size}, backend={self.backend!r}, "
                f"delegate={self.delegate!r}, {state})")
