"""Test-split metrics (pure numpy), the training report and its Markdown / PNG renderings."""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

#: int8 may lose at most this much test accuracy (percentage points) before the report warns.
MAX_INT8_DROP_PT = 1.0


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``m[t, p]``: images of class ``t`` predicted as ``p``."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(truth, np.int64), np.asarray(pred, np.int64)), 1)
    return m


def precision_recall(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision (of predictions) and recall (of true images); NaN where undefined."""
    tp = np.diag(m).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / m.sum(axis=0), tp / m.sum(axis=1)


@dataclass
class ClassMetrics:
    name: str
    images: int
    float_precision: float | None
    float_recall: float | None
    quantized_precision: float | None
    quantized_recall: float | None


@dataclass
class TrainReport:
    """What a training run produced, with the numbers measured on the test split."""

    model: str
    input_size: int
    classes: list[str]
    images: dict  # split → count
    skipped: list[str]
    strategy: str
    history: list  # one dict per epoch
    best: dict
    seconds_per_epoch: dict  # phase → mean seconds of training, without the first batch's tracing
    cpu_seconds_per_epoch: dict  # phase → mean CPU seconds (all threads) per epoch
    evaluated_on: str  # 'test' (or 'val' when there is no test split)
    float_accuracy: float | None = None  # fp32 .tflite through EdgeClassifier
    quantized: str = "int8"
    recipe: str | None = None  # the int8 recipe the converter applied (its report's name)
    quantized_accuracy: float | None = None  # int8 (or fp16) .tflite through EdgeClassifier
    agreement: float | None = None  # share of images where both give the same top-1
    per_class: list = field(default_factory=list)
    confusion_float: list = field(default_factory=list)
    confusion_quantized: list = field(default_factory=list)
    conversion: dict = field(default_factory=dict)  # the converter's int8 report
    warnings: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # what → path
    cpu: str = ""  # edge.sysinfo.cpu_line(): model, cores, load average, SIMD flags

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def evaluate_predictions(classes: Sequence[str], truth: np.ndarray, pred_float: np.ndarray,
                         pred_quantized: np.ndarray) -> dict:
    """Accuracies, agreement, per-class precision/recall and both confusion matrices."""
    k = len(classes)
    mf, mq = confusion_matrix(truth, pred_float, k), confusion_matrix(truth, pred_quantized, k)
    pf, rf = precision_recall(mf)
    pq, rq = precision_recall(mq)

    def num(x: float) -> float | None:
        return None if np.isnan(x) else round(float(x), 4)
    per_class = [asdict(ClassMetrics(c, int(mf[i].sum()), num(pf[i]), num(rf[i]), num(pq[i]),
                                     num(rq[i]))) for i, c in enumerate(classes)]
    return dict(float_accuracy=float(np.mean(pred_float == truth)),
                quantized_accuracy=float(np.mean(pred_quantized == truth)),
                agreement=float(np.mean(pred_float == pred_quantized)),
                per_class=per_class, confusion_float=mf.tolist(), confusion_quantized=mq.tolist())


def int8_advice(report: TrainReport) -> str | None:
    """The warning when the quantised model loses more than :data:`MAX_INT8_DROP_PT`."""
    if report.float_accuracy is None or report.quantized_accuracy is None:
        return None
    drop = 100 * (report.float_accuracy - report.quantized_accuracy)
    if drop <= MAX_INT8_DROP_PT:
        return None
    if report.quantized != "int8":
        return f"{report.quantized} loses {drop:.1f} pt of test accuracy against fp32"
    steps = (report.recipe or "").split("+")
    tries = [] if "qat" in steps else ["--qat (quantisation-aware fine-tuning)"]
    if "bias-tune" not in steps and "qat" not in steps:
        tries.append("--recipe gptq+bias-correction+bias-tune+range-mse")
    tries.append("more calibration images (--num-calibration)")
    fix = "try " + ", ".join(tries) + ", or ship the fp32/fp16 model"
    return (f"int8 loses {drop:.1f} pt of test accuracy against float "
            f"({100 * report.quantized_accuracy:.1f} % vs {100 * report.float_accuracy:.1f} %"
            f"{f', recipe {report.recipe}' if report.recipe else ''}): {fix}")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def markdown(r: TrainReport, png: str | None) -> str:
    """report.md: the numbers first, then per-class precision/recall and the training log."""
    q = r.quantized
    lines = [f"# Training report: {r.model} ({r.input_size}×{r.input_size}), {len(r.classes)} classes",
             "",
             f"Images: {', '.join(f'{k} {v}' for k, v in r.images.items())}"
             + (f"; {len(r.skipped)} unreadable files skipped" if r.skipped else "") + ".",
             f"Measured through `edge.EdgeClassifier` (the runtime) on the {r.evaluated_on} split.",
             "",
             "| model | accuracy |", "|---|---|",
             f"| fp32 .tflite | {_pct(r.float_accuracy)} |",
             f"| {q} .tflite | {_pct(r.quantized_accuracy)} |",
             f"| fp32 / {q} top-1 agreement | {_pct(r.agreement)} |", ""]
    if r.recipe is not None:
        secs = (r.conversion.get("recipe") or {}).get("seconds")
        lines += [f"int8 recipe applied by the converter: `{r.recipe}`"
                  + ("" if secs is None else f" ({secs:.0f} s)") + ".", ""]
    lines += [f"**Warning:** {w}" for w in r.warnings] + ([""] if r.warnings else [])
    lines += ["## Per class", "",
              f"| class | images | fp32 precision | fp32 recall | {q} precision | {q} recall |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['images']} | {_pct(c['float_precision'])} | "
              f"{_pct(c['float_recall'])} | {_pct(c['quantized_precision'])} | {_pct(c['quantized_recall'])} |"
              for c in r.per_class]
    if png:
        lines += ["", f"![confusion matrices]({png})"]
    lines += ["", "## Training", "", f"Strategy: {r.strategy}. {r.cpu}.",
              "Seconds per epoch (training only, steady state: the first batch's tracing left out): "
              + ", ".join(f"phase {k}: {v:.1f} s wall, {r.cpu_seconds_per_epoch.get(k, 0):.1f} s CPU"
                          for k, v in r.seconds_per_epoch.items()) + ".",
              f"Best: phase {r.best.get('phase')} epoch {r.best.get('epoch')}.", "",
              "| phase | epoch | loss | accuracy | val loss | val accuracy | seconds | CPU seconds |",
              "|---|---|---|---|---|---|---|---|"]
    for h in r.history:
        vl, va = h.get("val_loss"), h.get("val_accuracy")
        lines.append(f"| {h['phase']} | {h['epoch']} | {h['loss']:.4f} | {h['accuracy']:.4f} | "
                     f"{'' if vl is None else f'{vl:.4f}'} | {'' if va is None else f'{va:.4f}'} | "
                     f"{h['seconds']:.1f} | {h.get('cpu_seconds', 0):.1f} |")
    lines += ["", "## Files", ""] + [f"- {k}: `{v}`" for k, v in r.files.items()]
    return "\n".join(lines) + "\n"


def confusion_png(r: TrainReport) -> bytes | None:
    """Both confusion matrices side by side as PNG bytes; None without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure  # noqa: PLC0415
    except ImportError:
        return None
    k = len(r.classes)
    side = min(24.0, 3.0 + 0.45 * k)
    fig = Figure(figsize=(2 * side + 1, side))
    for i, (title, m, acc) in enumerate((("fp32", r.confusion_float, r.float_accuracy),
                                        (r.quantized, r.confusion_quantized, r.quantized_accuracy))):
        ax = fig.add_subplot(1, 2, i + 1)
        m = np.asarray(m)
        ax.imshow(m, cmap="Blues")
        ax.set_title(f"{title}: {_pct(acc)} on the {r.evaluated_on} split")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        if k <= 40:
            ax.set_xticks(range(k), r.classes, rotation=90 if k > 8 else 0)
            ax.set_yticks(range(k), r.classes)
            if k <= 20:
                for (t, p), v in np.ndenumerate(m):
                    if v:
                        ax.text(p, t, str(v), ha="center", va="center", fontsize=8,
                                color="white" if v > m.max() / 2 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
