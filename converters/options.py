"""Choices and results shared by the conversion API and the CLI (enums, so they cannot drift)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    DYNAMIC = "dynamic"
    INT8 = "int8"


class IOType(str, Enum):
    UINT8 = "uint8"
    INT8 = "int8"
    FLOAT32 = "float32"


class ConversionError(ValueError):
    """The model cannot be converted as asked; the message says what to change."""


@dataclass
class TensorInfo:
    name: str
    shape: list[int]
    dtype: str
    scale: float = 0.0
    zero_point: int = 0


@dataclass
class EdgeTPUReport:
    unsupported_ops: list[str] = field(default_factory=list)
    compiler: str | None = None  # path of edgetpu_compiler, when found
    compiled: bool = False
    compiled_path: str | None = None
    message: str = ""


@dataclass
class ConversionReport:
    """What a conversion produced, with the numbers that matter."""

    model: str
    precision: str
    size_bytes: int
    input: TensorInfo
    output: TensorInfo
    ops: dict[str, int]
    seconds: float
    calibration_samples: int = 0
    calibration_source: str = ""
    normalization_in_graph: bool = True
    agreement_top1: float | None = None  # vs the float Keras model, on held-out images
    agreement_images: int = 0
    edgetpu: EdgeTPUReport | None = None
    warnings: list[str] = field(default_factory=list)
    path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
