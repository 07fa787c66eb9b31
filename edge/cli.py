"""Command lines: ``efficientnet-classify`` (label images) and ``efficientnet-bench`` (latency).

Only this module turns errors into exit codes: one line on stderr, exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from typing import Sequence

import numpy as np

from .backends import BackendUnavailableError
from .classifier import EdgeClassifier, ModelLoadError
from .delegates import DelegateKind, DelegateUnavailableError
from .preprocess import ImageDecodeError

_MODEL_ERRORS = (FileNotFoundError, ModelLoadError, BackendUnavailableError,
                 DelegateUnavailableError, ValueError, OSError)
_DELEGATE_HELP = (f"{', '.join(k.value for k in DelegateKind)}, 'edgetpu:usb:0'-style device, "
                  "or a delegate library path (default: auto)")


def _runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--delegate", default="auto", help=_DELEGATE_HELP)
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    g.add_argument("--fallback", action="store_true",
                   help="if the delegate cannot load, warn and run on XNNPACK instead of failing")
    g.add_argument("--backend", default=None, help="litert, tflite_runtime or tensorflow")


def _err(msg: str) -> None:
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)


def _open(args) -> EdgeClassifier:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        clf = EdgeClassifier(args.model, delegate=args.delegate, num_threads=args.threads,
                             fallback=args.fallback, backend=args.backend)
    for w in caught:
        print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return clf


def classify_main(argv: Sequence[str] | None = None) -> int:
    """``efficientnet-classify MODEL IMAGE...``: print the top classes of each image.

    Returns 0, or 2 when the model cannot be loaded or any image failed (the others still run).
    """
    p = argparse.ArgumentParser(prog="efficientnet-classify",
                                description="Classify images with an EfficientNet TFLite model.")
    io_ = p.add_argument_group("input")
    io_.add_argument("model", help="path to a .tflite model")
    io_.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    out = p.add_argument_group("output")
    out.add_argument("--top-k", type=int, default=5, help="classes per image (default: 5)")
    out.add_argument("--json", action="store_true", help="one JSON object per image")
    _runtime_args(p)
    args = p.parse_args(argv)
    try:
        clf = _open(args)
    except _MODEL_ERRORS as e:
        _err(f"{args.model}: {e}")
        return 2
    failed = 0
    with clf:
        for path in args.images:
            try:
                cats = clf.predict(path, top_k=args.top_k)
            except (FileNotFoundError, ImageDecodeError, OSError) as e:
                _err(f"{path}: {e}")
                failed += 1
                continue
            if args.json:
                print(json.dumps({"image": path, "delegate": clf.delegate, "backend": clf.backend,
                                  "classes": [{"index": c.index, "label": c.label,
                                               "score": round(c.score, 6)} for c in cats]}))
            else:
                print(path)
                for c in cats:
                    name = c.label if c.label is not None else str(c.index)
                    print(f"  {c.score:7.4f}  {name} ({c.index})")
    return 2 if failed else 0


def bench(clf: EdgeClassifier, runs: int, warmup: int) -> dict:
    """Time ``runs`` predictions on a pre-sized random image after ``warmup`` ones."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (clf.input_size, clf.input_size, 3), dtype=np.uint8)
    for _ in range(warmup):
        clf.predict(img)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        clf.predict(img)
        times[i] = time.perf_counter() - t0
    ms = times * 1000.0
    return {"backend": clf.backend, "delegate": clf.delegate, "runs": runs,
            "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)), "throughput_ips": float(runs / times.sum()),
            "peak_rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB: VmHWM on Linux (ru_maxrss survives exec and
    can report the parent's peak), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def bench_main(argv: Sequence[str] | None = None) -> int:
    """``efficientnet-bench MODEL``: latency percentiles, throughput and peak memory.

    Returns 0, or 2 when the model cannot be loaded or the arguments are invalid.
    """
    p = argparse.ArgumentParser(prog="efficientnet-bench",
                                description="Benchmark an EfficientNet TFLite model.")
    p.add_argument("model", help="path to a .tflite model")
    g = p.add_argument_group("benchmark")
    g.add_argument("--runs", type=int, default=50, help="timed predictions (default: 50)")
    g.add_argument("--warmup", type=int, default=5, help="untimed predictions first (default: 5)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    _runtime_args(p)
    args = p.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        _err("--runs must be >= 1 and --warmup >= 0")
        return 2
    try:
        clf = _open(args)
    except _MODEL_ERRORS as e:
        _err(f"{args.model}: {e}")
        return 2
    with clf:
        r = bench(clf, args.runs, args.warmup)
    r["model"] = os.fspath(args.model)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['model']}: backend {r['backend']}, delegate {r['delegate']}, {r['runs']} runs")
        print(f"  latency p50 {r['p50_ms']:.2f} ms  p90 {r['p90_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms")
        print(f"  throughput {r['throughput_ips']:.1f} img/s  peak RSS {r['peak_rss_mb']:.1f} MB")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(classify_main())
