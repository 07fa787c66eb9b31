"""Int8 vs float fidelity of a converted model on >= 500 real-photo inputs.

Inputs: the shipped photos with random crops (55-100 % of the area) and flips (seed 1; the
default calibration set uses seed 0, so no input is a calibration image). Prints top-1
agreement, float-top-1-in-int8-top-5, and agreement where the float model is confident.

    python benchmarks/int8_fidelity.py --model lite0 --int8-file lite0_int8.tflite [--n 540]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def crops(spec, n: int, seed: int) -> np.ndarray:
    """Random crops (55-100 % of the area) and flips of the shipped photos; seed 1 never
    reproduces the default calibration set (seed 0)."""
    from calibration import default_calibration

    return default_calibration(spec, n, seed=seed, warn=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lite0")
    ap.add_argument("--int8-file", required=True)
    ap.add_argument("--n", type=int, default=540)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    from converters.efficientnet import create_model
    from edge import EdgeClassifier
    from edge.variants import preprocess_spec

    x = crops(preprocess_spec(args.model), args.n, args.seed)
    ref = create_model(args.model, weights="imagenet").predict(x.astype(np.float32), verbose=0, batch_size=32)
    with EdgeClassifier(args.int8_file, top_k=5, num_threads=2) as clf:
        q = np.stack([clf.scores(img) for img in x])
    f1 = ref.argmax(1)
    q5 = np.argsort(-q, axis=1)[:, :5]
    agree = q.argmax(1) == f1
    in5 = (q5 == f1[:, None]).any(1)
    conf = ref.max(1) >= 0.5
    margin = np.sort(ref, 1)[:, -1] - np.sort(ref, 1)[:, -2]
    print(f"| inputs | top-1 agreement | float top-1 in int8 top-5 | agreement where float p>=0.5 |")
    print(f"|---|---|---|---|")
    print(f"| {len(x)} | {agree.mean():.2%} | {in5.mean():.2%} | {agree[conf].mean():.2%} of {conf.sum()} |")
    if (~agree).any():
        print(f"disagreements: {(~agree).sum()}, median float margin there "
              f"{np.median(margin[~agree]):.3f} vs {np.median(margin[agree]):.3f} where they agree")


if __name__ == "__main__":
    main()
