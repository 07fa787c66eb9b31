"""Compare a reference model with candidate .tflite models on a folder of images.

Per candidate: top-1/top-5 accuracy (when the images are labelled), top-1 agreement with the
reference (strict, and with exact ties counted), agreement where the reference is confident,
reference top-1 inside the candidate's top-5, mean KL divergence and latency. Every model
preprocesses each image with its own metadata spec through :func:`edge.preprocess` — the code
the runtime uses. Runs shard (``shard=(i, n)``) and :func:`merge` back to exactly the numbers
of one unsharded run, because a result keeps one record per image and every figure is
recomputed from the records (integer counts, ``math.fsum`` sums).

Runtime-only (numpy, Pillow, LiteRT, tqdm). A Keras reference enters as any callable that maps
a batch of preprocessed uint8 pixels (NxHxWx3) to probabilities.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from . import quant
from .classifier import EdgeClassifier
from .metadata import ModelSource
from .preprocess import ImageDecodeError, preprocess
from .sysinfo import usable_cores
from .variants import PreprocessSpec

FORMAT = "efficientnet-edge-evaluate/1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
#: Reference probability at or above which the reference counts as confident.
CONFIDENT = 0.5
#: Added to both distributions inside the log of the KL divergence.
KL_EPSILON = 1e-6
TOP_K = 5

#: A callable reference: NxHxWx3 uint8 pixels -> NxC probabilities (or logits).
ReferenceFn = Callable[[np.ndarray], np.ndarray]
Reference = Union[ModelSource, ReferenceFn]


class EvaluateError(ValueError):
    """Evaluation cannot run or merge as asked (no images, mismatched models, bad shards…)."""


# -- images and labels ------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSet:
    """The images of one evaluation, in a fixed order, with their label names if any.

    ``paths`` are relative to ``root`` (so shards run on other machines merge); ``labels`` is
    None for an unlabelled set. ``kind``: 'class-folders', 'csv', 'folder' or 'files'.
    """

    root: str
    paths: tuple[str, ...]
    labels: tuple[str | None, ...] | None
    kind: str
    source: str
    note: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        """sha256 of the relative paths and labels: equal sets on any machine give equal values."""
        h = hashlib.sha256()
        for i, p in enumerate(self.paths):
            label = self.labels[i] if self.labels is not None else None
            h.update(f"{p}\t{'' if label is None else label}\n".encode())
        return h.hexdigest()

    def full_path(self, i: int) -> str:
        return os.path.join(self.root, self.paths[i])


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def _walk(root: str) -> list[str]:
    out = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.relpath(os.path.join(folder, f), root) for f in sorted(files) if _is_image(f)]
    return sorted(out, key=lambda p: p.split(os.sep))


def _read_csv(path: str) -> ImageSet:
    root = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise EvaluateError(f"cannot read {path}: {e}") from e
    if rows and rows[0][0].strip().lower() in ("path", "file", "filename", "image"):
        rows = rows[1:]
    if not rows:
        raise EvaluateError(f"{path} lists no images (expected rows of path,label)")
    paths, labels = [], []
    for n, r in enumerate(rows, 1):
        if len(r) > 2:
            raise EvaluateError(f"{path} row {n}: expected path,label, got {len(r)} columns")
        p = r[0].strip()
        paths.append(os.path.relpath(os.path.join(root, p), root) if not os.path.isabs(p) else p)
        labels.append(r[1].strip() or None if len(r) > 1 else None)
    has = any(v is not None for v in labels)
    return ImageSet(root, tuple(paths), tuple(labels) if has else None, "csv", path)


def image_set(source: str | os.PathLike | Sequence[str] | ImageSet) -> ImageSet:
    """The images to evaluate, from a folder, a CSV of ``path,label`` rows, a glob or a list.

    A folder whose images all sit in sub-folders is labelled by the first sub-folder's name
    (``cats/1.jpg`` -> ``cats``); images directly inside the folder make it unlabelled. A CSV
    may have a header row (``path,label``); relative paths are relative to the CSV's folder and
    rows without a label count as unlabelled. Images are sorted by path (CSV: file order).

    Raises:
        FileNotFoundError: no such folder or CSV.
        EvaluateError: no images found, or a malformed CSV.
    """
    if isinstance(source, ImageSet):
        return source
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if os.path.isdir(text):
            root = os.path.abspath(text)
            paths = _walk(root)
            if not paths:
                raise EvaluateError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {text}")
            nested = [p for p in paths if os.sep in p]
            if nested and len(nested) == len(paths):
                labels = tuple(p.split(os.sep, 1)[0] for p in paths)
                return ImageSet(root, tuple(paths), labels, "class-folders", text)
            note = (f"{len(paths) - len(nested)} images sit directly in {text} and "
                    f"{len(nested)} in sub-folders: no labels taken from folder names"
                    if nested else "")
            return ImageSet(root, tuple(paths), None, "folder", text, note)
        if os.path.isfile(text) and text.lower().endswith(".csv"):
            return _read_csv(text)
        if any(ch in text for ch in "*?["):
            found = sorted(f for f in glob.glob(text, recursive=True) if _is_image(f))
            if not found:
                raise EvaluateError(f"no images match {text}")
            return _files(found, text)
        if os.path.isfile(text):
            return _files([text], text)
        raise FileNotFoundError(f"no such folder or CSV: {text}")
    if isinstance(source, np.ndarray) or not all(isinstance(p, (str, os.PathLike)) for p in source):
        raise EvaluateError("images must be a folder, a CSV, a glob or a list of image files "
                            "(arrays of pixels: call the models directly, or edge.layers)")
    items = [os.fspath(p) for p in source]
    if not items:
        raise EvaluateError("no images given")
    return _files(items, f"{len(items)} files")


def _files(paths: Sequence[str], source: str) -> ImageSet:
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute])
    return ImageSet(root, tuple(os.path.relpath(p, root) for p in absolute), None, "files", source)


def _norm(name: str) -> str:
    return " ".join(name.casefold().replace("_", " ").replace("-", " ").split())


@dataclass(frozen=True)
class LabelMatch:
    """How label names map to class indices; ``unmatched`` says why each other name did not."""

    index: dict[str, int]
    unmatched: dict[str, str]

    def message(self, what: str = "label") -> str:
        """One line for the user: how many names matched, and the first few that did not."""
        n, bad = len(self.index), len(self.unmatched)
        if not bad:
            return f"all {n} {what} names match the model's classes"
        shown = "; ".join(f"{k!r} ({v})" for k, v in list(self.unmatched.items())[:5])
        more = f"; and {bad - 5} more" if bad > 5 else ""
        head = (f"none of the {bad} {what} names matches a class of the model" if not n else
                f"{bad} of {n + bad} {what} names match no class of the model")
        return (f"{head}: {shown}{more}. Name them as the model's labels (case-insensitive, _ for "
                f"space) or by class index; their images count for agreement only")


def match_labels(names: Iterable[str], class_names: Sequence[str] | None,
                 num_classes: int) -> LabelMatch:
    """Map label names to class indices: an integer index, or a class name (case-insensitive,
    ``_``/``-`` read as spaces). A name shared by several classes is ambiguous (not matched)."""
    by_name: dict[str, list[int]] = {}
    for i, c in enumerate(class_names or []):
        by_name.setdefault(_norm(c), []).append(i)
    index: dict[str, int] = {}
    unmatched: dict[str, str] = {}
    for name in dict.fromkeys(names):
        text = name.strip()
        if text.isdigit():
            k = int(text)
            if k < num_classes:
                index[name] = k
            else:
                unmatched[name] = f"index out of range 0-{num_classes - 1}"
            continue
        hits = by_name.get(_norm(text), [])
        if len(hits) == 1:
            index[name] = hits[0]
        elif hits:
            unmatched[name] = f"ambiguous: classes {', '.join(map(str, hits))}; use the index"
        else:
            unmatched[name] = "no class of this name" if class_names else "the model has no labels"
    return LabelMatch(index, unmatched)


# -- pure per-image comparison ----------------------------------------------------------------
def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = KL_EPSILON) -> float:
    """KL(p ‖ q) in nats, smoothed so that a zero in ``q`` stays finite.

    Both are clipped at 0 and renormalised to sum 1, then smoothed as
    ``p' = (p + eps) / (1 + C·eps)`` (C classes; still sums to 1), and
    ``KL = Σ p'·(ln p' − ln q')`` in float64. Never negative.
    """
    out = []
    for v in (p, q):
        v = np.clip(np.asarray(v, dtype=np.float64).reshape(-1), 0, None)
        total = v.sum()
        v = v / total if total > 0 else np.full_like(v, 1.0 / v.size)
        out.append((v + eps) / (1.0 + v.size * eps))
    p, q = out
    return float(np.sum(p * (np.log(p) - np.log(q))))


def output_grid(scores: np.ndarray, quantization: tuple[float, int, Any] | None) -> np.ndarray:
    """``scores`` rounded to a quantised output's grid (scale, zero point, integer dtype), as the
    model would emit them: what a perfect model with this output type would give."""
    if not quantization:
        return np.asarray(scores)
    scale, zp, dtype = quantization
    return quant.dequantize(quant.quantize(scores, scale, zp, dtype), scale, zp)


def top(scores: np.ndarray, k: int = TOP_K) -> list[list]:
    """``[[indices], [scores]]`` of the ``k`` best classes (ties: lower index first)."""
    pairs = quant.top_k(scores, k)
    return [[i for i, _ in pairs], [s for _, s in pairs]]


def compare(ref: np.ndarray, cand: np.ndarray, eps: float = KL_EPSILON,
            quantization: tuple[float, int, Any] | None = None) -> dict:
    """One image, one candidate: its top-5 and how it agrees with the reference's scores.

    ``agree``: same top-1 (ties broken to the lower index, as :func:`edge.quant.top_k`);
    ``tie``: the candidate's top score is shared by (or belongs to) the reference's top-1 class;
    ``in5``: the reference's top-1 is among the candidate's top-5; ``kl``: KL(ref ‖ cand);
    ``kl_floor``: KL(ref ‖ ref on the candidate's output grid), the part of ``kl`` no
    candidate with that quantised output (``quantization``) can avoid (None: float output);
    ``cap``: whether the reference's own scores, on that grid, keep their top-1 (a near-tie
    rounded to a tie goes to the lower index): the strict agreement a perfect model with that
    output scores (None: float output).
    """
    r1 = quant.top_k(ref, 1)[0][0]
    t = top(cand)
    cand = np.asarray(cand).reshape(-1)
    floor = cap = None
    if quantization:
        grid = output_grid(ref, quantization)
        floor = kl_divergence(ref, grid, eps)
        cap = quant.top_k(grid, 1)[0][0] == r1
    return {"top": t, "agree": t[0][0] == r1, "tie": bool(cand[r1] == cand.max()),
            "in5": r1 in t[0], "kl": kl_divergence(ref, cand, eps), "kl_floor": floor, "cap": cap}


# -- results ----------------------------------------------------------------------------------
@dataclass
class ModelSummary:
    """One model's figures over the evaluated images (rates in 0-1; None where not defined)."""

    name: str
    images: int
    labelled: int = 0
    top1: float | None = None
    top5: float | None = None
    ms_mean: float | None = None
    ms_p50: float | None = None
    # candidates only
    agree: float | None = None
    agree_ties: float | None = None
    agree_cap: float | None = None  # ``agree`` of the reference rounded to this model's output grid
    confident: int | None = None  # images where the reference's top probability >= threshold
    confident_agree: float | None = None
    ref_in_top5: float | None = None
    kl_mean: float | None = None
    kl_floor: float | None = None  # mean KL of the reference rounded to this model's output grid
    disagreements: int | None = None  # strict top-1 disagreements (rows of the CSV)


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _ms(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return math.fsum(values) / len(values), float(np.median(np.asarray(values, dtype=np.float64)))


def summarize(records: Sequence[dict], names: Sequence[str], confident: float = CONFIDENT
              ) -> tuple[ModelSummary, list[ModelSummary]]:
    """Reference and candidate summaries from per-image records (order does not matter)."""
    n = len(records)
    lab = [r for r in records if r["label"] is not None]
    ref = ModelSummary(names[0], n, len(lab))
    if lab:
        ref.top1 = _rate(sum(r["ref"][0][0] == r["label"] for r in lab), len(lab))
        ref.top5 = _rate(sum(r["label"] in r["ref"][0] for r in lab), len(lab))
    ref.ms_mean, ref.ms_p50 = _ms([r["ref_ms"] for r in records if r.get("ref_ms") is not None])
    conf = [r["ref"][1][0] >= confident for r in records]
    cands = []
    for j, name in enumerate(names[1:]):
        c = [r["cand"][j] for r in records]
        s = ModelSummary(name, n, len(lab))
        if lab:
            s.top1 = _rate(sum(r["cand"][j]["top"][0][0] == r["label"] for r in lab), len(lab))
            s.top5 = _rate(sum(r["label"] in r["cand"][j]["top"][0] for r in lab), len(lab))
        s.ms_mean, s.ms_p50 = _ms([x["ms"] for x in c if x.get("ms") is not None])
        s.agree = _rate(sum(x["agree"] for x in c), n)
        s.agree_ties = _rate(sum(x["agree"] or x["tie"] for x in c), n)
        s.confident = sum(conf)
        s.confident_agree = _rate(sum(x["agree"] for x, k in zip(c, conf) if k), s.confident)
        s.ref_in_top5 = _rate(sum(x["in5"] for x in c), n)
        s.kl_mean = math.fsum(x["kl"] for x in c) / n if n else None
        floors = [x["kl_floor"] for x in c if x.get("kl_floor") is not None]
        s.kl_floor = math.fsum(floors) / len(floors) if floors and len(floors) == n else None
        caps = [x["cap"] for x in c if x.get("cap") is not None]
        s.agree_cap = _rate(sum(caps), n) if caps and len(caps) == n else None
        s.disagreements = sum(not x["agree"] for x in c)
        cands.append(s)
    return ref, cands


def agreement_summary(reference: np.ndarray, candidate: np.ndarray,
                      quantization: tuple[float, int, Any] | None = None,
                      confident: float = CONFIDENT) -> ModelSummary:
    """The agreement figures of a candidate's scores against a reference's, image by image
    (both N × classes); ``quantization``: the candidate's output grid, for the KL floor."""
    records = [{"label": None, "ref": top(r), "cand": [compare(r, c, quantization=quantization)]}
               for r, c in zip(np.asarray(reference), np.asarray(candidate))]
    return summarize(records, ["reference", "candidate"], confident)[1][0]


@dataclass
class EvalResult:
    """Everything one evaluation (or a merge of shards) measured; JSON round-trips exactly."""

    models: list[dict]  # [{name, source, sha256}], reference first
    images: dict  # source, kind, fingerprint, total, shard [i, n], evaluated, failed, note
    labels: dict  # labelled, matched, unmatched {name: why}, message
    options: dict  # confident, kl_epsilon, draft, delegate
    class_names: list[str] | None
    records: list[dict]
    reference: ModelSummary = field(init=False)
    candidates: list[ModelSummary] = field(init=False)

    def __post_init__(self) -> None:
        self.records.sort(key=lambda r: r["i"])
        self.reference, self.candidates = summarize(
            self.records, [m["name"] for m in self.models], self.options["confident"])

    # -- (de)serialisation
    def to_dict(self) -> dict:
        return {"format": FORMAT, "models": self.models, "images": self.images,
                "labels": self.labels, "options": self.options,
                "summary": {"reference": asdict(self.reference),
                            "candidates": [asdict(c) for c in self.candidates]},
                "class_names": self.class_names, "records": self.records}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping) -> "EvalResult":
        """Raises: EvaluateError: not an ``efficientnet-evaluate`` result."""
        if not isinstance(d, Mapping) or d.get("format") != FORMAT:
            raise EvaluateError(f"not an efficientnet-evaluate result (format {FORMAT!r})")
        try:
            return cls(list(d["models"]), dict(d["images"]), dict(d["labels"]),
                       dict(d["options"]), d.get("class_names"), list(d["records"]))
        except (KeyError, TypeError, IndexError) as e:
            raise EvaluateError(f"malformed efficientnet-evaluate result: {e!r}") from e

    @classmethod
    def load(cls, path: str | os.PathLike) -> "EvalResult":
        """Raises: FileNotFoundError; EvaluateError: unreadable or not a result."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise EvaluateError(f"{os.fspath(path)} is not JSON: {e}") from e
        return cls.from_dict(d)

    # -- human output
    def _label(self, i: int) -> str:
        names = self.class_names
        return names[i] if names and 0 <= i < len(names) else str(i)

    def table(self) -> str:
        """The printed summary: one row per model, reference first."""
        im = self.images
        shard = f", shard {im['shard'][0]}/{im['shard'][1]}" if im["shard"][1] > 1 else ""
        lab = f", {self.reference.labelled} labelled" if self.reference.labelled else ""
        lines = [f"{im['evaluated']} images from {im['source']}{shard}{lab}"
                 + (f", {len(im['failed'])} failed to decode" if im["failed"] else "")]
        pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        head = (f"{'model':<32} {'top-1':>6} {'top-5':>6} {'agree (cap)':>15} {'+ties':>6} "
                f"{'confident (n)':>14} {'ref in top-5':>12} {'KL (floor)':>15} {'ms/img':>7}")
        lines.append(head)
        r = self.reference
        ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        lines.append(f"{(r.name + ' (ref)')[:32]:<32} {pct(r.top1):>6} {pct(r.top5):>6} {'-':>15} "
                     f"{'-':>6} {'-':>14} {'-':>12} {'-':>15} {ms(r.ms_mean):>7}")
        for c in self.candidates:
            conf = f"{pct(c.confident_agree)} ({c.confident})"
            kl = "-" if c.kl_mean is None else f"{c.kl_mean:.3f}"
            if c.kl_floor is not None:
                kl += f" ({c.kl_floor:.3f})"
            agree = pct(c.agree) + ("" if c.agree_cap is None else f" ({pct(c.agree_cap)})")
            lines.append(f"{c.name[:32]:<32} {pct(c.top1):>6} {pct(c.top5):>6} {agree:>15} "
                         f"{pct(c.agree_ties):>6} {conf:>14} {pct(c.ref_in_top5):>12} {kl:>15} "
                         f"{ms(c.ms_mean):>7}")
        lines.append(f"agree: same top-1 as the reference (cap: the reference's own scores rounded "
                     f"to the candidate's quantised output, near-ties broken to the lower index: the "
                     f"most any model with that output scores); +ties: also when the candidate's top "
                     f"score is shared by the reference's top-1 class; confident: where the "
                     f"reference's p >= {self.options['confident']}; KL(ref||candidate) in nats, "
                     f"eps {self.options['kl_epsilon']:g}; floor: KL of the reference rounded to the "
                     f"candidate's quantised output (what even a perfect int8 model scores)")
        return "\n".join(lines)

    def disagreements_csv(self) -> str:
        """One row per image and candidate whose top-1 differs from the reference's (strict)."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        cols = ["image", "label", "candidate", "agrees_with_ties", "kl"]
        for who in ("ref", "cand"):
            for k in (1, 2, 3):
                cols += [f"{who}_{k}", f"{who}_{k}_index", f"{who}_{k}_score"]
        w.writerow(cols)
        names = [m["name"] for m in self.models]
        for r in self.records:
            for j, c in enumerate(r["cand"]):
                if c["agree"]:
                    continue
                label = "" if r["label"] is None else self._label(r["label"])
                row = [r["path"], label, names[j + 1], int(c["tie"]), f"{c['kl']:.6g}"]
                for t in (r["ref"], c["top"]):
                    for k in range(3):
                        if k < len(t[0]):
                            row += [self._label(t[0][k]), t[0][k], f"{t[1][k]:.6g}"]
                        else:
                            row += ["", "", ""]
                w.writerow(row)
        return out.getvalue()

    def write_json(self, path: str | os.PathLike) -> None:
        _write(path, self.to_json().encode())

    def write_disagreements(self, path: str | os.PathLike) -> None:
        _write(path, self.disagreements_csv().encode())


