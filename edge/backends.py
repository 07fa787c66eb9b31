"""Which TFLite interpreter runs the model: ai_edge_litert, then tflite_runtime, then tf.lite.

TensorFlow is only imported when both light runtimes are missing or when asked for by name.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

#: (name, module to import, what to pip install), in the order tried.
BACKENDS: tuple[tuple[str, str, str], ...] = (
    ("litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow", "tensorflow", "tensorflow"),
)
_ALIASES = {"ai_edge_litert": "litert", "ai-edge-litert": "litert", "tflite-runtime": "tflite_runtime",
            "tf": "tensorflow", "tf.lite": "tensorflow"}


class BackendUnavailableError(ImportError):
    """No TFLite interpreter could be imported (or not the one asked for)."""


@dataclass(frozen=True)
class Backend:
    """One importable interpreter module, as the classifier uses it."""

    name: str
    Interpreter: Any
    load_delegate: Callable[..., Any]
    #: ``OpResolverType`` enum, or None when this runtime has no resolver choice.
    OpResolverType: Any

    def builtin_without_default_delegates(self) -> Any:
        """The op resolver that turns XNNPACK off (built-in kernels only), or None if absent."""
        ort = self.OpResolverType
        return getattr(ort, "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None) if ort else None


def _import(name: str, module: str) -> Backend:
    mod = importlib.import_module(module)
    if name == "tensorflow":
        lite = mod.lite
        return Backend(name, lite.Interpreter, lite.experimental.load_delegate,
                       getattr(lite.experimental, "OpResolverType", None))
    return Backend(name, mod.Interpreter, mod.load_delegate, getattr(mod, "OpResolverType", None))


def available_backends() -> list[str]:
    """Names of the backends whose module can be found (without importing any of them)."""
    import importlib.util

    out = []
    for name, module, _ in BACKENDS:
        try:
            if importlib.util.find_spec(module.split(".")[0]) is not None:
                out.append(name)
        except (ImportError, ValueError):
            pass
    return out


def load_backend(name: str | None = None) -> Backend:
    """Import a TFLite interpreter: ``name`` ('litert', 'tflite_runtime', 'tensorflow') or the
    first available in that order.

    Raises:
        BackendUnavailableError: the named backend (or every backend) cannot be imported; the
            message says what to ``pip install``.
        ValueError: unknown backend name.
    """
    if name is not None:
        key = _ALIASES.get(str(name).lower(), str(name).lower())
        for bname, module, pip in BACKENDS:
            if bname == key:
                try:
                    return _import(bname, module)
                except ImportError as e:
                    raise BackendUnavailableError(
                        f"backend {bname!r} is not available ({e}); pip install {pip}") from e
        raise ValueError(f"unknown backend {name!r}; valid: {', '.join(b for b, _, _ in BACKENDS)}")
    errors = []
    for bname, module, _ in BACKENDS:
        try:
            return _import(bname, module)
        except ImportError as e:
            errors.append(f"{module}: {e}")
    raise BackendUnavailableError(
        "no TFLite interpreter found (" + "; ".join(errors) + "); pip install ai-edge-litert "
        "(or tflite-runtime on platforms without it)")
