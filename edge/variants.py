"""The one variant table: EfficientNet B0–B7 and Lite0–4, and each one's preprocessing spec.

Pure data, importable without TensorFlow: the converter builds models from it, calibration and
the runtime preprocess with it, and the spec is written into every converted model's metadata.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Family = Literal["b", "lite"]

#: Official EfficientNet eval preprocessing: centre crop of ``size / (size + CROP_PADDING)`` of
#: the short side, then resize (tensorflow/tpu ``preprocessing.py``, CROP_PADDING = 32).
CROP_PADDING = 32

#: ImageNet mean/std in 0–255 pixel units (Keras applications' B models).
IMAGENET_MEAN = (0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0)
IMAGENET_STD = (0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0)
#: Lite models: (pixel - 127) / 128, "for better post-quantization" (tensorflow/tpu lite builder).
LITE_MEAN = (127.0, 127.0, 127.0)
LITE_STD = (128.0, 128.0, 128.0)
#: Resize filters a spec may name (Pillow's resampling filters).
RESIZE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
#: Largest input side a spec may declare (EfficientNet-B7 is 600).
MAX_SIZE = 4096


@dataclass(frozen=True)
class Variant:
    """One row of the table: scaling coefficients of the shared EfficientNet builder."""

    name: str
    family: Family
    width: float
    depth: float
    resolution: int
    dropout: float


@dataclass(frozen=True)
class PreprocessSpec:
    """How pixels reach the model: read by calibration, the runtime and the Android app alike.

    ``mean``/``std`` are in 0–255 pixel units: the model computes ``(pixel - mean) / std``.
    """

    size: int
    resize_filter: str = "bicubic"
    crop_fraction: float = 0.875
    mean: tuple[float, float, float] = LITE_MEAN
    std: tuple[float, float, float] = LITE_STD

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def validate(self) -> "PreprocessSpec":
        """Return self when every field is usable, else raise.

        Raises:
            ValueError: size outside 1..MAX_SIZE, crop_fraction outside (0, 1], unknown resize
                filter, or mean/std not 3 finite values with std non-zero (names the field).
        """
        if not 1 <= self.size <= MAX_SIZE:
            raise ValueError(f"size must be 1..{MAX_SIZE}, got {self.size}")
        if not 0.0 < self.crop_fraction <= 1.0:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if self.resize_filter.lower() not in RESIZE_FILTERS:
            raise ValueError(f"unknown resize_filter {self.resize_filter!r}; valid: "
                             f"{', '.join(RESIZE_FILTERS)}")
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise ValueError(f"{name} must be 3 finite values, got {list(v)}")
        if any(x == 0 for x in self.std):
            raise ValueError(f"std must be non-zero, got {list(self.std)}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        return cls(
            size=int(d["size"]),
            resize_filter=str(d.get("resize_filter", "bicubic")),
            crop_fraction=float(d.get("crop_fraction", 0.875)),
            mean=tuple(float(v) for v in d.get("mean", LITE_MEAN)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in d.get("std", LITE_STD)),  # type: ignore[arg-type]
        )


_TABLE: tuple[Variant, ...] = (
    # Keras applications: (width, depth, resolution, dropout)
    Variant("b0", "b", 1.0, 1.0, 224, 0.2),
    Variant("b1", "b", 1.0, 1.1, 240, 0.2),
    Variant("b2", "b", 1.1, 1.2, 260, 0.3),
    Variant("b3", "b", 1.2, 1.4, 300, 0.3),
    Variant("b4", "b", 1.4, 1.8, 380, 0.4),
    Variant("b5", "b", 1.6, 2.2, 456, 0.4),
    Variant("b6", "b", 1.8, 2.6, 528, 0.5),
    Variant("b7", "b", 2.0, 3.1, 600, 0.5),
    # tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py
    Variant("lite0", "lite", 1.0, 1.0, 224, 0.2),
    Variant("lite1", "lite", 1.0, 1.1, 240, 0.2),
    Variant("lite2", "lite", 1.1, 1.2, 260, 0.3),
    Variant("lite3", "lite", 1.2, 1.4, 280, 0.3),
    Variant("lite4", "lite", 1.4, 1.8, 300, 0.3),
)
VARIANTS: dict[str, Variant] = {v.name: v for v in _TABLE}
MODEL_NAMES: tuple[str, ...] = tuple(VARIANTS)


def get_variant(name: str) -> Variant:
    """Look up a variant by name (``b0``…``b7``, ``lite0``…``lite4``; ``efficientnet-`` prefix ok).

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    key = str(name).lower().strip()
    for prefix in ("efficientnet-", "efficientnet_", "efficientnet"):
        if key.startswith(prefix):
            key = key[len(prefix):]
    if key not in VARIANTS:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    return VARIANTS[key]


def preprocess_spec(name: str) -> PreprocessSpec:
    """The preprocessing spec the named model is served with.

    Raises:
        ValueError: unknown model name.
    """
    v = get_variant(name)
    crop = v.resolution / (v.resolution + CROP_PADDING)
    if v.family == "lite":
        return PreprocessSpec(v.resolution, "bicubic", crop, LITE_MEAN, LITE_STD)
    return PreprocessSpec(v.resolution, "bicubic", crop, IMAGENET_MEAN, IMAGENET_STD)
