"""Command lines: ``efficientnet-classify`` (label images and folders) and ``efficientnet-bench``.

Only this module turns errors into exit codes: one line ``PROG: error: …`` on stderr, exit 2,
no traceback; Ctrl-C exits 130 and leaves no partial output file. Native library logs (LiteRT's
"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") are hidden unless ``--verbose``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import time
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np

from .accelerated import compiled_here
from .backends import BackendUnavailableError
from .classifier import EdgeClassifier, InferenceError
from .cliutil import (EXIT_INTERRUPTED, CliParser, fail, hide_native_exit_logs, one_line,
                      quiet_native_logs, sticky_interrupts, warn)
from .delegates import DelegateKind, DelegateUnavailableError
from .folder import AtomicTextFile, OutputFormat, RowWriter, iter_images
from .model import ModelLoadError
from .sysinfo import cpu_line, cpu_summary

CLASSIFY, BENCH = "efficientnet-classify", "efficientnet-bench"
#: Up to this many image files (no folder), classify with the main interpreter only.
_FEW = 4
_MODEL_ERRORS = (FileNotFoundError, ModelLoadError, BackendUnavailableError,
                 DelegateUnavailableError, ValueError, OSError)
_DELEGATE_HELP = (f"{', '.join(k.value for k in DelegateKind)}, 'edgetpu:usb:0'-style device, "
                  "or a delegate library path (default: auto)")


def _whole_number(low: int) -> Callable[[str], int]:
    """argparse type: a whole number >= ``low``, else a one-line usage error."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
        return v
    return parse


_positive, _non_negative = _whole_number(1), _whole_number(0)


def _runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    g.add_argument("--delegate", default="auto", help=_DELEGATE_HELP)
    g.add_argument("--threads", type=_positive, default=None,
                   help="CPU threads of the interpreter (default: all cores)")
    g.add_argument("--fallback", action="store_true",
                   help="if the delegate cannot load, warn and run on XNNPACK instead of failing")
    g.add_argument("--backend", default=None, help="litert, tflite_runtime or tensorflow")
    g.add_argument("--verbose", action="store_true",
                   help="show the native libraries' own log lines (hidden by default)")


def _error_text(e: BaseException) -> str:
    """An exception's message as a command-line user should read it."""
    return getattr(e, "cli_message", None) or str(e)


def _open(prog: str, args) -> EdgeClassifier:
    """The classifier, its warnings printed once each as one ``PROG: warning:`` line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = EdgeClassifier(args.model, delegate=args.delegate, num_threads=args.threads,
                             fallback=args.fallback, backend=args.backend, verbose=args.verbose)
    seen = set()
    for w in caught:
        text = one_line(_error_text(w.message))
        if issubclass(w.category, (RuntimeWarning, UserWarning)) and text not in seen:
            seen.add(text)
            warn(prog, text)
    return clf


def _progress(enabled: bool | None, total: int | None):
    """A tqdm bar on stderr (when tqdm is installed and stderr is a terminal, or asked for)."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm  # noqa: PLC0415
    except ImportError:
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, leave=True)


@contextlib.contextmanager
def _one_line_warnings(prog: str) -> Iterator[None]:
    """Python warnings raised while classifying (Pillow's "Corrupt EXIF data", a decompression
    bomb warning…) print as one ``PROG: warning: …`` line each, each text once."""
    seen: set[str] = set()
    saved = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        text = one_line(_error_text(message))
        if text not in seen:
            seen.add(text)
            warn(prog, text)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = saved


@contextlib.contextmanager
def _output(path: str | None) -> Iterator:
    if path is None:
        yield sys.stdout
    else:
        with AtomicTextFile(path) as f:
            yield f


def _classify_parser() -> CliParser:
    p = CliParser(prog=CLASSIFY, description="Classify images, or whole folders of them, with "
                  "an EfficientNet TFLite model.")
    io_ = p.add_argument_group("input")
    io_.add_argument("model", help="path to a .tflite model")
    io_.add_argument("images", nargs="+", metavar="IMAGE_OR_DIR",
                     help="image files and/or folders (a folder: its image files, by name)")
    io_.add_argument("-r", "--recursive", action="store_true",
                     help="also the images in sub-folders of each folder")
    out = p.add_argument_group("output")
    out.add_argument("--top-k", type=_positive, default=5, help="classes per image (default: 5)")
    out.add_argument("--format", choices=[f.value for f in OutputFormat], default=None,
                     help="text (default on stdout), csv or jsonl (default for --output: from "
                          "its extension)")
    out.add_argument("--json", action="store_true", help="same as --format jsonl")
    out.add_argument("-o", "--output", default=None, metavar="FILE",
                     help="write rows to FILE (atomically: complete or not at all) instead of "
                          "stdout")
    out.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar on stderr (default: when stderr is a terminal)")
    perf = p.add_argument_group("throughput")
    perf.add_argument("--workers", type=_positive, default=None,
                      help="decoding threads, each with its own one-thread interpreter on the "
                           "CPU (default: one per usable core)")
    _runtime_args(p)
    return p


