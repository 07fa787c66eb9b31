"""Choices and results shared by the conversion API and the CLI (enums, so they cannot drift)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


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
class AgreementReport:
    """How the int8 model agrees with the float Keras model on inputs never calibrated on."""

    inputs: int
    description: str  # what the inputs were
    strict: float  # same top-1 (ties broken to the lower index)
    with_ties: float  # ... or the float top-1 shares the int8 top score
    confident: float | None  # strict agreement where the float top-1 probability >= 0.5
    confident_inputs: int
    in_top5: float  # float top-1 inside the int8 top-5
    kl_mean: float  # mean KL(float || int8), nats
    kl_floor: float | None  # the part of kl_mean the uint8 output alone causes
    thin: bool = False  # fewer than THIN_INPUTS inputs: too few to judge
    note: str = ""
    strict_cap: float | None = None  # strict agreement of the float scores on the uint8 grid


@dataclass
class KeepFloatReport:
    """Mixed precision: which layers stayed float and what that cost."""

    layers: list[str]
    size_bytes_all_int8: int
    size_bytes: int
    latency_ratio: float | None = None  # this model / the all-int8 one, same run (XNNPACK)
    chosen_by: str = ""
    whole_stages: int = 0  # blocks 1..N kept float whole (keep_float 'auto', Lite models)


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
    agreement_top1: float | None = None  # strict top-1 agreement, = agreement.strict
    agreement_images: int = 0
    agreement: AgreementReport | None = None
    recipe: Any = None  # converters.recipes.RecipeReport (int8)
    keep_float: KeepFloatReport | None = None
    layers: list[dict] = field(default_factory=list)  # worst quantised tensors (edge.layers)
    edgetpu: EdgeTPUReport | None = None
    warnings: list[str] = field(default_factory=list)
    path: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)
