"""Delegate choice and loading: XNNPACK, built-in CPU kernels, GPU, Edge TPU or an external .so.

'gpu' is the TFLite GPU delegate library when one is installed, else LiteRT's own GPU
accelerator (ai-edge-litert 2.x, :mod:`edge.accelerated`), which the classifier compiles the
model for and reports as 'gpu' only once it has compiled and run it.

Nothing here reports a delegate that did not load: a failure either raises
:class:`DelegateUnavailableError` or, with ``fallback=True``, warns and plans XNNPACK instead.
"""
from __future__ import annotations

import ctypes
import enum
import os
import platform
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

from ._schema import model_reader as _mr
from ._schema.flatbuf import FlatbufferError
from .accelerated import compiled_model_available
from .backends import Backend

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"

#: Edge TPU runtime library per platform (pycoral's table).
EDGETPU_LIBRARY = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib",
                   "Windows": "edgetpu.dll"}
#: TFLite GPU delegate library per platform (built from tensorflow/lite/delegates/gpu).
GPU_LIBRARY = {"Linux": "libtensorflowlite_gpu_delegate.so",
               "Darwin": "libtensorflowlite_gpu_delegate.dylib",
               "Windows": "tensorflowlite_gpu_delegate.dll"}
_INSTALL = {
    "edgetpu": "install the Edge TPU runtime (https://coral.ai/software/#edgetpu-runtime, "
               "e.g. `apt-get install libedgetpu1-std`) and plug in / enable the Coral device",
    "gpu": "build or download the TFLite GPU delegate (bazel build "
           "//tensorflow/lite/delegates/gpu:libtensorflowlite_gpu_delegate.so) and put it on "
           "the library path, or pass its path as {path_option}",
}
#: How a delegate library path is passed: in the Python API and on the command line.
API_PATH_OPTION, CLI_PATH_OPTION = "delegate='/path/to/lib.so'", "--delegate /path/to/lib.so"
_DEVICE = re.compile(r"^(usb|pci)(:\d+)?$")


class DelegateKind(str, enum.Enum):
    """Delegate names shared by the API and the CLI (a path to a delegate library also works)."""

    AUTO = "auto"
    XNNPACK = "xnnpack"
    CPU = "cpu"
    GPU = "gpu"
    EDGETPU = "edgetpu"


class DelegateUnavailableError(RuntimeError):
    """A delegate was asked for and could not be loaded (or cannot run this model).

    ``cli_message`` is the same text spelled for a command-line user (``--delegate PATH``
    where the API says ``delegate=``).
    """

    def __init__(self, message: str, cli_message: str | None = None):
        super().__init__(message)
        self.cli_message = cli_message or message


class DelegateFallbackWarning(RuntimeWarning):
    """The delegate could not load and ``fallback=True`` runs on XNNPACK instead."""

    def __init__(self, message: str, cli_message: str | None = None):
        super().__init__(message)
        self.cli_message = cli_message or message


@dataclass
class DelegatePlan:
    """What the interpreter will be built with, and what to report as running."""

    #: What runs: 'xnnpack', 'cpu', 'gpu', 'edgetpu', 'external:<lib>' or 'custom:<type>'.
    name: str
    delegates: list = field(default_factory=list)
    #: OpResolverType member to pass, or None for the backend's default (XNNPACK on).
    op_resolver: Any = None
    #: Why the requested delegate was replaced by XNNPACK (fallback=True), else None.
    fallback_reason: str | None = None
    #: A LiteRT CompiledModel accelerator ('gpu') to run on instead of an Interpreter; not
    #: tried yet: :class:`edge.accelerated.CompiledRunner` compiles the model for it.
    accelerator: str | None = None
    #: What failed before the accelerator was chosen (the GPU delegate library), for messages.
    tried: DelegateUnavailableError | None = None


def fallback_plan(err: DelegateUnavailableError, stacklevel: int = 1) -> DelegatePlan:
    """``fallback=True``: warn that the delegate ``err`` names is replaced by XNNPACK (in the API's
    and the CLI's spelling) and plan XNNPACK, with ``err`` as the reason. ``stacklevel`` counts
    from the caller, as for :func:`warnings.warn`."""
    tail = "; falling back to XNNPACK on the CPU"
    warnings.warn(DelegateFallbackWarning(f"{err}{tail}", f"{err.cli_message}{tail}"),
                  stacklevel=stacklevel + 1)
    return DelegatePlan(DelegateKind.XNNPACK.value, fallback_reason=str(err))


def library_name(kind: str, system: str | None = None) -> str:
    """The shared library name of the 'edgetpu' or 'gpu' delegate on ``system`` (default: here).

    Raises:
        DelegateUnavailableError: no such library for that platform.
    """
    system = system or platform.system()
    table = EDGETPU_LIBRARY if kind == "edgetpu" else GPU_LIBRARY
    if system not in table:
        raise DelegateUnavailableError(f"no {kind} delegate library known for {system}")
    return table[system]


def is_edgetpu_model(model: bytes) -> bool:
    """True when the model was compiled by ``edgetpu_compiler`` (uses the Edge TPU custom op).

    A file that is not a well-formed TFLite flatbuffer is not one (False).
    """
    try:
        return EDGETPU_CUSTOM_OP in _mr.custom_op_codes(model)
    except FlatbufferError:
        return False


def count_delegated_ops(interpreter: Any) -> int | None:
    """How many nodes of the execution plan a delegate took (None if the runtime can't say)."""
    try:
        return sum(1 for op in interpreter._get_ops_details() if op.get("op_name") == "DELEGATE")
    except Exception:
        return None


