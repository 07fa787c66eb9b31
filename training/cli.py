"""``efficientnet-train``: fine-tune on a folder of labelled photos, export int8 with the class names."""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any, Sequence

from converters.recipes import DEFAULT_RECIPE
from edge.cliutil import (CliParser, fail, one_line, quiet_native_logs, run_interruptible,
                          show_warnings_once)
from edge.variants import MODEL_NAMES

from .options import ClassWeights, QuantPrecision, Strategy, TrainOptions

PROG = "efficientnet-train"
OK, BAD = "\u2713", "\u2717"
_D = TrainOptions  # defaults, shown in --help
_OUR_PACKAGES = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), p)
                      for p in ("training", "converters", "calibration", "edge"))


def _blocks(text: str) -> int:
    if text.strip().lower() == "all":
        return -1
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of blocks or 'all', got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog=PROG,
        description="Fine-tune an EfficientNet (B0-B7, Lite0-4) on labelled images and export "
                    "fp32 and calibrated int8 TFLite models carrying the class names.",
        epilog="example: efficientnet-train photos/ --model lite0 --output runs/flowers")
    p.add_argument("data", nargs="?", metavar="DATA",
                   help="a folder with one sub-folder per class, or a CSV of path,label[,split]")
    m = p.add_argument_group("model")
    m.add_argument("--model", default=_D.model, choices=MODEL_NAMES, help="variant (default lite0)")
    m.add_argument("--weights", default="imagenet", metavar="imagenet|PATH|none",
                   help="initial weights: 'imagenet' (default; lite0-2 offline, B through the "
                        "Keras download), a weights file or checkpoint folder, or 'none'")
    m.add_argument("--input-size", type=int, metavar="PX",
                   help="square input side (default: the variant's resolution, 224 for lite0)")
    m.add_argument("--dropout", type=float, metavar="P",
                   help="dropout before the new head (default: the variant's)")
    t = p.add_argument_group("training (phase 1: head on the frozen backbone; phase 2: top blocks)")
    t.add_argument("--head-epochs", type=int, default=_D.head_epochs, metavar="N",
                   help=f"phase 1 epochs, at most (default {_D.head_epochs})")
    t.add_argument("--epochs", type=int, default=_D.epochs, metavar="N",
                   help=f"phase 2 (fine-tuning) epochs, at most (default {_D.epochs})")
    t.add_argument("--batch-size", type=int, default=_D.batch_size, metavar="N",
                   help=f"global batch size (default {_D.batch_size})")
    t.add_argument("--learning-rate", type=float, default=_D.learning_rate, metavar="LR",
                   help=f"Adam learning rate of phase 1 (default {_D.learning_rate:g})")
    t.add_argument("--fine-tune-learning-rate", type=float, metavar="LR",
                   help="Adam learning rate of phase 2 (default: --learning-rate / 10)")
    t.add_argument("--fine-tune-blocks", type=_blocks, default=_D.fine_tune_blocks, metavar="N|all",
                   help=f"whole MBConv blocks unfrozen in phase 2, from the top (default "
                        f"{_D.fine_tune_blocks}; lite0 and b0 have 16; 0 skips phase 2)")
    t.add_argument("--patience", type=int, default=_D.patience, metavar="N",
                   help=f"stop a phase after N epochs without a lower validation loss "
                        f"(default {_D.patience}); the best epoch is kept")
    t.add_argument("--label-smoothing", type=float, default=_D.label_smoothing, metavar="E",
                   help=f"label smoothing of the cross-entropy (default {_D.label_smoothing})")
    t.add_argument("--class-weights", choices=[c.value for c in ClassWeights],
                   default=_D.class_weights.value,
                   help="'auto' weighs each class by n / (classes * n_class) (default none)")
    t.add_argument("--seed", type=int, default=_D.seed, help="split, shuffle and augmentation seed")
    d = p.add_argument_group("data")
    d.add_argument("--val-split", type=float, default=_D.val_split, metavar="F",
                   help=f"share of each class for validation (default {_D.val_split})")
    d.add_argument("--test-split", type=float, default=_D.test_split, metavar="F",
                   help=f"share of each class for the test report (default {_D.test_split})")
    d.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no random-resized crop, flip or colour jitter")
    d.add_argument("--no-flip", dest="flip", action="store_false",
                   help="no horizontal flips (for text, digits, arrows: anything flips change)")
    d.add_argument("--min-crop-area", type=float, default=_D.min_crop_area, metavar="F",
                   help=f"random-resized crop keeps at least this share of the image "
                        f"(default {_D.min_crop_area})")
    q = p.add_argument_group("export").add_mutually_exclusive_group()
    q.add_argument("--int8", dest="precision", action="store_const", const=QuantPrecision.INT8,
                   help="full-integer int8 calibrated on training images (default)")
    q.add_argument("--float16", dest="precision", action="store_const", const=QuantPrecision.FP16,
                   help="float16 instead of int8")
    e = p.add_argument_group("int8")
    e.add_argument("--recipe", metavar="NAME",
                   help="the converter's int8 recipe: 'ptq' or steps joined with '+' "
                        f"(default {DEFAULT_RECIPE}, the converter's default)")
    e.add_argument("--qat", action="store_true",
                   help="fine-tune quantisation-aware (tfmot, distilled from the trained float "
                        "model on training images) before the int8 export: adds the converter's "
                        "'qat' step to the recipe")
    e.add_argument("--num-calibration", type=int, default=_D.num_calibration, metavar="N",
                   help=f"training images used to calibrate int8 (default {_D.num_calibration})")
    r = p.add_argument_group("run")
    r.add_argument("--output", required=True, metavar="DIR",
                   help="the run's folder: split, checkpoints, weights, models, report")
    r.add_argument("--strategy", choices=[s.value for s in Strategy], default=Strategy.AUTO.value,
                   help="tf.distribute: mirrored = all local GPUs; multi-worker = the cluster "
                        "in TF_CONFIG; auto picks (default)")
    r.add_argument("--resume", action="store_true",
                   help="continue the run in --output from its last checkpoint")
    r.add_argument("--overwrite", action="store_true",
                   help="start again in an --output that holds an earlier run")
    r.add_argument("--android-assets", metavar="DIR",
                   help="also write the int8 model as DIR/model.tflite for the Android demo")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--verbose", action="store_true", help="show TensorFlow's own logs")
    return p


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    """The API options for parsed CLI arguments.

    Raises:
        TrainingError: DATA missing without --resume, or an invalid value.
    """
    from .options import TrainingError  # noqa: PLC0415

    if not args.data and not args.resume:
        raise TrainingError("DATA is required: a folder of class sub-folders or a CSV")
    if args.data and not os.path.exists(args.data):
        raise TrainingError(f"{args.data}: no such folder or CSV file")
    opts = TrainOptions(
        data=args.data or "", output=args.output, model=args.model, weights=args.weights,
        input_size=args.input_size, epochs=args.epochs, head_epochs=args.head_epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        fine_tune_blocks=args.fine_tune_blocks, val_split=args.val_split,
        test_split=args.test_split, augment=args.augment, min_crop_area=args.min_crop_area,
        flip=args.flip,
        class_weights=args.class_weights, label_smoothing=args.label_smoothing,
        dropout=args.dropout, patience=args.patience, seed=args.seed,
        precision=args.precision or QuantPrecision.INT8, recipe=args.recipe, qat=args.qat,
        num_calibration=args.num_calibration, strategy=args.strategy, resume=args.resume,
        overwrite=args.overwrite, android_assets=args.android_assets, progress=not args.quiet)
    opts.validate()
    return opts


