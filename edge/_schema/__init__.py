"""Vendored flatc-generated Python modules for the TFLite model and metadata schemas (Apache-2.0)."""
