"""``train(options)``: labelled images → fine-tuned EfficientNet → fp32 and int8 .tflite with the
class names, a measured report, and every file in one folder."""
from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from typing import Callable, Iterable

import numpy as np

from edge.cliutil import write_files_atomic
from edge.variants import PreprocessSpec, preprocess_spec

from . import data as datamod
from .options import DataError, TrainingError, TrainOptions
from .report import TrainReport, confusion_png, evaluate_predictions, int8_advice, markdown

CONFIG = "config.json"
SPLIT = "split.csv"
LABELS = "labels.txt"
CHECKPOINTS = "checkpoints"
#: Final outputs, written together at the end (all or nothing).
OUTPUTS = {"weights": "model.weights.h5", "fp32": "model_fp32.tflite", "int8": "model_int8.tflite",
           "fp16": "model_fp16.tflite", "report_json": "report.json", "report_md": "report.md",
           "confusion": "confusion_matrix.png"}
#: What is re-read from the saved config on --resume (everything that shapes the result).
RUNTIME_FIELDS = ("resume", "overwrite", "progress", "strategy", "android_assets", "output")


def _spec(opts: TrainOptions) -> PreprocessSpec:
    spec = preprocess_spec(opts.model)
    size = opts.input_size or spec.size
    return PreprocessSpec(size, spec.resize_filter, spec.crop_fraction, spec.mean, spec.std)


def _prepare_folder(opts: TrainOptions, writer: bool = True) -> TrainOptions:
    """Check the output folder against --resume/--overwrite; on resume, the saved options.
    Only the ``writer`` (the chief of a multi-worker run) removes an earlier run's files.

    Raises:
        TrainingError: a folder holding another run, or nothing to resume.
    """
    config = os.path.join(opts.output, CONFIG)
    if os.path.isfile(opts.output):
        raise TrainingError(f"--output {opts.output} is a file; give a folder")
    if opts.resume:
        if not os.path.isfile(config):
            raise TrainingError(f"nothing to resume in {opts.output}: no {CONFIG} (start a new run "
                                "without --resume)")
        with open(config, encoding="utf-8") as f:
            saved = TrainOptions.from_dict(json.load(f))
        if opts.model != saved.model and opts.model != TrainOptions.model:
            raise TrainingError(f"{opts.output} holds a {saved.model} run, not {opts.model}")
        if opts.data and os.path.abspath(opts.data) != os.path.abspath(saved.data):
            raise TrainingError(f"{opts.output} holds a run on {saved.data}, not {opts.data}: "
                                "resume without DATA, or start a new run")
        for name in RUNTIME_FIELDS:
            setattr(saved, name, getattr(opts, name))
        return saved
    opts.data = os.path.abspath(opts.data)  # recorded in config.json, checked on --resume
    if os.path.isfile(config):
        if not opts.overwrite:
            raise TrainingError(f"{opts.output} already holds a training run: pass --resume to "
                                "continue it, --overwrite to start again, or another --output")
        if not writer:
            return opts
        shutil.rmtree(os.path.join(opts.output, CHECKPOINTS), ignore_errors=True)
        for name in [CONFIG, SPLIT, LABELS, *OUTPUTS.values()]:
            if os.path.exists(os.path.join(opts.output, name)):
                os.unlink(os.path.join(opts.output, name))
    return opts


def _clean_stale_temps(folder: str) -> None:
    """Remove ``.NAME.xxxx.tmp`` files a killed run (SIGKILL) may have left behind."""
    for root in (folder, os.path.join(folder, CHECKPOINTS)):
        if os.path.isdir(root):
            for f in os.listdir(root):
                if f.startswith(".") and f.endswith(".tmp"):
                    os.unlink(os.path.join(root, f))


def _progress(enabled: bool, desc: str) -> Callable[[Iterable], Iterable] | None:
    if not enabled:
        return None
    from tqdm import tqdm  # noqa: PLC0415

    return lambda it: tqdm(it, desc=desc, unit="img", file=sys.stderr, leave=False)


def load_split(opts: TrainOptions, log: Callable[[str], None]) -> datamod.LabelledImages:
    """The images of this run and their split: read back on resume, else scanned and split.

    Raises:
        DataError: unusable images (see :func:`training.data.load_images`).
    """
    split_file = os.path.join(opts.output, SPLIT)
    if opts.resume and os.path.isfile(split_file):
        return datamod.from_csv(split_file)
    data = datamod.load_images(opts.data, _progress(opts.progress, "checking images"))
    if data.split:
        datamod.check_given_split(data)
        log(f"using the split given in {opts.data}")
    else:
        data.split = datamod.stratified_split(data.labels, data.classes, opts.val_split,
                                              opts.test_split, opts.seed)
    return data


