"""Runtime ratios in one run: EdgeClassifier overhead, big-JPEG path vs MediaPipe, int8 vs fp32, RSS.

    python benchmarks/bench_runtime.py --model lite0_int8.tflite --fp32-model lite0_fp32.tflite

(a) predict(pre-sized 224×224 uint8) / raw set_tensor+invoke+get_tensor     goal ≤ 1.05
(b) predict(12-MP JPEG path) / MediaPipe ImageClassifier on the same file    goal ≤ 0.2
(c) fp32 latency / int8 latency, both through EdgeClassifier                 goal ≥ 2.0
(d) peak RSS (MB) of a fresh process: int8 model, 100 predictions            goal ≤ 100
Plus draft-JPEG top-1 agreement vs full decode on the shipped photos (goal ≥ 99 %).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from edge import EdgeClassifier
from edge.samples import sample_photo, sample_photos


def _median_ms(fn, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t) * 1000)


def raw_vs_predict(model: str, threads: int, runs: int) -> tuple[float, float]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=model, num_threads=threads)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    size = int(i["shape"][1])
    x = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    xb = x[None].astype(i["dtype"])

    def raw():
        it.set_tensor(i["index"], xb)
        it.invoke()
        it.get_tensor(o["index"])

    with EdgeClassifier(model, num_threads=threads) as clf:
        # interleave to cancel drift; take the best of 3 medians each
        r, p = [], []
        for _ in range(3):
            r.append(_median_ms(raw, runs))
            p.append(_median_ms(lambda: clf.predict(x), runs))
    return min(r), min(p)


def big_jpeg(tmp: str, megapixels: float = 12.0) -> str:
    img = Image.open(sample_photo("chelsea").path).convert("RGB")
    scale = (megapixels * 1e6 / (img.width * img.height)) ** 0.5
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    path = os.path.join(tmp, "big_12mp.jpg")
    img.save(path, quality=90)
    return path


def big_vs_mediapipe(model: str, jpeg: str, threads: int, runs: int) -> tuple[float, float]:
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    with EdgeClassifier(model, num_threads=threads) as clf:
        ours = _median_ms(lambda: clf.predict(jpeg), runs, warmup=1)
    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model),
                                         max_results=5)
    with vision.ImageClassifier.create_from_options(opts) as mpc:
        theirs = _median_ms(lambda: mpc.classify(mp.Image.create_from_file(jpeg)), runs, warmup=1)
    return ours, theirs


_RSS_CHILD = """
import sys
from edge import EdgeClassifier
from edge.cli import peak_rss_mb
from edge.samples import sample_photos
paths = [p.path for p in sample_photos()] + [sys.argv[2]]
with EdgeClassifier(sys.argv[1], num_threads=int(sys.argv[3])) as clf:
    for i in range(100):
        clf.predict(paths[i % len(paths)])
print(peak_rss_mb())
"""


def child_rss_mb(model: str, jpeg: str, threads: int) -> float:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, model, jpeg, str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def draft_agreement(model: str, tmp: str) -> float:
    agree = n = 0
    with EdgeClassifier(model, draft=True) as fast, EdgeClassifier(model, draft=False) as full:
        for p in sample_photos():
            img = Image.open(p.path).convert("RGB")
            img = img.resize((img.width * 5, img.height * 5), Image.BICUBIC)
            path = os.path.join(tmp, f"{p.name}_x5.jpg")
            img.save(path, quality=90)
            agree += fast.predict(path)[0].index == full.predict(path)[0].index
            n += 1
    return agree / n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="int8 model (uint8 I/O) with metadata")
    ap.add_argument("--fp32-model", required=True, help="fp32 model of the same network")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        jpeg = big_jpeg(tmp)
        raw, pred = raw_vs_predict(args.model, args.threads, args.runs)
        rows.append(("(a) predict(224² uint8) / raw interpreter", f"{pred:.3f} / {raw:.3f} ms",
                     pred / raw, "≤ 1.05", pred / raw <= 1.05))
        try:
            ours, theirs = big_vs_mediapipe(args.model, jpeg, args.threads, max(5, args.runs // 3))
            rows.append(("(b) predict(12-MP JPEG) / MediaPipe", f"{ours:.1f} / {theirs:.1f} ms",
                         ours / theirs, "≤ 0.2", ours / theirs <= 0.2))
        except ImportError:
            rows.append(("(b) predict(12-MP JPEG) / MediaPipe", "mediapipe missing", float("nan"),
                         "≤ 0.2", False))
        x = np.random.default_rng(1).integers(0, 256, (224, 224, 3), dtype=np.uint8)
        with EdgeClassifier(args.model, num_threads=args.threads) as q, \
                EdgeClassifier(args.fp32_model, num_threads=args.threads) as f:
            if q.input_size != 224 or f.input_size != 224:
                x = np.zeros((q.input_size, q.input_size, 3), np.uint8)
            tq = _median_ms(lambda: q.predict(x), args.runs)
            tf_ = _median_ms(lambda: f.predict(x), args.runs)
        rows.append(("(c) fp32 / int8 latency", f"{tf_:.2f} / {tq:.2f} ms", tf_ / tq, "≥ 2.0",
                     tf_ / tq >= 2.0))
        rss = child_rss_mb(args.model, jpeg, args.threads)
        rows.append(("(d) peak RSS, 100 predictions (MB)", f"{rss:.1f} MB", rss, "≤ 100",
                     rss <= 100))
        agree = draft_agreement(args.model, tmp)
        rows.append(("draft JPEG top-1 agreement", f"{agree:.0%}", agree, "≥ 0.99", agree >= 0.99))
    print(f"{'measure':44} {'values':24} {'ratio':>8}  goal     ok")
    for name, vals, ratio, goal, ok in rows:
        print(f"{name:44} {vals:24} {ratio:8.3f}  {goal:8} {'✓' if ok else '✗'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
