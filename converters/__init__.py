"""Keras EfficientNet B0–B7 / Lite0–4 → TFLite converters."""