def _write(path: str | os.PathLike, data: bytes) -> None:
    from .cliutil import write_atomic  # noqa: PLC0415

    write_atomic(os.fspath(path), data)


# -- options and models -----------------------------------------------------------------------
@dataclass(frozen=True)
class EvalOptions:
    """How to run an evaluation.

    ``shard=(i, n)`` evaluates every n-th image starting at the i-th (1-based). ``workers``
    threads decode ``batch_size`` images at a time (Pillow releases the GIL), then the models
    run one image at a time on ``num_threads`` interpreter threads, so the latency is inference
    alone: input mapping, invoke and output dequantisation, after one untimed warm-up run.
    """

    confident: float = CONFIDENT
    kl_epsilon: float = KL_EPSILON
    batch_size: int = 32
    workers: int | None = None
    num_threads: int | None = None
    delegate: str = "xnnpack"
    draft: bool = True
    shard: tuple[int, int] = (1, 1)
    progress: bool = False

    def validate(self) -> None:
        """Raises: ValueError naming the bad option."""
        i, n = self.shard
        if not (isinstance(i, int) and isinstance(n, int) and 1 <= i <= n):
            raise ValueError(f"shard must be (i, n) with 1 <= i <= n, got {self.shard}")
        if not 0 <= self.confident <= 1:
            raise ValueError(f"confident must be in [0, 1], got {self.confident}")
        if not self.kl_epsilon > 0:
            raise ValueError(f"kl_epsilon must be > 0, got {self.kl_epsilon}")
        if self.batch_size < 1 or (self.workers is not None and self.workers < 1):
            raise ValueError("batch_size and workers must be >= 1")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError("num_threads must be >= 1")


