"""efficientnet-edge runtime: classify images with converted EfficientNet TFLite models.

Imports numpy, Pillow and a TFLite interpreter only — never TensorFlow.
"""
from .preprocess import ImageDecodeError, normalize, open_image, preprocess
from .variants import MODEL_NAMES, PreprocessSpec, Variant, get_variant, preprocess_spec

__version__ = "0.1.0"
from .backends import BackendUnavailableError, load_backend
from .classifier import (Category, ClassifierClosedError, EdgeClassifier, InferenceError,
                         ModelLoadError, Prediction)
from .delegates import DelegateFallbackWarning, DelegateKind, DelegateUnavailableError
from .metadata import MetadataError, ModelInfo, read_metadata, write_metadata
