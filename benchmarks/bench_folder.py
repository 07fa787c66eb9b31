"""Folder throughput and memory in one run: predict_iter vs the one-by-one loop vs MediaPipe.

    python benchmarks/bench_folder.py --model out/lite0_int8.tflite

(f) a folder of 200 12 MP JPEGs (crops of the shipped photos, upscaled, quality 90):
    images/s of EdgeClassifier.predict_iter (default: one decoding thread and one 1-thread
    interpreter per core) against `for f in files: clf.predict(f)` (goal ≥ 1.8×) and against
    MediaPipe ImageClassifier's loop over the same files (goal ≥ 5×). The files are split into
    chunks and the three run chunk by chunk, so load from other processes hits all alike; the
    ratio is the median of per-chunk ratios. Also shown: the pipeline with one interpreter,
    and the machine's own ceiling: the same pure-Python CPU work in one process per core vs one
    process, measured beside each chunk. On a VM whose cores are shared (steal time) that
    ceiling is below the core count, and no pipeline can beat it.
(g) RSS over 10,000 predictions of mixed files (JPEG/PNG/WebP/GIF/TIFF/BMP of the shipped
    photos, 12 MP JPEGs, CMYK, 16-bit, animated, broken files), in a fresh process each for
    predict() and predict_iter(): growth after the first 1,000 (goal ≤ +10 MB).
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from big_photos import make_big_jpegs, pin_cpus  # noqa: E402

from edge import EdgeClassifier  # noqa: E402
from edge.sysinfo import cpu_line, usable_cores  # noqa: E402


def folder_throughput(model: str, files: list[str], chunk: int, with_mediapipe: bool):
    """Per-method total seconds and per-chunk ratios, methods run chunk by chunk."""
    methods = {}
    clf = EdgeClassifier(model)
    mpc = None
    methods["loop"] = lambda fs: [clf.predict(f) for f in fs]
    methods["pipeline"] = lambda fs: list(clf.predict_iter(fs))
    methods["pipeline, 1 interpreter"] = lambda fs: list(clf.predict_iter(fs, interpreters=1))
    if with_mediapipe:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=model),
                                             max_results=5)
        mpc = vision.ImageClassifier.create_from_options(opts)
        methods["mediapipe loop"] = lambda fs: [mpc.classify(mp.Image.create_from_file(f))
                                                for f in fs]
    for fn in methods.values():  # warm-up: caches, pool interpreters, XNNPACK packing
        fn(files[:4])
    cores = usable_cores()
    secs = {k: [] for k in methods}
    ceiling = []
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(_spin, [1] * cores))  # start the workers
        for start in range(0, len(files), chunk):
            part = files[start:start + chunk]
            for name, fn in methods.items():
                t0 = time.perf_counter()
                out = fn(part)
                secs[name].append(time.perf_counter() - t0)
                assert len(out) == len(part)
            ceiling.append(parallel_ceiling(pool, cores))
    clf.close()
    if mpc is not None:
        mpc.close()  # else its __del__ fails at interpreter exit (TypeError from a torn-down module)
    return {k: np.array(v) for k, v in secs.items()}, np.array(ceiling)


def _spin(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s


def parallel_ceiling(pool, cores: int, work: int = 4_000_000) -> float:
    """Wall-time ratio of ``cores`` units of pure-CPU work run one after another vs spread over
    ``pool`` (one process per core): what this machine's cores give right now."""
    t0 = time.perf_counter()
    for _ in range(cores):
        _spin(work)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    list(pool.map(_spin, [work] * cores))
    return serial / (time.perf_counter() - t0)


def mixed_files(folder: str, big: list[str]) -> list[str]:
    """The shipped photos in six formats, 12 MP JPEGs, exotic modes and broken files."""
    from edge.samples import sample_photos

    os.makedirs(folder, exist_ok=True)
    paths = []
    for p in sample_photos():
        with Image.open(p.path) as im:
            rgb = im.convert("RGB")
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"),
                         ("TIFF", "tif"), ("BMP", "bmp")):
            path = os.path.join(folder, f"{p.name}.{ext}")
            rgb.save(path, fmt)
            paths.append(path)
    rgb.convert("CMYK").save(os.path.join(folder, "cmyk.jpg"))
    Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(
        os.path.join(folder, "gray16.png"))
    frames = [rgb.rotate(a) for a in (0, 90, 180)]
    frames[0].save(os.path.join(folder, "anim.gif"), save_all=True, append_images=frames[1:])
    buf = io.BytesIO()
    rgb.save(buf, "JPEG")
    with open(os.path.join(folder, "cut.jpg"), "wb") as f:
        f.write(buf.getvalue()[:2000])
    with open(os.path.join(folder, "text.png"), "w") as f:
        f.write("not an image")
    paths += [os.path.join(folder, n) for n in ("cmyk.jpg", "gray16.png", "anim.gif", "cut.jpg",
                                                "text.png")]
    return paths + big


