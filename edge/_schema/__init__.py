"""flatc-generated schema modules: the metadata schema (vendored) and the model schema (from LiteRT)."""
from __future__ import annotations

from types import ModuleType


def model_schema() -> ModuleType:
    """The generated TFLite model schema (``schema.fbs``) that ai-edge-litert ships.

    Heavy (~50 MB of RSS): only writing models needs it; the runtime reads with ``model_reader``.
    Falls back to TensorFlow's copy where ai-edge-litert has no wheel (the converter has TF).

    Raises:
        ImportError: neither ai-edge-litert nor TensorFlow is installed.
    """
    try:
        from ai_edge_litert import schema_py_generated  # noqa: PLC0415
    except ImportError:
        from tensorflow.lite.python import schema_py_generated  # noqa: PLC0415
    return schema_py_generated
