"""efficientnet-train end to end on scikit-learn's digits: float and int8 test accuracy, their
agreement, seconds per epoch, against logistic-regression baselines on the same split.

The 1,797 8×8 grey digits are written as PNG files, one folder per class; the pipeline
upscales them. The run is the real CLI (stratified split, seed 0: 70 % train, 10 % validation
for early stopping, 20 % test). The baselines train on train+validation (the same 80 %) and
are scored on the same 20 % test images:

* logistic regression on the raw 64 pixels;
* logistic regression on frozen lite0 ImageNet features (global-average-pooled ``top_activation``
  at the same input size, the same centre-crop preprocessing).

    python benchmarks/train_digits.py [--input-size 128] [--output out/train_digits] [--no-baselines]
    python benchmarks/train_digits.py --pipeline-memory     # RSS while streaming 100,000 images

Prints one table; numbers depend on the CPU (printed with its flags) and on its load.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


#: efficientnet-train flags for digits (beyond the split): a mirrored 2 or 5 is another digit
#: (--no-flip); an 8x8 digit fills its frame, so crops keep most of it (--min-crop-area 0.7);
#: strokes on black are far from ImageNet, so every block fine-tunes (--fine-tune-blocks all);
#: 1,259 images need a few more epochs than the defaults allow.
DIGITS_FLAGS = ["--no-flip", "--min-crop-area", "0.7", "--fine-tune-blocks", "all",
                "--head-epochs", "3", "--learning-rate", "3e-3", "--epochs", "20", "--patience", "5"]


def write_digits(folder: str, per_class: int | None = None, classes: tuple[int, ...] | None = None,
                 seed: int = 0) -> list[tuple[str, int]]:
    """Write scikit-learn's digits as 8×8 grey PNGs in ``folder/<digit>/NNNN.png``; with
    ``per_class``, a seeded subset. Returns ``(path, digit)`` in the data set's order."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    keep = np.arange(len(d.target))
    if classes is not None:
        keep = keep[np.isin(d.target[keep], classes)]
    if per_class is not None:
        rng = np.random.default_rng(seed)
        keep = np.concatenate([rng.permutation(keep[d.target[keep] == c])[:per_class]
                               for c in sorted(set(d.target[keep].tolist()))])
        keep.sort()
    out = []
    for i in keep:
        sub = os.path.join(folder, str(int(d.target[i])))
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"{i:04d}.png")
        Image.fromarray(pixels[i], "L").save(path)
        out.append((path, int(d.target[i])))
    return out


