"""Representative datasets for int8 calibration, preprocessed exactly as the model is served."""
from .dataset import (AGREEMENT_INPUTS, DEFAULT_NUM_SAMPLES, HOLDOUT_SHARE, IMAGE_EXTENSIONS,
                      THIN_INPUTS, CalibrationData, CalibrationError, HeldOut, load_calibration)
from .defaults import (FidelitySet, default_calibration, default_heldout, fidelity_set,
                       random_crops)

__all__ = ["AGREEMENT_INPUTS", "DEFAULT_NUM_SAMPLES", "HOLDOUT_SHARE", "IMAGE_EXTENSIONS",
           "THIN_INPUTS", "CalibrationData", "CalibrationError", "HeldOut", "load_calibration",
           "FidelitySet", "default_calibration", "default_heldout", "fidelity_set", "random_crops"]