def summary(report: Any) -> str:
    q = report.quantized
    lines = []
    if report.float_accuracy is not None:
        lines.append(f"{OK} fp32 {report.evaluated_on} accuracy {100 * report.float_accuracy:.1f} % "
                     f"on {report.images[report.evaluated_on]} images (EdgeClassifier)")
        drop = 100 * (report.float_accuracy - report.quantized_accuracy)
        mark = OK if drop <= 1.0 else BAD
        lines.append(f"{mark} {q} {report.evaluated_on} accuracy {100 * report.quantized_accuracy:.1f} %"
                     f", top-1 agreement with fp32 {100 * report.agreement:.1f} %")
    lines += [f"{BAD} {one_line(w)}" for w in report.warnings]
    lines += [f"{OK} wrote {p}" for p in report.files.values()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: 0 when done, 2 for user errors (one line on stderr), 130 after
    Ctrl-C or SIGTERM (the last checkpoint kept, no partial file left)."""
    from .options import TrainingError  # noqa: PLC0415

    args = build_parser().parse_args(argv)
    try:
        opts = options_from_args(args)
    except TrainingError as e:
        return fail(PROG, e)
    from .train import train  # noqa: PLC0415

    def log(text: str) -> None:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)

    try:
        with quiet_native_logs(args.verbose), warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = show_warnings_once(PROG, _OUR_PACKAGES, args.verbose)
            report = run_interruptible(lambda: train(opts, log), PROG)
    except (ValueError, LookupError, OSError) as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return fail(PROG, lines[0] if lines else type(e).__name__)
    if report.files:
        print(summary(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
