"""Soak EdgeClassifier with broken models and images: every case must be ok or a typed error.

    python benchmarks/fuzz_inputs.py --model out/lite0_int8.tflite --models 5000 --images 5000

Each case runs in a worker process (one per core); a worker that dies is counted as a crash
and restarted, one that takes longer than --timeout seconds is a hang (killed, restarted).
Cases are seeded (--seed) and rebuilt inside the worker from their number, so a failing case
is reproduced with ``--only KIND:N``.

Models (mutants of --model): truncation; bit flips in the header, the tables, the weight
buffers, the metadata flatbuffer and the metadata ZIP; overwritten 32-bit offsets; plus empty
and non-model files. Each model is loaded and runs one prediction.
Images (classified with --model): truncated or bit-flipped JPEG/PNG/WebP/GIF/TIFF/BMP, zero
bytes, text, a directory, a decompression bomb, animated GIF, 1x1, 20000x2, CMYK, LA, I;16, F.

Outcomes: ok (loaded and predicted), typed (a documented error: ModelLoadError,
DelegateUnavailableError, InferenceError for models; ImageDecodeError, FileNotFoundError for
images), untyped (any other exception, or a ResourceWarning), crash, hang. Exit status 1 if
anything is untyped, crashed or hung.
"""
from __future__ import annotations

import argparse
import collections
import io
import multiprocessing as mp
import os
import random
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

MODEL_KINDS = ("truncate", "flip_header", "flip_tables", "flip_buffers", "flip_metadata",
               "flip_zip", "offset", "empty", "text")
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP")
IMAGE_SPECIALS = ("zero_bytes", "text", "directory", "bomb", "animated", "1x1", "20000x2",
                  "CMYK", "LA", "I;16", "F")


@dataclass(frozen=True)
class Regions:
    """Byte ranges of a model file, for targeted mutations."""

    size: int
    tables: list[tuple[int, int]]  # flatbuffer bytes outside the weight buffers
    buffers: list[tuple[int, int]]  # weight buffer data
    metadata: tuple[int, int] | None  # the M001 metadata flatbuffer
    zip: tuple[int, int] | None  # the associated-files ZIP


def model_regions(buf: bytes) -> Regions:
    """Where the header, tables, weights, metadata and ZIP of a (valid) model lie."""
    from edge._schema.model_reader import read_model

    s = read_model(buf)
    meta_index = next((i for name, i in s.metadata if name == b"TFLITE_METADATA"), None)
    meta = None
    data = sorted((st, st + n) for i, (st, n) in enumerate(s.buffers) if n)
    if meta_index is not None and s.buffers[meta_index][1]:
        st, n = s.buffers[meta_index]
        meta = (st, st + n)
        data = [r for r in data if r != meta]
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            zip_start = min(i.header_offset for i in zf.infolist())
        zr = (zip_start, len(buf))
    except (zipfile.BadZipFile, ValueError):
        zr = None
    end = zr[0] if zr else len(buf)
    tables, pos = [], 0
    for st, en in data + ([meta] if meta else []):
        if st > pos:
            tables.append((pos, st))
        pos = max(pos, en)
    if pos < end:
        tables.append((pos, end))
    return Regions(len(buf), tables, data, meta, zr)


def _pick(rng: random.Random, ranges: list[tuple[int, int]]) -> int:
    ranges = [r for r in ranges if r[1] > r[0]]
    total = sum(b - a for a, b in ranges)
    k = rng.randrange(total)
    for a, b in ranges:
        if k < b - a:
            return a + k
        k -= b - a
    raise AssertionError


def _flip(buf: bytearray, rng: random.Random, ranges: list[tuple[int, int]], n: int) -> str:
    where = []
    for _ in range(n):
        p = _pick(rng, ranges)
        bit = rng.randrange(8)
        buf[p] ^= 1 << bit
        where.append(f"{p}.{bit}")
    return ",".join(where)