def train(options: TrainOptions, log: Callable[[str], None] | None = None) -> TrainReport:
    """Fine-tune ``options.model`` on ``options.data`` and write everything to ``options.output``.

    Returns the report (also written as report.json / report.md); ``report.files`` names every
    file written.

    Raises:
        TrainingError: a bad option, an output folder holding another run, a checkpoint of
            another run.
        DataError: no images, one class, a class with too few images, an unreadable CSV.
        converters.weights.WeightsError: weights that cannot be obtained or do not fit.
        calibration.CalibrationError, converters.options.ConversionError: int8 export failed.
    """
    from .distribute import chief_by_tf_config  # noqa: PLC0415

    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    options.validate()
    opts = _prepare_folder(options, writer=chief_by_tf_config())
    data = load_split(opts, log)
    counts = {s: int(sum(1 for x in data.split if x == s)) for s in datamod.SPLITS}
    if counts["train"] == 0:
        raise DataError("no training images left after the split")
    log(f"{len(data)} images, {len(data.classes)} classes: "
        + ", ".join(f"{k} {v}" for k, v in counts.items()))

    from .distribute import describe, is_chief, make_strategy  # noqa: PLC0415

    strategy = make_strategy(opts.strategy)  # before any other TensorFlow op (multi-worker)
    chief = is_chief(strategy)
    from .fit import Splits, run_phases  # noqa: PLC0415
    from .model import build_classifier, default_dropout, load_backbone  # noqa: PLC0415

    spec = _spec(opts)
    import keras  # noqa: PLC0415

    keras.utils.set_random_seed(opts.seed)  # dropout masks (the new head starts at zero)
    with strategy.scope():
        backbone = load_backbone(opts.model, opts.weights, spec.size)
        dropout = default_dropout(opts.model) if opts.dropout is None else opts.dropout
        classifier = build_classifier(backbone, len(data.classes), dropout)
    # Written once the model stands (weights found and fitting): a failed start leaves no run.
    folder = os.path.join(opts.output, CHECKPOINTS)
    if chief:
        os.makedirs(folder, exist_ok=True)
        _clean_stale_temps(opts.output)
        if not opts.resume:
            write_files_atomic({
                os.path.join(opts.output, SPLIT): datamod.split_csv(data, opts.output),
                os.path.join(opts.output, LABELS): ("\n".join(data.classes) + "\n").encode(),
                os.path.join(opts.output, CONFIG): opts.to_json().encode()})
    train_paths, train_labels = data.subset("train")
    val_paths, val_labels = data.subset("val")
    log(f"{opts.model} at {spec.size}×{spec.size}, weights {opts.weights or 'random'}, "
        f"{describe(strategy)}")
    state = run_phases(classifier, backbone,
                       Splits(train_paths, train_labels, val_paths, val_labels, len(data.classes)),
                       opts, spec, strategy, folder, chief, log)

    eval_split = "test" if counts["test"] else "val"
    report = TrainReport(
        model=opts.model, input_size=spec.size, classes=list(data.classes), images=counts,
        skipped=list(data.skipped), strategy=describe(strategy), history=state.history,
        best=state.best, seconds_per_epoch=_per_epoch(state.history, "steady_seconds"),
        cpu_seconds_per_epoch=_per_epoch(state.history, "cpu_seconds"),
        evaluated_on=eval_split, quantized=opts.precision.value,
        recipe=opts.int8_recipe if opts.precision.value == "int8" else None)
    if not chief:
        return report
    return _export(classifier, data, opts, report, eval_split, log)


def _per_epoch(history: list, key: str) -> dict:
    """Mean of ``key`` per phase."""
    out: dict[str, float] = {}
    for phase in sorted({h["phase"] for h in history}):
        s = [h.get(key, h["seconds"]) for h in history if h["phase"] == phase]
        out[str(phase)] = round(float(np.mean(s)), 2)
    return out


def _export(classifier, data, opts: TrainOptions, report: TrainReport, eval_split: str,
            log: Callable[[str], None]) -> TrainReport:
    from edge.sysinfo import cpu_line  # noqa: PLC0415

    from .export import convert_both, keras_weights_bytes, predict_top1  # noqa: PLC0415
    from .model import export_model  # noqa: PLC0415

    flat = export_model(classifier, opts.model, len(data.classes))
    train_paths, _ = data.subset("train")
    log(f"converting to fp32 and {opts.precision.value}"
        + (f" (recipe {opts.int8_recipe})" if opts.int8_recipe else ""))
    fp32, small, conv = convert_both(flat, data.classes, opts, train_paths, opts.progress)
    paths, truth = data.subset(eval_split)
    if eval_split != "test":
        warnings.warn("no test split (--test-split 0): accuracy is measured on the validation "
                      "split, which chose the best epoch, so it is optimistic", UserWarning,
                      stacklevel=2)
    pf = predict_top1(fp32, paths, "testing fp32", opts.progress)
    pq = predict_top1(small, paths, f"testing {opts.precision.value}", opts.progress)
    for k, v in evaluate_predictions(data.classes, truth, pf, pq).items():
        setattr(report, k, v)
    report.conversion = conv.to_dict()
    if getattr(conv, "recipe", None) is not None:  # what the converter applied, not what was asked
        report.recipe = conv.recipe.recipe
    report.cpu = cpu_line()
    advice = int8_advice(report)
    if advice:
        report.warnings.append(advice)
        warnings.warn(advice, UserWarning, stacklevel=2)

    out = opts.output
    names = {k: os.path.join(out, OUTPUTS[k]) for k in ("weights", "fp32", "report_json", "report_md")}
    names[opts.precision.value] = os.path.join(out, OUTPUTS[opts.precision.value])
    png = confusion_png(report)
    if png is not None:
        names["confusion"] = os.path.join(out, OUTPUTS["confusion"])
    else:
        report.warnings.append("no confusion-matrix PNG: matplotlib is not installed")
    if opts.android_assets:
        names["android"] = os.path.join(opts.android_assets, "model.tflite")
    names["labels"] = os.path.join(out, LABELS)
    names["split"] = os.path.join(out, SPLIT)
    report.files = dict(names)
    files = {names["weights"]: keras_weights_bytes(flat), names["fp32"]: fp32,
             names[opts.precision.value]: small,
             names["report_json"]: report.to_json().encode(),
             names["report_md"]: markdown(report, OUTPUTS["confusion"] if png else None).encode()}
    if png is not None:
        files[names["confusion"]] = png
    if opts.android_assets:
        files[names["android"]] = small
    write_files_atomic(files)
    return report