def _load(backend: Backend, library: str, options: Mapping[str, Any] | None, kind: str) -> Any:
    try:
        # Load the library first: the runtimes' Delegate object breaks in __del__ ("no attribute
        # _library") when the library is missing, which surfaces as an unraisable exception.
        ctypes.CDLL(library)
        return backend.load_delegate(library, dict(options or {}))
    except (OSError, ValueError, RuntimeError) as e:
        how = _INSTALL.get(kind, "check the path and that it exports tflite_plugin_create_delegate")
        head = (f"{kind} delegate unavailable: tried {library!r} with options "
                f"{dict(options or {})}: {' '.join(str(e).split())}; ")
        raise DelegateUnavailableError(head + how.format(path_option=API_PATH_OPTION),
                                       head + how.format(path_option=CLI_PATH_OPTION)) from e


def _edgetpu_options(device: str | None, options: Mapping[str, Any] | None) -> dict:
    opts = dict(options or {})
    if device is not None:
        opts["device"] = device
    if "device" in opts and not _DEVICE.match(str(opts["device"])):
        raise ValueError(f"Edge TPU device must be 'usb', 'usb:N', 'pci' or 'pci:N', "
                         f"got {opts['device']!r}")
    return opts


def plan_delegate(delegate: Any, backend: Backend, model: bytes,
                  options: Mapping[str, Any] | None = None, fallback: bool = False,
                  edgetpu_model: bool | None = None) -> DelegatePlan:
    """Resolve and load the delegate for ``model``.

    ``delegate``: 'auto' (Edge TPU for edgetpu_compiler output, else XNNPACK), 'xnnpack', 'cpu'
    (built-in kernels, XNNPACK off), 'gpu', 'edgetpu' or 'edgetpu:usb[:N]' / 'edgetpu:pci[:N]',
    a path to a delegate library (loaded with ``options``), or an already loaded delegate object
    (used as is; it wins over everything else). ``edgetpu_model``: whether the model is
    Edge TPU–compiled, when the caller has already parsed it (else :func:`is_edgetpu_model`).

    Raises:
        DelegateUnavailableError: the delegate cannot be loaded and ``fallback`` is False (an
            Edge TPU–compiled model never falls back: it cannot run without the Edge TPU), or
            'edgetpu' was asked for a model that is not Edge TPU–compiled.
        ValueError: unknown delegate name or bad Edge TPU device string.
    """
    if delegate is not None and not isinstance(delegate, (str, os.PathLike)):
        return DelegatePlan(f"custom:{type(delegate).__name__}", [delegate])
    text = os.fspath(delegate) if delegate is not None else "auto"
    kind, _, device = text.partition(":") if text.startswith("edgetpu") else (text, "", "")
    kind = kind.lower() if kind.lower() in {k.value for k in DelegateKind} else kind
    if edgetpu_model is None:
        edgetpu_model = is_edgetpu_model(model)

    def fail(err: DelegateUnavailableError) -> DelegatePlan:
        if not fallback or edgetpu_model:
            raise err
        return fallback_plan(err, stacklevel=3)

    if kind == DelegateKind.AUTO.value:
        if not edgetpu_model:
            return DelegatePlan(DelegateKind.XNNPACK.value)
        kind = DelegateKind.EDGETPU.value
    if kind == DelegateKind.XNNPACK.value:
        if edgetpu_model:
            msg = "this model is Edge TPU–compiled (edgetpu-custom-op) and only runs with {}"
            raise DelegateUnavailableError(msg.format("delegate='edgetpu'"),
                                           msg.format("--delegate edgetpu"))
        return DelegatePlan(DelegateKind.XNNPACK.value)
    if kind == DelegateKind.CPU.value:
        resolver = backend.builtin_without_default_delegates()
        if resolver is None:
            return fail(DelegateUnavailableError(
                f"backend {backend.name!r} cannot switch XNNPACK off "
                "(no OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES); pip install ai-edge-litert"))
        return DelegatePlan(DelegateKind.CPU.value, op_resolver=resolver)
    if kind == DelegateKind.EDGETPU.value:
        opts = _edgetpu_options(device or None, options)
        if not edgetpu_model:
            msg = ("{} needs a model compiled by edgetpu_compiler (it has no "
                   f"{EDGETPU_CUSTOM_OP}); run `edgetpu_compiler model_int8.tflite` and use its "
                   "*_edgetpu.tflite output")
            return fail(DelegateUnavailableError(msg.format("delegate='edgetpu'"),
                                                 msg.format("--delegate edgetpu")))
        try:
            lib = library_name("edgetpu")
            return DelegatePlan(DelegateKind.EDGETPU.value, [_load(backend, lib, opts, "edgetpu")])
        except DelegateUnavailableError as e:
            return fail(e)
    if kind == DelegateKind.GPU.value:
        try:
            lib = library_name("gpu")
            return DelegatePlan(DelegateKind.GPU.value, [_load(backend, lib, options, "gpu")])
        except DelegateUnavailableError as e:
            if not edgetpu_model and backend.name == "litert" and compiled_model_available():
                return DelegatePlan(DelegateKind.GPU.value, accelerator="gpu", tried=e)
            return fail(e)
    looks_like_path = os.sep in text or "/" in text or text.endswith((".so", ".dylib", ".dll"))
    if not looks_like_path:
        raise ValueError(f"unknown delegate {text!r}; valid: "
                         f"{', '.join(k.value for k in DelegateKind)}, or a delegate library path")
    try:
        return DelegatePlan(f"external:{os.path.basename(text)}",
                            [_load(backend, text, options, "external")])
    except DelegateUnavailableError as e:
        return fail(e)
