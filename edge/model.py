"""One guarded parse of a .tflite file at load: structure, I/O tensors and metadata.

Everything an untrusted model file can get wrong is found here, before an interpreter sees the
bytes, and reported as :class:`ModelLoadError` saying what was wrong: a malformed flatbuffer,
bad metadata or associated-files ZIP, or I/O tensors that are not an image classifier's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._schema import model_reader as _mr
from ._schema.flatbuf import FlatbufferError
from .delegates import EDGETPU_CUSTOM_OP
from .metadata import MetadataError, ModelInfo, ModelSource, load_model_bytes, read_metadata
from .variants import MAX_SIZE

#: Tensor types an image input / a class-score output may have.
INPUT_TYPES = {"uint8": np.uint8, "int8": np.int8, "float32": np.float32}
OUTPUT_TYPES = INPUT_TYPES


class ModelLoadError(ValueError):
    """The model file cannot be read or the interpreter refuses it."""


@dataclass(frozen=True)
class IOTensor:
    """An input or output tensor as the file declares it: shape, dtype and quantisation."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int


@dataclass(frozen=True)
class ModelFile:
    """A checked model: its bytes, I/O tensors, metadata and whether it is Edge TPU–compiled."""

    data: bytes
    input: IOTensor
    output: IOTensor
    info: ModelInfo | None
    edgetpu: bool
    num_classes: int

    @property
    def input_size(self) -> int:
        return self.input.shape[1]


def _io(t: _mr.TensorInfo, what: str, types: dict) -> IOTensor:
    if t.type_name not in types:
        raise ModelLoadError(f"{what} tensor {t.name!r} is {t.type_name}; expected one of "
                             f"{', '.join(types)}")
    dtype = np.dtype(types[t.type_name])
    scale = float(t.scale[0]) if len(t.scale) == 1 else 0.0
    zp = int(t.zero_point[0]) if len(t.zero_point) == 1 else 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if len(t.scale) != 1 or not (math.isfinite(scale) and scale > 0):
            raise ModelLoadError(f"{what} tensor {t.name!r} is {t.type_name} without one "
                                 f"positive finite scale (got {list(t.scale)})")
        if not info.min <= zp <= info.max:
            raise ModelLoadError(f"{what} tensor {t.name!r}: zero point {zp} outside "
                                 f"{t.type_name}")
    return IOTensor(t.name, t.shape, dtype, scale, zp)


def check_io(summary: _mr.ModelSummary) -> tuple[IOTensor, IOTensor, int]:
    """(input, output, number of classes) of an image classifier, or ModelLoadError.

    The input must be one 1xSxSx3 image (uint8, int8 or float32, S ≤ MAX_SIZE); the first
    output 1xN class scores (N ≥ 1).

    Raises:
        ModelLoadError: anything else (says what the model has instead).
    """
    if len(summary.inputs) != 1:
        raise ModelLoadError(f"expected one image input, the model has {len(summary.inputs)}")
    if not summary.outputs:
        raise ModelLoadError("the model has no output")
    inp = _io(summary.inputs[0], "input", INPUT_TYPES)
    out = _io(summary.outputs[0], "output", OUTPUT_TYPES)
    s = inp.shape
    if len(s) != 4 or s[0] != 1 or s[3] != 3 or s[1] != s[2] or not 1 <= s[1] <= MAX_SIZE:
        raise ModelLoadError(f"expected a 1xSxSx3 image input (S ≤ {MAX_SIZE}), got shape "
                             f"{list(s)}")
    o = out.shape
    if not o or o[-1] < 1 or math.prod(o) != o[-1]:
        raise ModelLoadError(f"expected a 1xN class-score output, got shape {list(o)}")
    return inp, out, int(o[-1])


def load_model(model: ModelSource) -> ModelFile:
    """Read and check a model (path or bytes) once: structure, I/O, metadata.

    Raises:
        FileNotFoundError: no such model file.
        ModelLoadError: not a TFLite model, a corrupt flatbuffer or metadata, I/O tensors that
            are not an image classifier's, or metadata that contradicts the tensors.
    """
    try:
        data = load_model_bytes(model)
        summary = _mr.read_model(data)
        info = read_metadata(data, summary)
    except (MetadataError, FlatbufferError) as e:
        raise ModelLoadError(str(e)) from e
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ModelLoadError(f"cannot read the model file: {e}") from e
    inp, out, n = check_io(summary)
    if info is not None and info.spec is not None and info.spec.size != inp.shape[1]:
        raise ModelLoadError(f"metadata says size {info.spec.size}, the input is {inp.shape[1]}")
    if info is not None and info.labels is not None and len(info.labels) != n:
        raise ModelLoadError(f"the model's labels file has {len(info.labels)} labels for "
                             f"{n} output classes")
    return ModelFile(data, inp, out, info, EDGETPU_CUSTOM_OP in summary.custom_codes, n)
