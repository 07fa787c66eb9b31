"""EdgeClassifier: a TFLite image classifier with the model's own preprocessing, on any delegate.

Thread safety: one main interpreter per classifier, guarded by a lock. Decoding and resizing run
outside the lock (in parallel across threads); only set_tensor/invoke/get_tensor are serialised,
so answers from many threads are exactly those of one thread. :meth:`EdgeClassifier.predict_iter`
pipelines many images: a pool of decoding threads (Pillow releases the GIL while it decodes and
resizes), inference in one or more interpreters, results in input order, bounded memory.
"""
from __future__ import annotations

import collections
import queue
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from . import quant
from .accelerated import AcceleratorUnavailableError, CompiledRunner, native_reason
from .backends import Backend, load_backend
from .cliutil import quiet_native_logs
from .delegates import (DelegateFallbackWarning, DelegatePlan, DelegateUnavailableError,
                        count_delegated_ops, fallback_plan, plan_delegate)
from .metadata import ModelInfo, ModelSource
from .model import ModelFile, ModelLoadError, load_model
from .preprocess import ImageDecodeError, ImageInput, preprocess
from .sysinfo import usable_cores
from .variants import PreprocessSpec

__all__ = ["Category", "ClassifierClosedError", "EdgeClassifier", "InferenceError",
           "ModelLoadError", "Prediction", "default_input_norm"]


@dataclass(frozen=True)
class Category:
    """One class of a prediction. ``label`` is None when neither model nor caller gave labels."""

    index: int
    label: str | None
    score: float


@dataclass(frozen=True)
class Prediction:
    """One image's outcome in :meth:`EdgeClassifier.predict_iter` (yielded in input order).

    ``error`` is the FileNotFoundError or ImageDecodeError that stopped this image (then
    ``categories`` is empty); ``scores`` holds all class probabilities when asked for.
    """

    index: int
    source: Any
    categories: list[Category]
    error: Exception | None = None
    scores: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ClassifierClosedError(RuntimeError):
    """The classifier was used after :meth:`EdgeClassifier.close`."""


class InferenceError(RuntimeError):
    """The interpreter failed while running the model (a model that loaded but cannot run)."""


