"""Edge TPU readiness: supported-op check and ``edgetpu_compiler`` when it is installed."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

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


def compile_model(path: str, timeout: float = 600.0) -> EdgeTPUReport:
    """Run ``edgetpu_compiler`` on a written ``.tflite`` when installed; writes
    ``<name>_edgetpu.tflite`` beside it (via a temp folder, then rename)."""
    compiler = shutil.which("edgetpu_compiler")
    if compiler is None:
        return EdgeTPUReport(compiler=None, message=INSTALL_HINT.format(path=path))
    out_dir = os.path.dirname(os.path.abspath(path))
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        proc = subprocess.run([compiler, "-s", "-o", tmp, path], capture_output=True, text=True,
                              timeout=timeout, check=False)
        base = os.path.splitext(os.path.basename(path))[0] + "_edgetpu.tflite"
        produced = os.path.join(tmp, base)
        if proc.returncode != 0 or not os.path.isfile(produced):
            return EdgeTPUReport(compiler=compiler, message=(proc.stderr or proc.stdout).strip()[-2000:])
        final = os.path.join(out_dir, base)
        os.replace(produced, final)
    return EdgeTPUReport(compiler=compiler, compiled=True, compiled_path=final,
                         message=proc.stdout.strip()[-2000:])