class _Runner:
    """One model of the comparison: a .tflite file (EdgeClassifier) or a callable."""

    def __init__(self, model: Reference, name: str, spec: PreprocessSpec | None,
                 options: EvalOptions):
        self.name, self.sha256, self.fn, self.clf = name, None, None, None
        if callable(model) and not isinstance(model, (str, os.PathLike, bytes, bytearray)):
            if spec is None:
                raise EvaluateError(f"{name}: a callable reference needs its preprocessing spec "
                                    "(reference_spec=edge.preprocess_spec('lite0'), for example)")
            self.fn, self.spec, self.labels, self.source = model, spec, None, "callable"
            self.quantization = None
            self.num_classes = None
            self.run([np.zeros((spec.size, spec.size, 3), np.uint8)])  # warm-up (tracing), untimed
            return
        self.clf = EdgeClassifier(model, delegate=options.delegate, num_threads=options.num_threads,
                                  top_k=None, draft=options.draft)
        data = model if isinstance(model, (bytes, bytearray)) else open(os.fspath(model), "rb").read()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.source = "<bytes>" if isinstance(model, (bytes, bytearray)) else os.fspath(model)
        self.spec, self.labels = self.clf.spec, self.clf.labels
        self.quantization = output_quantization(data)
        warm = np.zeros((self.spec.size, self.spec.size, 3), np.uint8)
        self.num_classes = int(self.clf.scores(warm).size)

    def run(self, pixels: list[np.ndarray]) -> tuple[list[np.ndarray], list[float]]:
        """Probabilities and milliseconds for each image of a batch."""
        if self.clf is not None:
            scores, ms = [], []
            for px in pixels:
                t0 = time.perf_counter()
                scores.append(self.clf.scores(px))
                ms.append((time.perf_counter() - t0) * 1000.0)
            return scores, ms
        t0 = time.perf_counter()
        out = np.asarray(self.fn(np.stack(pixels)), dtype=np.float32)
        per = (time.perf_counter() - t0) * 1000.0 / len(pixels)
        if out.ndim != 2 or out.shape[0] != len(pixels):
            raise EvaluateError(f"{self.name} returned shape {out.shape} for {len(pixels)} images; "
                                "expected (images, classes)")
        if self.num_classes is None:
            self.num_classes = int(out.shape[1])
        rows = [r if quant.looks_like_probabilities(r) else quant.softmax(r) for r in out]
        return rows, [per] * len(pixels)

    def info(self) -> dict:
        return {"name": self.name, "source": self.source, "sha256": self.sha256}

    def close(self) -> None:
        if self.clf is not None:
            self.clf.close()


