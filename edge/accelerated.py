"""LiteRT's own GPU accelerator, the GPU path that needs no separately built delegate library.

ai-edge-litert 2.x ships a GPU accelerator inside the wheel (a WebGPU one in the Linux x86-64
wheel; LiteRT's docs also name OpenCL and Metal backends), reached through its ``CompiledModel``
API rather than through an Interpreter delegate. :class:`CompiledRunner` wraps one
``CompiledModel`` as the few Interpreter calls :class:`edge.EdgeClassifier` makes (details,
set_tensor, invoke, get_tensor), so the classifier's preprocessing, scoring and locking stay one
code path.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .model import IOTensor

#: Accelerator names and their ``HardwareAccelerator`` members.
ACCELERATORS = ("cpu", "gpu")
_compiled = False  # set once a model has been compiled and run here


def compiled_here() -> bool:
    """Whether this process has compiled and run a model through LiteRT's CompiledModel API.
    LiteRT then keeps environments that it frees, logging a line each, only at process exit."""
    return _compiled


class AcceleratorUnavailableError(RuntimeError):
    """The runtime has no such accelerator, or it cannot compile or run this model."""


def _litert() -> tuple[Any, Any, Any]:
    """(CompiledModel, HardwareAccelerator, default environment factory) from ai-edge-litert.

    Raises:
        AcceleratorUnavailableError: ai-edge-litert is missing or predates the CompiledModel API.
    """
    try:
        cm = importlib.import_module("ai_edge_litert.compiled_model")
        hw = importlib.import_module("ai_edge_litert.hardware_accelerator")
        env = importlib.import_module("ai_edge_litert.environment")
    except ImportError as e:
        raise AcceleratorUnavailableError(
            f"LiteRT's CompiledModel API is not available ({e}); pip install 'ai-edge-litert>=2'"
        ) from e
    runtime = os.path.dirname(os.path.abspath(cm.__file__))  # what CompiledModel does by default

    def environment() -> Any:
        return env.Environment.create(options=env.EnvironmentOptions(runtime_path=runtime))
    return cm.CompiledModel, hw.HardwareAccelerator, environment


_NATIVE_PREFIX = re.compile(r"^(?:ERROR: \[[^\]]*\]|E\d{4} [^\]]*\])\s*")


def native_reason(log_text: str) -> str | None:
    """The first error LiteRT logged (e.g. "Failed to initialize WebGPU environment: INTERNAL:
    No adapters found"), without its source-location prefix; None when it logged none."""
    for line in log_text.splitlines():
        line = line.strip(" └")
        if _NATIVE_PREFIX.match(line):
            text = _NATIVE_PREFIX.sub("", line).strip()
            if text and not text.startswith("ERROR: ["):
                return text
    return None


def compiled_model_available() -> bool:
    """Whether the installed ai-edge-litert has the CompiledModel API (imports nothing else)."""
    try:
        _litert()
        return True
    except AcceleratorUnavailableError:
        return False


def _message(e: BaseException) -> str:
    """LiteRT's error text on one line, without its source-location trace."""
    lines = [ln.strip(" └") for ln in str(e).splitlines()]
    return " ".join(ln for ln in lines if ln and not ln.startswith("===")) or type(e).__name__


class CompiledRunner:
    """One model compiled for one accelerator, driven like a TFLite Interpreter.

    ``inp``/``out``: the model's single input and output as :func:`edge.model.load_model` read
    them (their quantisation is what the Interpreter would report). The model is compiled and
    run once on zeros here, so a model the accelerator cannot run fails now, not at the first
    image.

    Raises:
        AcceleratorUnavailableError: no such accelerator here (e.g. no GPU adapter), or it
            cannot compile or run this model.
    """

    def __init__(self, model: bytes, accelerator: str, inp: IOTensor, out: IOTensor):
        if accelerator not in ACCELERATORS:
            raise ValueError(f"unknown accelerator {accelerator!r}; "
                             f"valid: {', '.join(ACCELERATORS)}")
        compiled_model, hw, environment = _litert()
        self.accelerator = accelerator
        self._inp, self._out = inp, out
        self._n_out = int(np.prod(out.shape))
        self._model = self._env = None
        try:
            self._env = environment()
            self._model = compiled_model.from_buffer(model, hardware_accel=hw[accelerator.upper()],
                                                     environment=self._env)
            self._in_bufs = self._model.create_input_buffers(0)
            self._out_bufs = self._model.create_output_buffers(0)
            self.fully_accelerated = self._model.is_fully_accelerated()
            if len(self._in_bufs) != 1 or len(self._out_bufs) != 1:
                raise AcceleratorUnavailableError(
                    f"expected one input and one output, the compiled model has "
                    f"{len(self._in_bufs)} and {len(self._out_bufs)}")
            self.set_tensor(0, np.zeros(inp.shape, inp.dtype))
            self.invoke()
            global _compiled  # noqa: PLW0603
            _compiled = True
        except AcceleratorUnavailableError:
            self.close()
            raise
        except (RuntimeError, ValueError) as e:
            self.close()
            raise AcceleratorUnavailableError(
                f"cannot compile or run this model: {_message(e)}") from e

    def close(self) -> None:
        """Free the compiled model, its buffers and its LiteRT environment (idempotent)."""
        self._in_bufs = self._out_bufs = []
        self._model = None
        if self._env is not None:
            self._env.close()
            self._env = None

    def _details(self, t: IOTensor) -> list[dict[str, Any]]:
        return [{"name": t.name, "index": 0, "dtype": t.dtype.type,
                 "shape": np.asarray(t.shape, dtype=np.int32),
                 "quantization": (t.scale, t.zero_point)}]

    def get_input_details(self) -> list[dict[str, Any]]:
        return self._details(self._inp)

    def get_output_details(self) -> list[dict[str, Any]]:
        return self._details(self._out)

    def allocate_tensors(self) -> None:
        """Nothing to do: buffers were made at compile time (Interpreter compatibility)."""

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        value = np.asarray(value)
        if value.dtype != self._inp.dtype or value.shape != tuple(self._inp.shape):
            raise ValueError(f"input must be {tuple(self._inp.shape)} {self._inp.dtype}, "
                             f"got {value.shape} {value.dtype}")
        self._in_bufs[0].write(value)

    def invoke(self) -> None:
        self._model.run_by_index(0, self._in_bufs, self._out_bufs)

    def get_tensor(self, index: int) -> np.ndarray:
        return self._out_bufs[0].read(self._n_out, self._out.dtype).reshape(self._out.shape)
