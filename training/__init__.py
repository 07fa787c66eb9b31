"""Fine-tune EfficientNet on your own labelled images and export calibrated int8 with the class
names (``efficientnet-train``). Sits above ``converters`` and ``calibration``; ``edge`` never
imports it. TensorFlow is imported only when training starts."""
from .options import (ClassWeights, DataError, QuantPrecision, Strategy, TrainingError,
                      TrainOptions)
from .report import TrainReport
from .train import train

__all__ = ["train", "TrainOptions", "TrainReport", "Strategy", "ClassWeights", "QuantPrecision",
           "TrainingError", "DataError"]