def output_quantization(data: bytes) -> tuple[float, int, Any] | None:
    """(scale, zero point, dtype) of a model's quantised output tensor, or None (float output)."""
    from .backends import load_backend  # noqa: PLC0415

    try:
        out = load_backend().Interpreter(model_content=data).get_output_details()[0]
    except (ValueError, RuntimeError):
        return None
    scale, zp = out["quantization"]
    dtype = np.dtype(out["dtype"])
    return (float(scale), int(zp), dtype) if scale and np.issubdtype(dtype, np.integer) else None


def _names(candidates: Sequence[ModelSource] | Mapping[str, ModelSource]) -> list[tuple[str, Any]]:
    if isinstance(candidates, Mapping):
        return [(str(k), v) for k, v in candidates.items()]
    items = list(candidates)
    paths = [os.fspath(c) if isinstance(c, (str, os.PathLike)) else None for c in items]
    base = [os.path.basename(p) if p else f"candidate{i + 1}" for i, p in enumerate(paths)]
    return [(b if base.count(b) == 1 else (paths[i] or b), c) for i, (b, c) in enumerate(zip(base, items))]


def _decode(path: str, specs: list[PreprocessSpec], draft: bool) -> list[np.ndarray] | str:
    try:
        return [preprocess(path, s, draft=draft) for s in specs]
    except (ImageDecodeError, OSError) as e:  # FileNotFoundError is an OSError
        msg = " ".join(str(e).split()) or type(e).__name__
        for prefix in (f"cannot decode image {path}: ", f"no such image: {path}"):
            if msg.startswith(prefix):  # the caller names the file already
                msg = msg[len(prefix):] or "no such file"
        return msg.replace(f" <_io.BufferedReader name={path!r}>", "")


