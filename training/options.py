"""Choices, options and errors shared by the training API and ``efficientnet-train``."""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

from calibration import DEFAULT_NUM_SAMPLES


class Strategy(str, Enum):
    """How training is spread over devices (tf.distribute)."""

    AUTO = "auto"  # multi-worker when TF_CONFIG names several workers, mirrored on ≥2 GPUs, else one device
    ONE_DEVICE = "one-device"  # the default strategy: one CPU or GPU
    MIRRORED = "mirrored"  # every local GPU (or every logical CPU device when there is no GPU)
    MULTI_WORKER = "multi-worker"  # MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG


class ClassWeights(str, Enum):
    NONE = "none"
    AUTO = "auto"  # n_samples / (n_classes * n_class): rare classes count as much as common ones


class QuantPrecision(str, Enum):
    """The smaller model exported beside the fp32 one."""

    INT8 = "int8"  # full integer, uint8 in/out, calibrated on training images
    FP16 = "fp16"


class TrainingError(ValueError):
    """Training cannot go ahead as asked; the message says what to change."""


class DataError(TrainingError):
    """The labelled images are unusable (no images, one class, too few images in a class…)."""


@dataclass
class TrainOptions:
    """Everything one training run needs (the CLI flags map one to one).

    Phase 1 trains a new head on the frozen ImageNet backbone with Adam at ``learning_rate``
    for up to ``head_epochs``; phase 2 unfreezes the last ``fine_tune_blocks`` whole MBConv
    blocks and the head conv (BatchNorm stays frozen) at ``fine_tune_learning_rate`` for up to
    ``epochs``. Both stop early after ``patience`` epochs without a lower validation loss; the
    epoch with the lowest validation loss is kept.
    """

    data: str  # folder with one sub-folder per class, or a CSV of path,label[,split]
    output: str  # the run's folder: split, checkpoints, weights, models, report
    model: str = "lite0"
    weights: str | None = "imagenet"  # 'imagenet', None (random init) or a weights path
    input_size: int | None = None  # default: the variant's resolution
    epochs: int = 15  # phase 2 (fine-tuning), at most
    head_epochs: int = 5  # phase 1 (frozen backbone), at most
    batch_size: int = 32  # global batch, split over replicas
    learning_rate: float = 1e-3  # phase 1
    fine_tune_learning_rate: float | None = None  # phase 2; default learning_rate / 10
    fine_tune_blocks: int = 8  # -1: every block; 0: no phase 2
    val_split: float = 0.1
    test_split: float = 0.1
    augment: bool = True
    min_crop_area: float = 0.5  # random-resized crop: smallest share of the image kept
    flip: bool = True  # random horizontal flips (off for text, digits, arrows…)
    class_weights: ClassWeights = ClassWeights.NONE
    label_smoothing: float = 0.1
    dropout: float | None = None  # before the new head; default: the variant's dropout
    patience: int = 3
    seed: int = 0
    precision: QuantPrecision = QuantPrecision.INT8
    recipe: str | None = None  # int8 recipe of the converter; None = its default
    qat: bool = False  # add the converter's quantisation-aware step to the recipe
    num_calibration: int = DEFAULT_NUM_SAMPLES  # the converter's default
    strategy: Any = Strategy.AUTO  # a Strategy, or a tf.distribute.Strategy object (API only)
    resume: bool = False
    overwrite: bool = False
    android_assets: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.class_weights = ClassWeights(self.class_weights)
        self.precision = QuantPrecision(self.precision)
        if isinstance(self.strategy, str):
            self.strategy = Strategy(self.strategy)
        if isinstance(self.weights, str) and self.weights.lower() == "none":
            self.weights = None

    def validate(self) -> None:
        """Check every number before anything is read or built.

        Raises:
            TrainingError: the first bad option, named as its CLI flag.
        """
        from edge.variants import get_variant  # noqa: PLC0415

        try:
            get_variant(self.model)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        checks = [
            (self.input_size is None or self.input_size >= 32, "--input-size must be >= 32"),
            (self.epochs >= 0, "--epochs must be >= 0"),
            (self.head_epochs >= 1, "--head-epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.learning_rate > 0, "--learning-rate must be > 0"),
            (self.fine_tune_learning_rate is None or self.fine_tune_learning_rate > 0,
             "--fine-tune-learning-rate must be > 0"),
            (self.fine_tune_blocks >= -1, "--fine-tune-blocks must be >= 0, or -1 for all"),
            (0 <= self.val_split < 1, "--val-split must be in [0, 1)"),
            (0 <= self.test_split < 1, "--test-split must be in [0, 1)"),
            (self.val_split + self.test_split < 0.9, "--val-split + --test-split must leave "
                                                     "at least 10 % of the images for training"),
            (0 < self.min_crop_area <= 1, "--min-crop-area must be in (0, 1]"),
            (0 <= self.label_smoothing < 1, "--label-smoothing must be in [0, 1)"),
            (self.dropout is None or 0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (self.patience >= 1, "--patience must be >= 1"),
            (self.num_calibration >= 1, "--num-calibration must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)
        if self.qat and self.precision is not QuantPrecision.INT8:
            raise TrainingError("--qat trains for int8: it cannot be used with --float16")
        if self.recipe is not None and self.precision is not QuantPrecision.INT8:
            raise TrainingError("--recipe is an int8 recipe: it cannot be used with --float16")
        if self.precision is QuantPrecision.INT8:
            from converters.recipes import RecipeError, parse_recipe  # noqa: PLC0415 - numpy only

            try:  # before hours of training, not at the export
                parse_recipe(self.int8_recipe)
            except RecipeError as e:
                raise TrainingError(f"--recipe/--qat: {e}") from None

    @property
    def phase2_learning_rate(self) -> float:
        return self.fine_tune_learning_rate or self.learning_rate / 10

    @property
    def int8_recipe(self) -> str | None:
        """The recipe handed to the converter: ``recipe``, with ``qat`` appended for ``--qat``."""
        if not self.qat:
            return self.recipe
        from converters.recipes import RecipeStep, parse_recipe, recipe_name  # noqa: PLC0415 - numpy only

        # the converter's own canonical name, so the training and conversion reports match
        return recipe_name({*parse_recipe(self.recipe), RecipeStep.QAT})

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # no deepcopy of a strategy
        for k, v in d.items():
            if isinstance(v, Enum):
                d[k] = v.value
        if not isinstance(self.strategy, Strategy):
            d["strategy"] = type(self.strategy).__name__
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        if known.get("strategy") not in {s.value for s in Strategy}:
            known["strategy"] = Strategy.AUTO
        return cls(**known)
