"""How efficientnet-evaluate should spread decoding over the cores: serial vs threads vs processes.

Decodes + centre-crops + resizes (edge.preprocess, lite0 spec, draft on as the runtime does) a
set of camera-sized JPEGs made from the shipped photos, and prints one table of wall times and
speed-ups measured in this run. Pillow releases the GIL while it decodes and resizes, so threads
should scale like processes without pickling the pixels back.

    .venv/bin/python benchmarks/evaluate_decode.py [--images 48] [--size 2000]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from PIL import Image  # noqa: E402

from edge.preprocess import preprocess  # noqa: E402
from edge.samples import sample_photos  # noqa: E402
from edge.sysinfo import usable_cores  # noqa: E402
from edge.variants import preprocess_spec  # noqa: E402

SPEC = preprocess_spec("lite0")


def decode(path: str):
    return preprocess(path, SPEC, draft=True)


def cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    keep = [x for x in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if x in flags]
                    return f"{name}; {' '.join(keep)}"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def make_jpegs(folder: str, n: int, size: int) -> list[str]:
    photos = [p.path for p in sample_photos()]
    out = []
    for i in range(n):
        img = Image.open(photos[i % len(photos)]).convert("RGB")
        scale = size / max(img.size)
        img = img.resize((int(img.width * scale), int(img.height * scale)), Image.Resampling.BICUBIC)
        path = os.path.join(folder, f"{i:03d}.jpg")
        img.save(path, quality=90)
        out.append(path)
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--size", type=int, default=2000, help="long side of the test JPEGs")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per row")
    args = ap.parse_args()
    cores = usable_cores()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_jpegs(folder, args.images, args.size)
        rows = [("serial", lambda: [decode(p) for p in paths])]
        for k in sorted({1, 2, cores, 2 * cores}):
            rows.append((f"threads x{k}", lambda k=k: list(ThreadPoolExecutor(k).map(decode, paths))))
        for k in sorted({2, cores}):
            rows.append((f"processes x{k}",
                         lambda k=k: list(ProcessPoolExecutor(k).map(decode, paths, chunksize=4))))
        results = [(name, min(timed(fn) for _ in range(args.repeat))) for name, fn in rows]
    base = results[0][1]
    print(f"{args.images} JPEGs, long side {args.size} px, lite0 preprocessing (draft decode); "
          f"{cores} cores: {cpu_flags()}")
    print(f"{'decoding':<16} {'seconds':>8} {'ms/img':>8} {'speed-up':>9}")
    for name, t in results:
        print(f"{name:<16} {t:8.2f} {1000 * t / args.images:8.1f} {base / t:8.2f}x")
    print("(one run, best of %d per row; other processes on the machine add noise)" % args.repeat)


if __name__ == "__main__":
    main()