# -- the evaluation ---------------------------------------------------------------------------
def evaluate(reference: Reference, candidates: Sequence[ModelSource] | Mapping[str, ModelSource],
             images: ImageSet | str | os.PathLike | Sequence[str],
             options: EvalOptions | None = None, *, reference_spec: PreprocessSpec | None = None,
             reference_name: str | None = None, class_names: Sequence[str] | None = None
             ) -> EvalResult:
    """Compare ``candidates`` with ``reference`` on ``images``.

    Args:
        reference: a .tflite path or bytes, or a callable mapping NxHxWx3 uint8 pixels
            (preprocessed per ``reference_spec``) to NxC probabilities — e.g. a Keras model's
            ``predict``.
        candidates: .tflite paths or bytes (a mapping names them; else their file names).
        images: an :class:`ImageSet`, a folder (class sub-folders give labels), a CSV of
            ``path,label`` rows, a glob, or a list of files.
        options: see :class:`EvalOptions`.
        reference_spec: preprocessing of a callable reference (a .tflite one uses its metadata).
        reference_name: display name (default: the file name, or 'reference').
        class_names: label names for matching folder/CSV labels and for the CSV, in class
            order (default: the first model whose metadata has labels).

    Raises:
        FileNotFoundError: a model, folder or CSV that does not exist.
        EvaluateError: no candidates, no images, models with different class counts, a
            callable without ``reference_spec``, or every image failed to decode.
        edge.ModelLoadError, edge.BackendUnavailableError, edge.DelegateUnavailableError: a
            model the runtime cannot load.
        ValueError: bad options.
    """
    options = options or EvalOptions()
    options.validate()
    cands = _names(candidates)
    if not cands:
        raise EvaluateError("no candidate models to evaluate")
    iset = image_set(images)
    ref_name = reference_name or (os.path.basename(os.fspath(reference))
                                  if isinstance(reference, (str, os.PathLike)) else "reference")
    runners: list[_Runner] = []
    try:
        runners.append(_Runner(reference, ref_name, reference_spec, options))
        runners += [_Runner(src, name, None, options) for name, src in cands]
        return _run(runners, iset, options, class_names)
    finally:
        for r in runners:
            r.close()