def _split_pixels(output: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """The run's split read back from DIR/split.csv: (train+val pixels, labels, test pixels,
    labels, train+val paths, test paths), pixels as 64 floats."""
    import csv

    from PIL import Image

    fit_x, fit_y, test_x, test_y, fit_p, test_p = [], [], [], [], [], []
    with open(os.path.join(output, "split.csv"), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            path = os.path.join(output, row["path"])
            x = np.asarray(Image.open(path).convert("L"), np.float32).reshape(-1)
            if row["split"] == "test":
                test_x.append(x), test_y.append(int(row["label"])), test_p.append(path)
            else:
                fit_x.append(x), fit_y.append(int(row["label"])), fit_p.append(path)
    return (np.array(fit_x), np.array(fit_y), np.array(test_x), np.array(test_y), fit_p, test_p)


def _logreg(x: np.ndarray, y: np.ndarray, tx: np.ndarray, ty: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return float(np.mean(clf.fit(x, y).predict(tx) == ty))


def _frozen_features(paths: list[str], size: int) -> np.ndarray:
    import keras

    from converters.efficientnet import create_model
    from edge.preprocess import preprocess
    from training.train import _spec
    from training.options import TrainOptions

    spec = _spec(TrainOptions(data="", output="", input_size=size))
    backbone = create_model("lite0", "imagenet", include_top=False, input_size=size)
    pooled = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    x = np.stack([preprocess(p, spec) for p in paths]).astype(np.float32)
    return pooled.predict(x, batch_size=64, verbose=0)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pipeline_memory(folder: str, total: int = 100_000, size: int = 64, batch: int = 64) -> None:
    """Stream ``total`` augmented images (the digits repeated) through the training pipeline
    and print the process's resident memory as it goes: bounded memory means flat numbers."""
    from training.pipeline import Augment, epoch_order, make_dataset
    from edge.variants import PreprocessSpec

    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(folder) for f in fs if f.endswith(".png"))
    paths = [files[i % len(files)] for i in range(total)]
    labels = np.array([int(os.path.basename(os.path.dirname(p))) for p in paths])
    order, seeds = epoch_order(total, 0, 0)
    ds = make_dataset([paths[i] for i in order], labels[order], 10, PreprocessSpec(size), batch,
                      Augment(), seeds[order], drop_remainder=True)
    marks, seen, t0 = {1_000, 10_000, 50_000, total - total % batch}, 0, time.perf_counter()
    print("| images streamed | RSS MB | seconds |\n|---|---|---|")
    for x, _ in ds:
        seen += int(x.shape[0])
        if any(seen - int(x.shape[0]) < m <= seen for m in marks):
            print(f"| {seen:,} | {_rss_mb():.0f} | {time.perf_counter() - t0:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", default=os.path.join(ROOT, "out", "train_digits"))
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--pipeline-memory", action="store_true",
                    help="only stream 100,000 augmented images through the training pipeline "
                         "and print resident memory (bounded-memory check)")
    ap.add_argument("train_args", nargs=argparse.REMAINDER,
                    help="more efficientnet-train flags after -- (later flags win), e.g. -- --epochs 30")
    args = ap.parse_args()

    data = os.path.join(args.output, "digits")
    run = os.path.join(args.output, "run")
    if not os.path.isdir(data):
        write_digits(data)
    if args.pipeline_memory:
        pipeline_memory(data)
        return
    extra = [a for a in args.train_args if a != "--"]
    cmd = [sys.executable, "-m", "training.cli", data, "--model", "lite0", "--output", run,
           "--input-size", str(args.input_size), "--val-split", "0.1", "--test-split", "0.2",
           "--seed", "0", "--overwrite", "--quiet", *DIGITS_FLAGS, *extra]
    print("$", " ".join(cmd), flush=True)
    t0, c0 = time.perf_counter(), os.times()
    rc = subprocess.call(cmd, cwd=ROOT)
    wall, c1 = time.perf_counter() - t0, os.times()
    run_cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
    if rc != 0:
        sys.exit(f"efficientnet-train failed with exit code {rc}")
    with open(os.path.join(run, "report.json"), encoding="utf-8") as f:
        report = json.load(f)

    rows = [("lite0 fine-tuned, fp32 .tflite (EdgeClassifier)", f"{100 * report['float_accuracy']:.1f} %"),
            ("lite0 fine-tuned, int8 .tflite (EdgeClassifier)", f"{100 * report['quantized_accuracy']:.1f} %"),
            ("fp32 / int8 top-1 agreement", f"{100 * report['agreement']:.1f} %"),
            ("int8 - fp32", f"{100 * (report['quantized_accuracy'] - report['float_accuracy']):+.1f} pt")]
    applied = (report.get("conversion") or {}).get("recipe") or {}
    if applied:
        rows.append(("int8 recipe applied by the converter (its seconds)",
                     f"{applied['recipe']} ({applied.get('seconds', 0):.0f} s)"))
    if not args.no_baselines:
        fx, fy, tx, ty, fp, tp = _split_pixels(run)
        rows.append(("logistic regression, raw pixels", f"{100 * _logreg(fx, fy, tx, ty):.1f} %"))
        feats = _frozen_features(fp + tp, args.input_size)
        rows.append(("logistic regression, frozen lite0 features",
                     f"{100 * _logreg(feats[:len(fp)], fy, feats[len(fp):], ty):.1f} %"))
    n = report["images"]["train"]
    for phase, s in report["seconds_per_epoch"].items():
        cpu = report["cpu_seconds_per_epoch"][phase]
        rows.append((f"seconds per epoch, phase {phase} ({n} images; wall / CPU all threads)",
                     f"{s:.1f} s ({n / s:.1f} img/s) / {cpu:.1f} s"))
    rows.append(("epochs run (phase 1 / phase 2)",
                 " / ".join(str(sum(1 for h in report["history"] if h["phase"] == p)) for p in (1, 2))))
    rows.append(("training, all epochs: wall / CPU all threads",
                 f"{sum(h['seconds'] for h in report['history']):.0f} s / "
                 f"{sum(h.get('cpu_seconds', 0) for h in report['history']):.0f} s"))
    rows.append(("whole run (train + export + test), wall / CPU all processes and threads",
                 f"{wall:.0f} s / {run_cpu:.0f} s (load average at the end: "
                 f"{' '.join(f'{x:.1f}' for x in os.getloadavg())})"))
    print(f"\ndigits: {report['images']} images (train/val/test), {report['input_size']} px, "
          f"{report['cpu']}")
    width = max(len(r[0]) for r in rows)
    print(f"| {'what'.ljust(width)} | value |\n|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