def _format(p: CliParser, args) -> OutputFormat:
    if args.json and args.format not in (None, OutputFormat.JSONL.value):
        p.error(f"--json contradicts --format {args.format}")
    if args.json:
        return OutputFormat.JSONL
    if args.format:
        return OutputFormat(args.format)
    if args.output:
        fmt = OutputFormat.for_path(args.output)
        if fmt is None:
            p.error(f"cannot tell the format of --output {args.output!r} from its extension; "
                    "add --format csv or --format jsonl")
        return fmt
    return OutputFormat.TEXT


def classify_main(argv: Sequence[str] | None = None) -> int:
    """``efficientnet-classify MODEL IMAGE_OR_DIR... [-r]``: the top classes of each image.

    Images are decoded by a pool of threads and classified in parallel (results in input
    order). A file that cannot be read is reported (one stderr line, and its row's error
    field) and the others go on. Returns 0; 2 on a usage error, a model that cannot be loaded
    or any image that failed; 130 on Ctrl-C (no partial --output file is left).
    """
    p = _classify_parser()
    args = p.parse_args(argv)
    fmt = _format(p, args)
    if args.output and os.path.isdir(args.output):
        return fail(CLASSIFY, f"--output {args.output} is a folder")
    try:
        with quiet_native_logs(args.verbose), _one_line_warnings(CLASSIFY), \
                sticky_interrupts() as check_interrupt:
            code = _classify(args, fmt, check_interrupt)
    except KeyboardInterrupt:
        print(f"{CLASSIFY}: interrupted", file=sys.stderr, flush=True)
        code = EXIT_INTERRUPTED
    return _quiet_exit(code, argv, args.verbose)


def _quiet_exit(code: int, argv: Sequence[str] | None, verbose: bool) -> int:
    """LiteRT frees the environments of a model compiled for its GPU accelerator only at
    process exit, logging a line each. After a console run (``argv`` None) has printed its last
    line, keep those out of its output, unless --verbose. Only on a normal return: a traceback
    still reaches stderr. Returns ``code``."""
    if argv is None and not verbose and compiled_here():
        hide_native_exit_logs()
    return code


class _NoImages(Exception):
    """No image file was found under the paths given."""


def _classify(args, fmt: OutputFormat, check_interrupt: Callable[[], None]) -> int:
    try:
        clf = _open(CLASSIFY, args)
    except _MODEL_ERRORS as e:
        return fail(CLASSIFY, f"{args.model}: {_error_text(e)}")
    failed = done = 0
    total = None
    if args.progress or (args.progress is None and sys.stderr.isatty()):
        total = sum(1 for _ in iter_images(args.images, args.recursive))
    bar = _progress(args.progress, total)
    try:
        with clf, _output(args.output) as out:
            writer = RowWriter(out, fmt, args.top_k,
                               {"delegate": clf.delegate, "backend": clf.backend})
            workers = args.workers
            if workers is None and len(args.images) <= _FEW and \
                    not any(os.path.isdir(p) for p in args.images):
                workers = 1  # a few files: the main interpreter alone starts fastest
            for pred in clf.predict_iter(iter_images(args.images, args.recursive),
                                         top_k=args.top_k, workers=workers):
                check_interrupt()  # a Ctrl-C swallowed on its way still stops the run here
                name = os.fspath(pred.source)
                if pred.error is not None:
                    failed += 1
                    if bar is not None:
                        bar.clear()
                    fail(CLASSIFY, f"{name}: {pred.error}")
                writer.write(pred, name)
                done += 1
                if bar is not None:
                    bar.update(1)
            if done == 0:  # raised inside the block: no --output file is written
                raise _NoImages("no image files found in " + ", ".join(args.images))
    except (InferenceError, OSError, _NoImages) as e:
        return fail(CLASSIFY, e)
    finally:
        if bar is not None:
            bar.close()
    if args.output:
        print(f"{CLASSIFY}: {done - failed} of {done} images classified → {args.output}",
              file=sys.stderr)
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
            "peak_rss_mb": peak_rss_mb(), "cpu": cpu_summary()}


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
    p = CliParser(prog=BENCH, description="Benchmark an EfficientNet TFLite model.")
    p.add_argument("model", help="path to a .tflite model")
    g = p.add_argument_group("benchmark")
    g.add_argument("--runs", type=_positive, default=50, help="timed predictions (default: 50)")
    g.add_argument("--warmup", type=_non_negative, default=5,
                   help="untimed predictions first (default: 5)")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    _runtime_args(p)
    args = p.parse_args(argv)
    return _quiet_exit(_bench(args), argv, args.verbose)


def _bench(args) -> int:
    try:
        with quiet_native_logs(args.verbose):
            try:
                clf = _open(BENCH, args)
            except _MODEL_ERRORS as e:
                return fail(BENCH, f"{args.model}: {_error_text(e)}")
            with clf:
                r = bench(clf, args.runs, args.warmup)
    except InferenceError as e:
        return fail(BENCH, e)
    except KeyboardInterrupt:
        print(f"{BENCH}: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    r["model"] = os.fspath(args.model)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"{r['model']}: backend {r['backend']}, delegate {r['delegate']}, {r['runs']} runs")
        print(f"  latency p50 {r['p50_ms']:.2f} ms  p90 {r['p90_ms']:.2f} ms  "
              f"p99 {r['p99_ms']:.2f} ms")
        print(f"  throughput {r['throughput_ips']:.1f} img/s  peak RSS {r['peak_rss_mb']:.1f} MB")
        print(f"  {cpu_line()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(classify_main())