_RSS_CHILD = r"""
import sys, json
from edge import EdgeClassifier, ImageDecodeError
model, mode, n, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

samples = []
with EdgeClassifier(model) as clf:
    if mode == "predict":
        for i in range(n):
            try:
                clf.predict(files[i % len(files)])
            except ImageDecodeError:
                pass
            if (i + 1) % 500 == 0:
                samples.append((i + 1, rss_mb()))
    else:
        source = (files[i % len(files)] for i in range(n))
        for p in clf.predict_iter(source):
            if (p.index + 1) % 500 == 0:
                samples.append((p.index + 1, rss_mb()))
print(json.dumps(samples))
"""


def rss_growth(model: str, files: list[str], mode: str, n: int) -> list[tuple[int, float]]:
    out = subprocess.run([sys.executable, "-c", _RSS_CHILD, model, mode, str(n), *files],
                         check=True, capture_output=True, text=True).stdout
    import json

    return [tuple(s) for s in json.loads(out.splitlines()[-1])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="int8 model (uint8 input) with metadata")
    ap.add_argument("--files", type=int, default=200, help="12 MP JPEGs in the folder")
    ap.add_argument("--chunk", type=int, default=40, help="files per interleaved chunk")
    ap.add_argument("--predictions", type=int, default=10_000, help="for the RSS check")
    ap.add_argument("--no-mediapipe", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "edge-big-jpegs"),
                    help="folder for the generated 12 MP JPEGs (reused between runs)")
    ap.add_argument("--cpus", help="run on these CPUs only, e.g. 0,4 (two cores of a bigger "
                                   "machine); thread and worker counts follow")
    args = ap.parse_args(argv)
    pin_cpus(args.cpus)
    print(cpu_line())
    files = make_big_jpegs(args.cache, args.files, jobs=usable_cores())
    size = np.mean([os.path.getsize(f) for f in files]) / 1e6
    print(f"{len(files)} 12 MP JPEGs ({size:.2f} MB each on average) in {args.cache}; "
          f"chunks of {args.chunk}")
    for f in files:  # page cache: every method reads warm files
        with open(f, "rb") as fh:
            fh.read()
    secs, ceiling = folder_throughput(args.model, files, args.chunk, not args.no_mediapipe)
    n = len(files)
    rows = []
    for name, s in secs.items():
        rows.append((f"(f) {name}", f"{n / s.sum():.1f} img/s", "", "", None))
    ratio = float(np.median(secs["loop"] / secs["pipeline"]))
    rows.append(("(f) pipeline / one-by-one loop (img/s)", "chunks: " + " ".join(
        f"{r:.2f}" for r in secs["loop"] / secs["pipeline"]), f"{ratio:.2f}", "≥ 1.8",
        ratio >= 1.8))
    cores = usable_cores()
    rows.append((f"(f) machine ceiling: {cores} processes / 1 (pure CPU)", "chunks: " + " ".join(
        f"{r:.2f}" for r in ceiling), f"{np.median(ceiling):.2f}", "", None))
    if "mediapipe loop" in secs:
        r_mp = float(np.median(secs["mediapipe loop"] / secs["pipeline"]))
        rows.append(("(f) pipeline / MediaPipe loop (img/s)", "chunks: " + " ".join(
            f"{r:.1f}" for r in secs["mediapipe loop"] / secs["pipeline"]), f"{r_mp:.2f}",
            "≥ 5", r_mp >= 5))
    if not args.skip_rss:
        with tempfile.TemporaryDirectory() as tmp:
            mixed = mixed_files(tmp, files[:5])
            for mode in ("predict", "predict_iter"):
                samples = rss_growth(args.model, mixed, mode, args.predictions)
                base = next(r for i, r in samples if i >= 1000)
                top = max(r for i, r in samples if i >= 1000)
                rows.append((f"(g) RSS over {args.predictions} {mode}() (MB)",
                             f"at 1000: {base:.1f}, max after: {top:.1f}, end: {samples[-1][1]:.1f}",
                             f"+{top - base:.1f}", "≤ +10", top - base <= 10))
    print(f"{'measure':44} {'values':48} {'ratio':>7}  goal    ok")
    for name, vals, ratio, goal, good in rows:
        ok = "" if good is None else ("✓" if good else "✗")
        print(f"{name:44} {vals:48} {ratio:>7}  {goal:6} {ok}")
    print(cpu_line())  # again: the load average over the run
    return 0


if __name__ == "__main__":
    sys.exit(main())
