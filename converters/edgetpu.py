"""Edge TPU readiness: supported-op check and ``edgetpu_compiler`` when it is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from edge.cliutil import write_atomic

from .options import EdgeTPUReport

#: Ops the Edge TPU compiler maps to the TPU (coral.ai "TensorFlow models on the Edge TPU",
#: supported operations), as TFLite builtin names. Anything else runs on the host CPU.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "EXPAND_DIMS", "FULLY_CONNECTED", "GATHER", "HARD_SWISH", "L2_NORMALIZATION", "LOGISTIC",
    "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PADV2", "PRELU",
    "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH",
    "SPLIT", "SQUARED_DIFFERENCE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TANH", "TRANSPOSE",
    "TRANSPOSE_CONV",
})

INSTALL_HINT = ("edgetpu_compiler not found on PATH: install it from Coral's Debian/Ubuntu "
                "package repository (x86-64 Linux: `apt-get install edgetpu-compiler`), then run "
                "`edgetpu_compiler {path}`")


def check_ops(ops: dict[str, int]) -> list[str]:
    """Op names (sorted) outside the Edge TPU's supported list."""
    return sorted(op for op in ops if op not in EDGETPU_OPS)


def compile_bytes(model: bytes, path: str, timeout: float = 600.0) -> tuple[bytes | None, EdgeTPUReport]:
    """Run ``edgetpu_compiler`` (when installed) on a model that will be written to ``path``.

    Works in a temp folder and writes nothing beside ``path``: returns the compiled bytes (None
    when the compiler is missing or fails) for ``<name>_edgetpu.tflite`` beside ``path``
    (``report.compiled_path``), and a report whose ``message`` says what happened, once.
    """
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return None, EdgeTPUReport(compiler=None, message=INSTALL_HINT.format(path=path))
    base = os.path.basename(path)
    compiled_name = os.path.splitext(base)[0] + "_edgetpu.tflite"
    final = os.path.join(os.path.dirname(os.path.abspath(path)), compiled_name)
    with tempfile.TemporaryDirectory(prefix="edgetpu-") as tmp:
        src = os.path.join(tmp, base)
        with open(src, "wb") as f:
            f.write(model)
        try:
            proc = subprocess.run([compiler, "-s", "-o", tmp, src], capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return None, EdgeTPUReport(compiler=compiler, message=f"edgetpu_compiler gave no "
                                       f"result within {timeout:.0f} s")
        produced = os.path.join(tmp, compiled_name)
        if proc.returncode != 0 or not os.path.isfile(produced):
            text = (proc.stderr or proc.stdout).strip()[-2000:]
            return None, EdgeTPUReport(compiler=compiler, message=f"edgetpu_compiler failed: {text}")
        with open(produced, "rb") as f:
            compiled = f.read()
    return compiled, EdgeTPUReport(compiler=compiler, compiled=True, compiled_path=final,
                                   message=proc.stdout.strip()[-2000:])


def compile_model(path: str, timeout: float = 600.0) -> EdgeTPUReport:
    """Run ``edgetpu_compiler`` on a written ``.tflite`` when installed; writes
    ``<name>_edgetpu.tflite`` beside it (temp file, then rename)."""
    with open(path, "rb") as f:
        compiled, report = compile_bytes(f.read(), path, timeout)
    if compiled is not None:
        write_atomic(report.compiled_path, compiled)
    return report
