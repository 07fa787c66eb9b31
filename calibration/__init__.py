"""Representative datasets for int8 calibration, preprocessed exactly as the model is served."""
from .dataset import (DEFAULT_NUM_SAMPLES, CalibrationData, CalibrationError, IMAGE_EXTENSIONS,
                      load_calibration)
from .defaults import default_calibration, random_crops

__all__ = ["DEFAULT_NUM_SAMPLES", "CalibrationData", "CalibrationError", "IMAGE_EXTENSIONS",
           "load_calibration", "default_calibration", "random_crops"]