#: Errors of one image that predict_iter reports per image instead of raising.
IMAGE_ERRORS = (FileNotFoundError, ImageDecodeError)


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
            'gpu' without a GPU delegate library runs LiteRT's own GPU accelerator
            (:mod:`edge.accelerated`), compiled and run once here.
        num_threads: CPU threads for the interpreter (default: the cores this process may use,
            :func:`edge.sysinfo.usable_cores`).
        labels: class names overriding the model's own.
        top_k, score_threshold: defaults for :meth:`predict`.
        fallback: if the delegate cannot load, warn and run on XNNPACK instead of raising.
        backend: 'litert', 'tflite_runtime' or 'tensorflow' (default: first available).
        delegate_options: options passed to the delegate library (e.g. ``{'device': 'usb:0'}``).
        input_mean, input_std: raw pixel → input value normalisation, overriding the metadata
            (or :func:`default_input_norm` for models without metadata).
        draft: let libjpeg decode large JPEGs at reduced scale (paths and bytes); see
            :func:`edge.preprocess.preprocess`.
        verbose: let the native runtime print its own log lines (LiteRT's "INFO: Created
            TensorFlow Lite XNNPACK delegate for CPU."); hidden by default.

    Raises:
        FileNotFoundError: no such model file.
        ModelLoadError: not a TFLite model, a corrupt flatbuffer, metadata or labels, I/O
            tensors that are not a 1xSxSx3 image in / 1xN scores out, or the interpreter
            refuses it (the message says what was wrong).
        BackendUnavailableError: no TFLite interpreter (or not the one named) can be imported.
        DelegateUnavailableError: the delegate cannot be loaded and ``fallback`` is False.
        ValueError: bad delegate name, device string, normalisation, or labels that do not
            match the number of classes.

    Warns:
        RuntimeWarning: the delegate loaded but took none of the model's operators: what runs
            is the CPU path, and :attr:`delegate` says so (or fell back, with ``fallback``).
    """

    def __init__(self, model: ModelSource, delegate: Any = "auto", num_threads: int | None = None,
                 labels: Sequence[str] | None = None, top_k: int | None = 5,
                 score_threshold: float | None = None, fallback: bool = False,
                 backend: str | None = None, delegate_options: Mapping[str, Any] | None = None,
                 input_mean: Sequence[float] | float | None = None,
                 input_std: Sequence[float] | float | None = None, draft: bool = True,
                 verbose: bool = False):
        self._interp: Any = None
        self._verbose = verbose
        self._file: ModelFile = load_model(model)
        self._model = self._file.data
        self._info: ModelInfo | None = self._file.info
        self._backend: Backend = load_backend(backend)
        self._num_threads = int(num_threads) if num_threads else usable_cores()
        self._top_k, self._threshold, self._draft = top_k, score_threshold, draft
        self._lock = threading.Lock()
        self._pool: list[Any] = []  # extra 1-thread interpreters for predict_iter
        self._num_classes = self._file.num_classes
        info = self._info
        size = self._file.input_size
        self._spec = info.spec if info and info.spec else PreprocessSpec(size=size)
        inp = self._file.input
        d_mean, d_std = (info.input_mean, info.input_std) if info else \
            default_input_norm(inp.dtype, inp.scale, inp.zero_point)
        mean = d_mean if input_mean is None else np.atleast_1d(input_mean).tolist()
        std = d_std if input_std is None else np.atleast_1d(input_std).tolist()
        try:
            self._affine = quant.input_affine(mean, std, inp.scale, inp.zero_point)
        except ValueError as e:
            if input_mean is None and input_std is None:
                raise ModelLoadError(f"the model's input normalisation is unusable: {e}") from e
            raise
        self._labels = list(labels) if labels is not None else (info.labels if info else None)
        if labels is not None and len(self._labels) != self._num_classes:
            raise ValueError(f"{len(self._labels)} labels for {self._num_classes} classes")
        # Trust output_kind only from our own spec file; other metadata: look at the values.
        self._logits = None if info is None or info.spec is None else info.output_kind == "logits"

        plan = plan_delegate(delegate, self._backend, self._model, delegate_options, fallback,
                             edgetpu_model=self._file.edgetpu)
        self._interp, self._plan = self._build(plan, fallback)
        details_in = self._interp.get_input_details()[0]
        details_out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = details_in["index"], details_out["index"]
        self._in_dtype = np.dtype(details_in["dtype"])
        self._in_shape = tuple(int(v) for v in details_in["shape"])
        self._out_scale, self._out_zp = details_out["quantization"]
        if self._in_shape != inp.shape or self._in_dtype != inp.dtype:
            raise ModelLoadError(f"the interpreter sees input {self._in_shape} {self._in_dtype}, "
                                 f"the file declares {inp.shape} {inp.dtype}")
        self._fast = self._affine.identity and self._in_dtype == np.uint8

    def _interpreter(self, plan: DelegatePlan, threads: int) -> Any:
        kwargs: dict[str, Any] = {"model_content": self._model, "num_threads": threads}
        if plan.op_resolver is not None:
            kwargs["experimental_op_resolver_type"] = plan.op_resolver
        if plan.delegates:
            kwargs["experimental_delegates"] = plan.delegates
        return self._backend.Interpreter(**kwargs)

    def _build(self, plan: DelegatePlan, fallback: bool) -> tuple[Any, DelegatePlan]:
        if plan.accelerator:
            return self._build_accelerated(plan, fallback)
        try:
            with quiet_native_logs(self._verbose):  # LiteRT's "INFO: Created … XNNPACK" line
                interp = self._interpreter(plan, self._num_threads)
                # Delegates passed in are applied at construction, XNNPACK (the default) only
                # at allocate_tensors: counting here gives the nodes the requested one took.
                claimed = count_delegated_ops(interp) if plan.delegates else None
                interp.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            if plan.delegates and fallback:
                warnings.warn(DelegateFallbackWarning(f"delegate {plan.name} failed to apply "
                                                      f"({e}); falling back to XNNPACK on the CPU"),
                              stacklevel=3)
                return self._build(DelegatePlan("xnnpack", fallback_reason=str(e)), False)
            if plan.delegates:
                raise DelegateUnavailableError(f"delegate {plan.name} failed to apply: {e}") from e
            raise ModelLoadError(f"the interpreter cannot load this model: {e}") from e
        self._delegated_ops = count_delegated_ops(interp)
        if claimed == 0:
            # Loaded and applied, but took no node: every operator runs on the CPU path.
            reason = f"delegate {plan.name} loaded but took none of the model's operators"
            cpu = "xnnpack" if self._delegated_ops else "cpu"
            warnings.warn(f"{reason}; they run on the CPU ({cpu}) instead", RuntimeWarning,
                          stacklevel=3)
            plan = DelegatePlan(cpu, plan.delegates, plan.op_resolver, reason)
        elif claimed:
            self._delegated_ops = claimed
        if plan.name == "xnnpack" and self._delegated_ops == 0:
            plan = DelegatePlan("cpu", fallback_reason=plan.fallback_reason)  # XNNPACK took nothing
        return interp, plan

    def _build_accelerated(self, plan: DelegatePlan, fallback: bool) -> tuple[Any, DelegatePlan]:
        """LiteRT's GPU accelerator (no delegate library was found): compiled and run once here."""
        failed, runner = None, None
        with quiet_native_logs(self._verbose) as log:
            try:
                runner = CompiledRunner(self._model, plan.accelerator, self._file.input,
                                        self._file.output)
            except AcceleratorUnavailableError as e:
                failed = e
        if failed is not None:
            head = (f"{plan.name} unavailable: LiteRT's {plan.accelerator.upper()} accelerator: "
                    f"{native_reason(log.text) or failed}; and ")
            tried = plan.tried
            err = DelegateUnavailableError(head + str(tried or ""),
                                           head + (tried.cli_message if tried else ""))
            if not fallback:
                raise err from failed
            return self._build(fallback_plan(err, stacklevel=4), False)
        self._delegated_ops = None  # the CompiledModel API does not count nodes
        if not runner.fully_accelerated:
            warnings.warn(f"LiteRT's {plan.accelerator.upper()} accelerator runs only part of this "
                          "model; the rest runs on the CPU", RuntimeWarning, stacklevel=4)
        return runner, plan

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
        """Why the requested delegate is not what runs (it failed to load or apply and
        ``fallback`` was set, or it took no operators), else None."""
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

    def _invoke(self, interp: Any, x: np.ndarray) -> np.ndarray:
        try:
            interp.set_tensor(self._in_index, x[None])
            interp.invoke()
            return interp.get_tensor(self._out_index).reshape(-1)
        except (RuntimeError, ValueError) as e:
            raise InferenceError(f"the interpreter failed to run the model: "
                                 f"{' '.join(str(e).split())}") from e

    def _run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._interp is None:
                raise ClassifierClosedError("this EdgeClassifier is closed")
            return self._invoke(self._interp, x)

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
            InferenceError: the interpreter failed to run the model.
        """
        self._check_open()
        return self._scores(self._run(self._input(img)))

    def predict(self, img: ImageInput, top_k: int | None = None,
                score_threshold: float | None = None) -> list[Category]:
        """The best classes for one image (path, bytes, PIL image or HxW[x3] array), best first.

        Raises:
            FileNotFoundError, ImageDecodeError: the image cannot be read.
            ClassifierClosedError: after :meth:`close`.
            InferenceError: the interpreter failed to run the model.
        """
        return self._categories(self.scores(img), self._top_k if top_k is None else top_k,
                                self._threshold if score_threshold is None else score_threshold)

    def _pool_interpreters(self, n: int) -> list[Any]:
        """``n`` one-thread interpreters for parallel inference (made once, kept until close)."""
        with self._lock:
            self._check_open()
            while len(self._pool) < n:
                plan = DelegatePlan(self._plan.name, [], self._plan.op_resolver)
                with quiet_native_logs(self._verbose):
                    interp = self._interpreter(plan, 1)
                    interp.allocate_tensors()
                self._pool.append(interp)
            return self._pool[:n]

    def predict_iter(self, imgs: Iterable[ImageInput], top_k: int | None = None,
                     score_threshold: float | None = None, *, workers: int | None = None,
                     interpreters: int | None = None, prefetch: int | None = None,
                     with_scores: bool = False) -> Iterator[Prediction]:
        """Classify many images, pipelined: one :class:`Prediction` per image, in input order.

        ``imgs`` is read lazily and at most ``prefetch`` images are in flight (default
        ``4 × workers``), so memory stays flat over any number of files. ``workers`` threads
        (default: one per usable core) decode and resize in parallel (Pillow releases the GIL). Each
        worker then runs inference on one of ``interpreters`` one-thread interpreters (default:
        one per worker on the CPU paths; with a GPU / Edge TPU / external delegate, the one
        main interpreter, shared under its lock). An image that cannot be read gives a
        Prediction with ``error`` set; the others go on.

        Raises:
            ClassifierClosedError: the classifier is (or gets) closed.
            InferenceError: the interpreter failed to run the model.
            ValueError: ``workers``, ``interpreters`` or ``prefetch`` below 1.
        """
        workers = int(workers) if workers is not None else usable_cores()
        cpu_path = self._plan.accelerator is None and (
            not self._plan.delegates or self._plan.name in ("xnnpack", "cpu"))
        if interpreters is None:
            interpreters = workers if cpu_path and workers > 1 else 1
        prefetch = int(prefetch) if prefetch is not None else 4 * workers
        if workers < 1 or interpreters < 1 or prefetch < 1:
            raise ValueError(f"workers, interpreters and prefetch must be >= 1, got {workers}, "
                             f"{interpreters}, {prefetch}")
        if interpreters > 1 and not cpu_path:
            raise ValueError(f"only one interpreter can hold the {self._plan.name} delegate")
        self._check_open()
        return self._pipeline(imgs, top_k, score_threshold, workers, interpreters, prefetch,
                              with_scores)

    def _pipeline(self, imgs: Iterable[ImageInput], top_k: int | None,
                  score_threshold: float | None, workers: int, interpreters: int, prefetch: int,
                  with_scores: bool) -> Iterator[Prediction]:
        self._check_open()
        k = self._top_k if top_k is None else top_k
        threshold = self._threshold if score_threshold is None else score_threshold
        free: queue.SimpleQueue | None = None
        if interpreters > 1:
            free = queue.SimpleQueue()
            for interp in self._pool_interpreters(interpreters):
                free.put(interp)

        def work(index: int, img: ImageInput) -> Prediction:
            try:
                x = self._input(img)
            except IMAGE_ERRORS as e:
                return Prediction(index, img, [], e)
            if free is None:
                raw = self._run(x)
            else:
                interp = free.get()
                try:
                    if self._interp is None:
                        raise ClassifierClosedError("this EdgeClassifier is closed")
                    raw = self._invoke(interp, x)
                finally:
                    free.put(interp)
            scores = self._scores(raw)
            return Prediction(index, img, self._categories(scores, k, threshold), None,
                              scores if with_scores else None)

        pending: collections.deque[Future] = collections.deque()
        source = enumerate(imgs)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edge-predict") as pool:
            try:
                for index, img in source:
                    pending.append(pool.submit(work, index, img))
                    if len(pending) >= prefetch:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for f in pending:
                    f.cancel()

    def predict_batch(self, imgs: Iterable[ImageInput], top_k: int | None = None,
                      score_threshold: float | None = None, *,
                      workers: int | None = None) -> list[list[Category]]:
        """:meth:`predict` for each image, in order, pipelined as :meth:`predict_iter` does.

        Raises:
            FileNotFoundError, ImageDecodeError: the first image that cannot be read (the
                batch stops there; use :meth:`predict_iter` to go on past bad images).
            ClassifierClosedError, InferenceError, ValueError: see :meth:`predict_iter`.
        """
        out = []
        for p in self.predict_iter(imgs, top_k, score_threshold, workers=workers):
            if p.error is not None:
                raise p.error
            out.append(p.categories)
        return out

    # -- lifetime -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._interp is None:
            raise ClassifierClosedError("this EdgeClassifier is closed")

    def close(self) -> None:
        """Free the interpreter and delegates. Safe to call more than once."""
        with self._lock:
            if isinstance(self._interp, CompiledRunner):
                with quiet_native_logs(self._verbose):  # LiteRT logs each accelerator it frees
                    self._interp.close()
            self._interp = None
            self._pool = []
            self._plan = DelegatePlan(self._plan.name, [], None, self._plan.fallback_reason)

    def __enter__(self) -> "EdgeClassifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._interp is None else "open"
        return (f"EdgeClassifier(size={self.input_size}, backend={self.backend!r}, "
                f"delegate={self.delegate!r}, {state})")
