"""12-megapixel JPEGs made from the shipped photos: seeded crops, upscaled, saved at quality 90.

Shared by bench_runtime.py (draft-scale agreement) and bench_folder.py (folder throughput);
files are cached in a folder and reused when they are already there. Also their ``--cpus``
(:func:`pin_cpus`).
"""
from __future__ import annotations

import os
import random

from PIL import Image

MEGAPIXELS = 12.0


def make_big_jpegs(folder: str, n: int, seed: int = 0, quality: int = 90,
                   jobs: int = 1) -> list[str]:
    """``n`` 12 MP JPEGs in ``folder``: crops (40-100 % of the area, aspect 3/4-4/3) of the
    shipped photos, round-robin over the photos, upscaled with bicubic. Returns their paths.
    ``jobs`` > 1 writes the missing ones in that many processes (the same files)."""
    from edge.samples import sample_photos

    os.makedirs(folder, exist_ok=True)
    photos = sample_photos()
    rng = random.Random(seed)
    todo, paths = [], []
    for i in range(n):
        p = photos[i % len(photos)]
        box = (rng.uniform(0.4, 1.0), rng.uniform(0.75, 4 / 3), rng.random(), rng.random())
        path = os.path.join(folder, f"{i:04d}_{p.name}_12mp_s{seed}.jpg")
        paths.append(path)
        if not os.path.isfile(path):
            todo.append((str(p.path), box, path, quality))
    if jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_write_big, todo, chunksize=max(1, len(todo) // (4 * jobs))))
    else:
        try:
            for t in todo:
                _write_big(t)
        finally:
            _OPENED.clear()  # the decoded source photos are not kept past this call
    return paths


def pin_cpus(cpus: str | None) -> None:
    """``--cpus 0,4``: run this process (and the pools it starts) on those CPUs only, for
    figures on a fixed number of unshared cores of a bigger machine. Linux only."""
    if not cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise SystemExit("--cpus needs Linux (os.sched_setaffinity)")
    try:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",") if c.strip()})
    except (ValueError, OSError) as e:
        raise SystemExit(f"--cpus {cpus}: {e}") from None


_OPENED: dict[str, Image.Image] = {}


def _write_big(task) -> None:
    src, (area, ratio, fx, fy), path, quality = task
    if src not in _OPENED:
        with Image.open(src) as im:
            _OPENED[src] = im.convert("RGB")
    img = _OPENED[src]
    w, h = img.size
    cw = min(w, round((area * w * h * ratio) ** 0.5))
    ch = min(h, round((area * w * h / ratio) ** 0.5))
    left, top = round(fx * (w - cw)), round(fy * (h - ch))
    scale = (MEGAPIXELS * 1e6 / (cw * ch)) ** 0.5
    big = img.resize((round(cw * scale), round(ch * scale)), Image.BICUBIC,
                     box=(left, top, left + cw, top + ch))
    tmp = f"{path}.{os.getpid()}.tmp"
    big.save(tmp, "JPEG", quality=quality)
    os.replace(tmp, path)