def _label_indices(iset: ImageSet, runners: list[_Runner], class_names, num_classes: int
                   ) -> tuple[list[int | None], dict, list[str] | None]:
    names = list(class_names) if class_names is not None else next(
        (r.labels for r in runners if r.labels), None)
    info: dict = {"labelled": iset.labels is not None, "unmatched": {}, "message": ""}
    if iset.labels is None:
        return [None] * len(iset), info, names
    m = match_labels([v for v in iset.labels if v is not None], names, num_classes)
    idx = [m.index.get(v) if v is not None else None for v in iset.labels]
    what = "folder" if iset.kind == "class-folders" else "label"
    info.update(unmatched=m.unmatched, message=m.message(what))
    return idx, info, names


def _run(runners: list[_Runner], iset: ImageSet, options: EvalOptions, class_names) -> EvalResult:
    counts = {r.num_classes for r in runners if r.num_classes is not None}
    if len(counts) > 1:
        raise EvaluateError("the models have different numbers of classes: " + ", ".join(
            f"{r.name} {r.num_classes}" for r in runners if r.num_classes is not None))
    num_classes = counts.pop() if counts else (len(class_names) if class_names else 0)
    labels, label_info, names = _label_indices(iset, runners, class_names, num_classes or 10 ** 9)
    specs: list[PreprocessSpec] = []
    for r in runners:
        if r.spec not in specs:
            specs.append(r.spec)
    which = [specs.index(r.spec) for r in runners]
    i, n = options.shard
    todo = list(range(i - 1, len(iset), n))
    failed: list[list] = []
    records: list[dict] = []
    workers = options.workers or usable_cores()
    bar = None
    if options.progress:
        from tqdm import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(todo), unit="img", desc="evaluating", file=sys.stderr, leave=False)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
            for start in range(0, len(todo), options.batch_size):
                chunk = todo[start:start + options.batch_size]
                decoded = list(pool.map(lambda k: _decode(iset.full_path(k), specs, options.draft),
                                        chunk))
                ok = [(k, d) for k, d in zip(chunk, decoded) if not isinstance(d, str)]
                failed += [[iset.paths[k], d] for k, d in zip(chunk, decoded) if isinstance(d, str)]
                if ok:
                    outs = [r.run([d[which[j]] for _, d in ok]) for j, r in enumerate(runners)]
                    for row, (k, _) in enumerate(ok):
                        ref = outs[0][0][row]
                        rec = {"i": k, "path": iset.paths[k], "label": labels[k], "ref": top(ref),
                               "ref_ms": outs[0][1][row], "cand": []}
                        for r, (sc, ms) in zip(runners[1:], outs[1:]):
                            c = compare(ref, sc[row], options.kl_epsilon, r.quantization)
                            c["ms"] = ms[row]
                            rec["cand"].append(c)
                        records.append(rec)
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    if not records:
        raise EvaluateError(f"none of the {len(todo)} images could be decoded "
                            f"(first: {failed[0][0]}: {failed[0][1]})" if failed else
                            "this shard holds no images")
    if any(r.num_classes is None for r in runners):
        raise EvaluateError("the reference returned no scores")
    return EvalResult(
        models=[r.info() for r in runners],
        images={"source": iset.source, "kind": iset.kind, "root": iset.root,
                "fingerprint": iset.fingerprint(), "total": len(iset), "shard": [i, n],
                "shards": [i], "evaluated": len(records), "failed": failed, "note": iset.note},
        labels=label_info,
        options={"confident": options.confident, "kl_epsilon": options.kl_epsilon,
                 "draft": options.draft, "delegate": options.delegate,
                 "specs": [r.spec.to_dict() for r in runners]},
        class_names=list(names) if names else None, records=records)


