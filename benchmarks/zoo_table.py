"""Print the variant table with trainable parameter counts, as built by the SDK.

    python benchmarks/zoo_table.py
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main() -> None:
    from converters.efficientnet import create_model
    from edge.variants import VARIANTS

    print("| model | width | depth | resolution | dropout | trainable params |\n|---|---|---|---|---|---|")
    for v in VARIANTS.values():
        model = create_model(v.name, input_size=64)  # parameter count does not depend on size
        n = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        print(f"| {v.name} | {v.width} | {v.depth} | {v.resolution} | {v.dropout} | {n:,} |")


if __name__ == "__main__":
    main()