def mutate_model(base: bytes, regions: Regions, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One seeded mutant of ``base``: (bytes, description)."""
    buf = bytearray(base)
    flips = rng.choice((1, 1, 2, 3, 8))
    if kind == "truncate":
        n = rng.choice((rng.randrange(len(base)), rng.randrange(512),
                        len(base) - rng.randrange(1, 4096)))
        return bytes(buf[:max(n, 0)]), f"truncate to {n}"
    if kind == "empty":
        return b"", "empty file"
    if kind == "text":
        return b"this is not a model\n" * rng.randrange(1, 100), "text"
    if kind == "offset":
        p = _pick(rng, regions.tables) & ~3
        value = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, regions.size,
                            regions.size - rng.randrange(1, 64), rng.getrandbits(32),
                            struct.unpack_from("<I", base, p)[0] + rng.choice((-8, -4, 4, 8))))
        struct.pack_into("<I", buf, p, value & 0xFFFFFFFF)
        return bytes(buf), f"offset at {p} := {value & 0xFFFFFFFF:#x}"
    ranges = {"flip_header": [(0, 64)], "flip_tables": regions.tables,
              "flip_buffers": regions.buffers,
              "flip_metadata": [regions.metadata] if regions.metadata else regions.tables,
              "flip_zip": [regions.zip] if regions.zip else regions.tables}[kind]
    where = _flip(buf, rng, ranges, flips)
    return bytes(buf), f"{kind} bits {where}"


# -- images --------------------------------------------------------------------------------------

def _photo(size: tuple[int, int] = (320, 240)) -> Image.Image:
    from edge.samples import sample_photo

    with Image.open(sample_photo("chelsea").path) as im:
        return im.convert("RGB").resize(size, Image.BICUBIC)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def base_images() -> dict[str, bytes]:
    """One small valid file per format, the seeds of the truncation / bit-flip cases."""
    photo = _photo()
    return {"JPEG": encode(photo, "JPEG", quality=90), "PNG": encode(photo, "PNG"),
            "WEBP": encode(photo, "WEBP", quality=80), "GIF": encode(photo, "GIF"),
            "TIFF": encode(photo, "TIFF"), "BMP": encode(photo, "BMP")}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny PNG that declares ``width × height`` pixels (900 MP by default)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + \
        _png_chunk(b"IEND", b"")


def special_image(kind: str, rng: random.Random) -> bytes | None:
    """The bytes of a special image case (None: the case is a directory)."""
    photo = _photo((64, 48))
    if kind == "zero_bytes":
        return b""
    if kind == "text":
        return b"GIF89a? no, just text\n" * rng.randrange(1, 50)
    if kind == "directory":
        return None
    if kind == "bomb":
        return bomb_png()
    if kind == "animated":
        frames = [photo.rotate(a) for a in (0, 90, 180)]
        out = io.BytesIO()
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
        return out.getvalue()
    if kind == "1x1":
        return encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")
    if kind == "20000x2":
        return encode(Image.new("RGB", (20000, 2), (10, 200, 10)), "PNG")
    if kind == "CMYK":
        return encode(photo.convert("CMYK"), rng.choice(("JPEG", "TIFF")))
    if kind == "LA":
        return encode(photo.convert("LA"), "PNG")
    if kind == "I;16":
        a = (np.asarray(photo.convert("L"), np.uint16) * 257)
        return encode(Image.fromarray(a), rng.choice(("PNG", "TIFF")))  # mode I;16
    if kind == "F":
        return encode(Image.fromarray(np.asarray(photo.convert("L"), np.float32) / 255.0), "TIFF")
    raise ValueError(kind)


def mutate_image(bases: dict[str, bytes], kind: str, rng: random.Random) -> tuple[bytes | None, str]:
    """One seeded image case: (bytes or None for a directory, description)."""
    if kind in IMAGE_SPECIALS:
        return special_image(kind, rng), kind
    how, fmt = kind.split(":")
    buf = bytearray(bases[fmt])
    if how == "truncate":
        n = rng.choice((rng.randrange(len(buf)), rng.randrange(64)))
        return bytes(buf[:n]), f"{kind} to {n}"
    flips = rng.choice((1, 2, 4, 16))
    ranges = [(0, min(64, len(buf)))] if rng.random() < 0.4 else [(0, len(buf))]
    where = _flip(buf, rng, ranges, flips)
    return bytes(buf), f"{kind} bits {where}"


def image_kinds() -> list[str]:
    return [f"{how}:{fmt}" for fmt in IMAGE_FORMATS for how in ("truncate", "flip")] + \
        list(IMAGE_SPECIALS)


def case(kind_set: str, n: int, seed: int) -> tuple[str, random.Random]:
    """The kind and the random generator of case ``n`` of ``kind_set`` ('model' or 'image')."""
    kinds = MODEL_KINDS if kind_set == "model" else image_kinds()
    rng = random.Random(f"{seed}:{kind_set}:{n}")
    return kinds[n % len(kinds)], rng


# -- one case, in-process ------------------------------------------------------------------------

def typed_errors(kind_set: str) -> tuple[type, ...]:
    from edge import DelegateUnavailableError, ImageDecodeError, ModelLoadError
    from edge.classifier import InferenceError

    if kind_set == "model":
        return (ModelLoadError, DelegateUnavailableError, InferenceError)
    return (ImageDecodeError, FileNotFoundError)


class Runner:
    """Runs cases in this process: keeps the base model, its regions and a classifier."""

    def __init__(self, model_path: str, seed: int, scratch: str):
        from edge import EdgeClassifier

        with open(model_path, "rb") as f:
            self.base = f.read()
        self.regions = model_regions(self.base)
        self.seed, self.scratch = seed, scratch
        self.images = base_images()
        self.clf = EdgeClassifier(self.base, num_threads=1)
        self.x = np.random.default_rng(0).integers(
            0, 256, (self.clf.input_size, self.clf.input_size, 3), dtype=np.uint8)

    def build(self, kind_set: str, n: int) -> tuple[str, bytes | None, str]:
        kind, rng = case(kind_set, n, self.seed)
        if kind_set == "model":
            data, what = mutate_model(self.base, self.regions, kind, rng)
        else:
            data, what = mutate_image(self.images, kind, rng)
        return kind, data, what

    def run(self, kind_set: str, n: int) -> tuple[str, str, str, str]:
        """(kind, outcome, description, error) for case ``n``: outcome ok / typed / untyped."""
        from edge import EdgeClassifier

        kind, data, what = self.build(kind_set, n)
        typed = typed_errors(kind_set)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", ResourceWarning)
                warnings.simplefilter("ignore", RuntimeWarning)  # e.g. metadata without ZIP
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if kind_set == "model":
                    with EdgeClassifier(data, num_threads=1) as clf:
                        clf.predict(self.x)
                else:
                    self.clf.predict(self._image_source(n, data))
        except typed as e:
            return kind, "typed", what, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
        except Exception as e:  # noqa: BLE001 - the thing we are looking for
            return kind, "untyped", what, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
        return kind, "ok", what, ""

    def _image_source(self, n: int, data: bytes | None):
        if data is None:
            path = os.path.join(self.scratch, f"dir_{n}")
            os.makedirs(path, exist_ok=True)
            return path
        if n % 2:
            return data
        path = os.path.join(self.scratch, f"img_{n % 64}")
        with open(path, "wb") as f:
            f.write(data)
        return path


# -- worker processes ----------------------------------------------------------------------------

def _worker(conn, model_path: str, seed: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # LiteRT's INFO lines
    with tempfile.TemporaryDirectory(prefix="fuzz-") as scratch:
        runner = Runner(model_path, seed, scratch)
        conn.send("ready")
        while True:
            job = conn.recv()
            if job is None:
                return
            try:
                conn.send(runner.run(*job))
            except Exception:  # noqa: BLE001 - report harness errors, keep going
                conn.send(("?", "untyped", "harness", traceback.format_exc(limit=3)))


class Worker:
    """One worker process with a pipe; restarted after a crash or a hang."""

    def __init__(self, ctx, model_path: str, seed: int):
        self.ctx, self.model_path, self.seed = ctx, model_path, seed
        self.job = None
        self.started = 0.0
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.model_path, self.seed),
                                     daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(300) or self.conn.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def submit(self, job) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def restart(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(10)
        self.conn.close()
        self._start()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def soak(model_path: str, jobs: list[tuple[str, int]], seed: int, workers: int,
         timeout: float, progress: bool = True) -> list[tuple[str, str, str, str, str, int]]:
    """Run ``jobs`` ((kind_set, n), …) on worker processes; rows of
    (kind_set, kind, outcome, description, error, n) with outcome ok/typed/untyped/crash/hang."""
    ctx = mp.get_context("spawn")
    pool = [Worker(ctx, model_path, seed) for _ in range(max(1, workers))]
    todo = collections.deque(jobs)
    rows = []
    local = None  # for describing crashed/hung cases
    t0 = time.monotonic()
    try:
        while todo or any(w.job for w in pool):
            for w in pool:
                if w.job is None and todo:
                    w.submit(todo.popleft())
            busy = [w for w in pool if w.job]
            ready = mp.connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy],
                                       timeout=0.5)
            for w in busy:
                outcome = None
                if w.conn in ready or w.conn.poll():
                    try:
                        kind, outcome, what, err = w.conn.recv()
                    except (EOFError, OSError):
                        outcome = "crash"
                elif not w.proc.is_alive():
                    outcome = "crash"
                elif time.monotonic() - w.started > timeout:
                    outcome = "hang"
                if outcome is None:
                    continue
                kind_set, n = w.job
                if outcome in ("crash", "hang"):
                    if local is None:
                        local = _Describer(model_path, seed)
                    kind, what = local.describe(kind_set, n)
                    err = f"exit code {w.proc.exitcode}" if outcome == "crash" else                         f"no answer in {timeout:.0f} s"
                    w.restart()
                rows.append((kind_set, kind, outcome, what, err, n))
                w.job = None
                if progress and len(rows) % 250 == 0:
                    print(f"  {len(rows)}/{len(jobs)} cases, {time.monotonic() - t0:.0f} s",
                          file=sys.stderr, flush=True)
    finally:
        for w in pool:
            w.stop()
    return rows


class _Describer:
    """Rebuilds a case's description in the parent (only for crashes and hangs)."""

    def __init__(self, model_path: str, seed: int):
        with open(model_path, "rb") as f:
            self.base = f.read()
        self.regions = model_regions(self.base)
        self.images = base_images()
        self.seed = seed

    def describe(self, kind_set: str, n: int) -> tuple[str, str]:
        kind, rng = case(kind_set, n, self.seed)
        if kind_set == "model":
            return kind, mutate_model(self.base, self.regions, kind, rng)[1]
        return kind, mutate_image(self.images, kind, rng)[1]


def report(rows, timeout: float) -> int:
    outcomes = ("ok", "typed", "untyped", "crash", "hang")
    table: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for kind_set, kind, outcome, *_ in rows:
        table[(kind_set, kind)][outcome] += 1
    print(f"{'inputs':8} {'case':18} " + " ".join(f"{o:>8}" for o in outcomes))
    totals: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for (kind_set, kind), c in sorted(table.items()):
        totals[kind_set].update(c)
        print(f"{kind_set:8} {kind:18} " + " ".join(f"{c[o]:8d}" for o in outcomes))
    for kind_set, c in sorted(totals.items()):
        print(f"{kind_set:8} {'TOTAL':18} " + " ".join(f"{c[o]:8d}" for o in outcomes))
    bad = [r for r in rows if r[2] in ("untyped", "crash", "hang")]
    for kind_set, kind, outcome, what, err, n in bad[:30]:
        print(f"  {outcome}: --only {kind_set}:{n} ({what}): {err}")
    print(f"{len(bad)} untyped/crash/hang (hang = no answer in {timeout:.0f} s)")
    return 1 if bad else 0


def main(argv=None) -> int:
    from edge.sysinfo import usable_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a valid .tflite classifier with metadata")
    ap.add_argument("--models", type=int, default=5000, help="model mutants (default: 5000)")
    ap.add_argument("--images", type=int, default=5000, help="image cases (default: 5000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=usable_cores())
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a case is a hang")
    ap.add_argument("--only", default=None, help="run one case in-process: model:N or image:N")
    args = ap.parse_args(argv)
    if args.only:
        kind_set, n = args.only.split(":")
        with tempfile.TemporaryDirectory() as scratch:
            print(Runner(args.model, args.seed, scratch).run(kind_set, int(n)))
        return 0
    jobs = [("model", i) for i in range(args.models)] + [("image", i) for i in range(args.images)]
    t0 = time.monotonic()
    rows = soak(args.model, jobs, args.seed, args.workers, args.timeout)
    print(f"{len(rows)} cases in {time.monotonic() - t0:.0f} s, seed {args.seed}, "
          f"{args.workers} workers, model {args.model}")
    return report(rows, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
