"""``efficientnet-evaluate``: how far int8 (or any) .tflite models drift from a reference.

Comparing .tflite files needs only the runtime install; ``--reference-model`` (a Keras model by
variant and weights) imports TensorFlow, lazily. ``efficientnet-evaluate merge PART.json...``
joins the results of ``--shard i/N`` runs into the result of one run.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

from edge.cliutil import (CliParser, fail, quiet_native_logs, run_interruptible, warn,
                          write_files_atomic)

PROG = "efficientnet-evaluate"
#: Images the per-layer report (``--layers``) runs on: the first ones of the evaluated set.
LAYER_IMAGES = 20


def build_parser() -> argparse.ArgumentParser:
    from edge.layers import LayerMetric  # noqa: PLC0415 - light (numpy only)
    from edge.variants import MODEL_NAMES  # noqa: PLC0415

    p = CliParser(
        prog=PROG,
        description="Compare candidate .tflite models (e.g. int8) with a reference (fp32 .tflite or "
                    "a Keras model) on your images: accuracy, top-1 agreement, KL, latency.",
        epilog="examples: efficientnet-evaluate lite0_int8.tflite --reference lite0_fp32.tflite "
               "--images photos/ --json eval.json | efficientnet-evaluate merge part*.json "
               "--json all.json")
    p.add_argument("candidates", nargs="+", metavar="CANDIDATE.tflite", help="models to evaluate")
    r = p.add_argument_group("reference (one of)").add_mutually_exclusive_group(required=True)
    r.add_argument("--reference", metavar="FILE.tflite",
                   help="reference .tflite (e.g. fp32); runs without TensorFlow")
    r.add_argument("--reference-model", choices=MODEL_NAMES, metavar="VARIANT",
                   help="reference Keras model by variant (lite0 ... b7; imports TensorFlow)")
    p.add_argument("--weights", default=None, metavar="imagenet|PATH",
                   help="weights of --reference-model (default imagenet)")
    d = p.add_argument_group("images")
    d.add_argument("--images", required=True, metavar="DIR|CSV|GLOB",
                   help="a folder (class sub-folders give accuracy), a CSV of path,label rows, or a glob")
    d.add_argument("--labels", metavar="FILE",
                   help="class names, one per line in class order, to match folder/CSV labels "
                        "(default: the models' own labels)")
    d.add_argument("--shard", default="1/1", metavar="i/N",
                   help="evaluate every N-th image starting at the i-th (1 <= i <= N); join the "
                        "parts with 'efficientnet-evaluate merge'")
    m = p.add_argument_group("measures")
    m.add_argument("--confident", type=float, default=0.5, metavar="P",
                   help="reference probability counted as confident (default 0.5)")
    m.add_argument("--layers", nargs="?", type=int, const=10, default=None, metavar="N",
                   help="also print the N worst quantised layers of each candidate (default 10); "
                        "needs a fp32 --reference")
    m.add_argument("--layer-images", type=int, default=LAYER_IMAGES, metavar="N",
                   help=f"images for --layers (default {LAYER_IMAGES})")
    m.add_argument("--rank-by", choices=[v.value for v in LayerMetric],
                   default=LayerMetric.WEIGHT_NOISE.value, help="--layers ranking (default weight-noise)")
    o = p.add_argument_group("output")
    o.add_argument("--json", metavar="PATH", help="write the full result (needed to merge shards)")
    o.add_argument("--disagreements", metavar="PATH.csv",
                   help="write one row per image where a candidate's top-1 differs, with both top-3s")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    rt = p.add_argument_group("runtime")
    rt.add_argument("--workers", type=int, default=None, help="decoding threads (default: cores)")
    rt.add_argument("--threads", type=int, default=None, help="interpreter threads (default: cores)")
    rt.add_argument("--delegate", default="xnnpack", choices=["xnnpack", "cpu"],
                    help="xnnpack (default) or cpu (built-in kernels)")
    rt.add_argument("--no-draft", action="store_true",
                    help="decode JPEGs at full size (the runtime's default decodes large JPEGs "
                         "at a reduced scale)")
    return p


def build_merge_parser() -> argparse.ArgumentParser:
    p = CliParser(prog=f"{PROG} merge",
                  description="Join the JSON results of --shard runs into one result.")
    p.add_argument("parts", nargs="+", metavar="PART.json")
    p.add_argument("--json", metavar="PATH", help="write the merged result")
    p.add_argument("--disagreements", metavar="PATH.csv", help="write the merged disagreements CSV")
    return p


def parse_shard(text: str) -> tuple[int, int]:
    """``'i/N'`` -> (i, N).

    Raises:
        ValueError: not two integers with 1 <= i <= N.
    """
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text}: need 1 <= i <= N")
    return i, n


def _read_labels(path: str) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"labels file {path}: no such file")
    with open(path, encoding="utf-8-sig") as f:
        labels = [line.strip() for line in f if line.strip()]
    if not labels:
        raise ValueError(f"labels file {path} holds no class names")
    return labels


def keras_reference(variant: str, weights: str | None) -> tuple[Any, Any]:
    """(callable, spec) for a Keras model: raw uint8 pixels in, softmax probabilities out.

    Imports TensorFlow (only here).

    Raises:
        ValueError: TensorFlow/Keras are not installed (the runtime-only install).
    """
    import importlib.util  # noqa: PLC0415

    missing = [m for m in ("tensorflow", "keras") if importlib.util.find_spec(m) is None]
    if missing:
        raise ValueError(f"--reference-model needs {' and '.join(missing)} (not installed here): "
                         "pip install 'efficientnet-edge[convert]', or compare with a fp32 "
                         "--reference FILE.tflite")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge.variants import preprocess_spec  # noqa: PLC0415

    from .efficientnet import create_model  # noqa: PLC0415

    w = None if weights and weights.lower() == "none" else (weights or "imagenet")
    model = create_model(variant, w)

    def predict(pixels):
        import numpy as np  # noqa: PLC0415

        return np.asarray(model(pixels.astype("float32"), training=False))

    return predict, preprocess_spec(variant)


def _write_outputs(result, args) -> None:
    files = {}
    if args.json:
        files[args.json] = result.to_json().encode()
    if args.disagreements:
        files[args.disagreements] = result.disagreements_csv().encode()
    if files:
        write_files_atomic(files)


def _check_outputs(args) -> None:
    for flag, path in (("--json", args.json), ("--disagreements", args.disagreements)):
        if path and os.path.isdir(path):
            raise ValueError(f"{flag} {path} is a folder; give a file name")


def run(args: argparse.Namespace) -> int:
    from edge.evaluate import EvalOptions, evaluate  # noqa: PLC0415

    shard = parse_shard(args.shard)
    if shard[1] > 1 and not args.json:
        raise ValueError("--shard needs --json (the part that 'merge' joins)")
    for flag in ("workers", "threads", "layer_images"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1")
    if args.layers is not None and args.layers < 1:
        raise ValueError("--layers must be >= 1")
    if args.layers is not None and not args.reference:
        raise ValueError("--layers needs a fp32 --reference FILE.tflite (tensors are compared "
                         "by name between two .tflite files)")
    if args.weights and not args.reference_model:
        raise ValueError("--weights goes with --reference-model")
    _check_outputs(args)
    for path in [args.reference, *args.candidates]:
        if path and not os.path.isfile(path):
            raise FileNotFoundError(f"no such model file: {path}")
    labels = _read_labels(args.labels) if args.labels else None
    options = EvalOptions(confident=args.confident, workers=args.workers,
                          num_threads=args.threads, delegate=args.delegate,
                          draft=not args.no_draft, shard=shard, progress=not args.quiet)
    if args.reference_model:
        ref, spec = keras_reference(args.reference_model, args.weights)
        name = f"keras {args.reference_model} ({args.weights or 'imagenet'})"
    else:
        ref, spec, name = args.reference, None, None
    result = evaluate(ref, args.candidates, args.images, options, reference_spec=spec,
                      reference_name=name, class_names=labels)
    _report(result)
    if args.layers is not None:
        _layers(result, args)
    _write_outputs(result, args)
    return 0


def _report(result) -> None:
    im = result.images
    if im.get("note"):
        warn(PROG, im["note"])
    if result.labels.get("unmatched"):
        warn(PROG, result.labels["message"])
    for path, why in im["failed"]:
        warn(PROG, f"skipped {path}: {why}")
    print(result.table())


def _layers(result, args) -> None:
    from edge.layers import LayerReportError, format_table, layer_errors  # noqa: PLC0415

    root = result.images["root"]
    paths = [os.path.join(root, r["path"]) for r in result.records[:args.layer_images]]
    ref = result.models[0]["source"]
    for m in result.models[1:]:
        print(f"\nper-layer error of {m['name']} against {result.models[0]['name']} "
              f"({len(paths)} images), worst {args.layers} by {args.rank_by}:")
        try:
            errs = layer_errors(ref, m["source"], paths, top=args.layers, rank_by=args.rank_by,
                                num_threads=args.threads)
        except LayerReportError as e:
            print(f"  not available: {e}")
            continue
        print(format_table(errs))


def merge_main(argv: Sequence[str]) -> int:
    from edge.evaluate import EvaluateError, merge  # noqa: PLC0415

    args = build_merge_parser().parse_args(argv)
    try:
        _check_outputs(args)
        result = merge(args.parts)
        _report(result)
        _write_outputs(result, args)
    except (EvaluateError, OSError, ValueError) as e:
        return fail(f"{PROG} merge", e)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for user errors, one line on stderr)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    args = build_parser().parse_args(argv)
    from edge.backends import BackendUnavailableError  # noqa: PLC0415
    from edge.classifier import ModelLoadError  # noqa: PLC0415
    from edge.delegates import DelegateUnavailableError  # noqa: PLC0415

    try:
        with quiet_native_logs():
            return run_interruptible(lambda: run(args), PROG)
    except (ValueError, OSError, LookupError, ModelLoadError, BackendUnavailableError,
            DelegateUnavailableError) as e:
        return fail(PROG, e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