def merge(parts: Sequence[EvalResult | Mapping | str | os.PathLike]) -> EvalResult:
    """Combine shard results into the result of one run over all their images.

    Raises:
        FileNotFoundError: a part file that does not exist.
        EvaluateError: parts of different image sets, models or options; a shard given twice;
            shards missing; or a part that is not an efficientnet-evaluate result.
    """
    loaded = [p if isinstance(p, EvalResult) else
              EvalResult.from_dict(p) if isinstance(p, Mapping) else EvalResult.load(p)
              for p in parts]
    if not loaded:
        raise EvaluateError("nothing to merge")
    first = loaded[0]
    key = lambda r: (r.images["fingerprint"], r.images["total"], r.images["shard"][1])  # noqa: E731
    for r in loaded[1:]:
        if key(r) != key(first):
            raise EvaluateError("the parts are shards of different image sets (or of a different "
                                "number of shards): run every shard with the same images and --shard i/N")
        if [(m["name"], m["sha256"]) for m in r.models] != [(m["name"], m["sha256"]) for m in first.models]:
            raise EvaluateError("the parts compare different models")
        if r.options != first.options:
            raise EvaluateError(f"the parts ran with different options: {r.options} vs {first.options}")
    seen: dict[int, int] = {}
    for r in loaded:
        for s in r.images.get("shards", [r.images["shard"][0]]):
            if s in seen:
                raise EvaluateError(f"shard {s}/{first.images['shard'][1]} is given twice")
            seen[s] = 1
    n = first.images["shard"][1]
    missing = [s for s in range(1, n + 1) if s not in seen]
    if missing:
        raise EvaluateError(f"shards missing: {', '.join(f'{s}/{n}' for s in missing)}")
    records = [rec for r in loaded for rec in r.records]
    failed = sorted((f for r in loaded for f in r.images["failed"]), key=lambda f: f[0])
    images = dict(first.images, shard=[1, 1], shards=[1], evaluated=len(records), failed=failed)
    return EvalResult(first.models, images, first.labels, first.options, first.class_names, records)


__all__ = ["EvalOptions", "EvalResult", "EvaluateError", "ImageSet", "LabelMatch", "ModelSummary",
           "evaluate", "merge", "image_set", "match_labels", "kl_divergence", "compare",
           "summarize", "CONFIDENT", "KL_EPSILON"]
