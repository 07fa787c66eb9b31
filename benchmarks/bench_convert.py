"""Conversion time of pretrained lite0 to int8 with the defaults users get (256 calibration
images, the default recipe and keep_float): goal <= 3 min on 2 cores.

    python benchmarks/bench_convert.py [--num-calibration 256] [--model lite0] [--recipe ptq]

Prints one table: each stage's seconds and the total against the goal, measured in one run,
with the CPU line (flags, load average).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lite0")
    ap.add_argument("--num-calibration", type=int, default=None,
                    help="default: the converter's default")
    ap.add_argument("--recipe", default=None, help="default: the converter's default recipe")
    ap.add_argument("--keep-float", default="default")
    ap.add_argument("--goal", type=float, default=180.0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    from calibration import DEFAULT_NUM_SAMPLES
    from converters.efficientnet import create_model
    from converters.tflite import convert

    t1 = time.perf_counter()
    model = create_model(args.model, weights="imagenet")
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, report = convert(model, "int8", num_samples=args.num_calibration or DEFAULT_NUM_SAMPLES,
                               recipe=args.recipe,
                               keep_float=args.keep_float)
    t3 = time.perf_counter()
    rows = [("import the SDK", t1 - t0), ("import Keras + build + load ImageNet weights", t2 - t1),
            (f"convert int8 ({report.calibration_samples} calibration, "
             f"{report.agreement_images} held-out checked)", t3 - t2),
            (f"  of which the recipe {report.recipe.recipe}", report.recipe.seconds)]
    total = t3 - t0
    from edge.sysinfo import cpu_line

    print(cpu_line())
    kept = report.keep_float.layers if report.keep_float else []
    print(f"kept in float: {', '.join(kept) or 'none'}\n")
    print("| stage | seconds |\n|---|---|")
    for name, s in rows:
        print(f"| {name} | {s:.1f} |")
    print(f"| **total** | **{total:.1f}** (goal {args.goal:.0f} s: ratio {total / args.goal:.2f}) |")
    print(f"| convert() alone / goal | {(t3 - t2) / args.goal:.2f} |")
    print(f"\nint8 file {report.size_bytes / 1e6:.2f} MB, input {report.input.dtype} "
          f"({report.input.scale:.6g}, {report.input.zero_point}), agreement {report.agreement_top1}")
    print(cpu_line())


if __name__ == "__main__":
    main()
