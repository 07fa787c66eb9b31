"""Labelled images from a folder of class sub-folders or a CSV, checked once, split stratified.

Pure Python + Pillow (no TensorFlow): what is read, what is skipped and which image lands in
which split are decided here, before any model is built.
"""
from __future__ import annotations

import csv
import io
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from calibration import IMAGE_EXTENSIONS
from edge.preprocess import ImageDecodeError, open_image

from .options import DataError

SPLITS = ("train", "val", "test")
#: A class needs this many training images at least (plus one per non-empty val/test split).
MIN_TRAIN_PER_CLASS = 2
#: Checking a file decodes it at about this size (JPEGs through libjpeg's draft mode: fast).
_CHECK_DRAFT = 64


@dataclass
class LabelledImages:
    """Paths with integer labels into ``classes``; ``split`` holds 'train'/'val'/'test' or ''."""

    paths: list[str]
    labels: np.ndarray
    classes: list[str]
    split: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable image files
    ignored: list[str] = field(default_factory=list)  # files that are not images
    source: str = ""

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, name: str) -> tuple[list[str], np.ndarray]:
        """Paths and labels of one split."""
        idx = [i for i, s in enumerate(self.split) if s == name]
        return [self.paths[i] for i in idx], self.labels[idx]

    def counts(self, name: str | None = None) -> np.ndarray:
        """Images per class (in one split, or in all)."""
        labels = self.labels if name is None else self.subset(name)[1]
        return np.bincount(labels, minlength=len(self.classes))


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _shown(paths: Sequence[str], limit: int = 10) -> str:
    more = f" … (+{len(paths) - limit} more)" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def from_folder(root: str) -> LabelledImages:
    """One sub-folder per class (its name is the label; images in nested folders count too).

    Raises:
        DataError: no such folder, or images lying directly in it instead of in class folders.
    """
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such folder or CSV file")
    paths, labels, ignored = [], [], []
    loose = [f for f in sorted(os.listdir(root)) if os.path.isfile(os.path.join(root, f))
             and _is_image(f)]
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    for label, name in enumerate(classes):
        for folder, dirs, files in os.walk(os.path.join(root, name)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for f in sorted(files):
                if f.startswith("."):
                    continue
                path = os.path.join(folder, f)
                if _is_image(f):
                    paths.append(path)
                    labels.append(label)
                else:
                    ignored.append(path)
    if loose and not paths:
        raise DataError(f"{root} holds {len(loose)} images but no class sub-folders: put each "
                        "class's images in a sub-folder named after the class")
    present = sorted(set(labels))
    empty = [classes[i] for i in range(len(classes)) if i not in present]
    if empty and paths:
        warnings.warn(f"ignored {len(empty)} class folders without images: {_shown(empty)}",
                      UserWarning, stacklevel=2)
    keep = [classes[i] for i in present]
    remap = {old: new for new, old in enumerate(present)}
    return LabelledImages(paths, np.array([remap[v] for v in labels], np.int64), keep,
                          ignored=ignored, source=root)


def from_csv(path: str) -> LabelledImages:
    """Rows ``path,label`` or ``path,label,split`` (split in train/val/test); a header row
    ``path,label[,split]`` is optional; relative paths are relative to the CSV's folder.

    Raises:
        DataError: unreadable CSV, a row without a label, or an unknown split name.
    """
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read the CSV {path}: {e}") from e
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    paths, names, split = [], [], []
    for n, row in enumerate(rows, 1):
        if len(row) < 2 or not row[1].strip():
            raise DataError(f"{path}: row {n} has no label (expected path,label[,split])")
        s = row[2].strip().lower() if len(row) > 2 else ""
        if s and s not in SPLITS:
            raise DataError(f"{path}: row {n} has split {row[2]!r}; use train, val or test")
        paths.append(os.path.join(base, row[0].strip()))
        names.append(row[1].strip())
        split.append(s)
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    has_split = any(split)
    if has_split and not all(split):
        raise DataError(f"{path}: some rows name a split and some do not; give all or none")
    return LabelledImages(paths, np.array([index[c] for c in names], np.int64), classes,
                          split if has_split else [], source=path)


def _readable(path: str) -> bool:
    try:
        open_image(path, draft_size=_CHECK_DRAFT).close()
        return True
    except (ImageDecodeError, OSError, ValueError):
        return False


def drop_unreadable(data: LabelledImages, workers: int | None = None,
                    progress: Callable[[Iterable], Iterable] | None = None) -> LabelledImages:
    """Decode every image once (in threads: Pillow releases the GIL) and drop those that fail;
    one warning lists them (and, before them, the files that are not images at all)."""
    if data.ignored:
        warnings.warn(f"ignored {len(data.ignored)} files that are not images: "
                      f"{_shown(data.ignored)}", UserWarning, stacklevel=2)
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) + 1)) as pool:
        results = pool.map(_readable, data.paths, chunksize=16)
        ok = list(progress(results) if progress else results)
    bad = [p for p, good in zip(data.paths, ok) if not good]
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image files: {_shown(bad)}", UserWarning,
                      stacklevel=2)
    keep = [i for i, good in enumerate(ok) if good]
    return LabelledImages([data.paths[i] for i in keep], data.labels[keep], data.classes,
                          [data.split[i] for i in keep] if data.split else [], bad, data.ignored,
                          data.source)


def load_images(source: str, progress: Callable[[Iterable], Iterable] | None = None) -> LabelledImages:
    """Read ``source`` (class folders or a CSV) and drop unreadable files (listed once).

    Raises:
        DataError: nothing usable, a single class, or an unreadable CSV.
    """
    source = os.fspath(source)
    is_csv = os.path.isfile(source) and source.lower().endswith((".csv", ".txt"))
    data = from_csv(source) if is_csv else from_folder(source)
    if os.path.isfile(source) and not is_csv:
        raise DataError(f"{source} is a file: pass a folder of class sub-folders or a .csv")
    data = drop_unreadable(data, progress=progress)
    where = ("in the CSV " if is_csv else "in ") + source
    if not data.paths:
        raise DataError(f"no readable images {where} (looked for {', '.join(IMAGE_EXTENSIONS)} "
                        "in one sub-folder per class)")
    present = sorted(set(data.labels.tolist()))
    if len(present) < 2:
        raise DataError(f"found only one class ({data.classes[present[0]]!r}) {where}: a "
                        "classifier needs at least 2 classes, one sub-folder each")
    if len(present) < len(data.classes):  # a CSV class whose every file was unreadable
        lost = [c for i, c in enumerate(data.classes) if i not in present]
        raise DataError(f"class {lost[0]!r} has no readable image {where}")
    return data


def min_images_per_class(val_split: float, test_split: float) -> int:
    return MIN_TRAIN_PER_CLASS + (val_split > 0) + (test_split > 0)


def stratified_split(labels: np.ndarray, classes: Sequence[str], val_split: float,
                     test_split: float, seed: int) -> list[str]:
    """'train'/'val'/'test' per image: in every class, round(n·test) test and round(n·val)
    validation images (at least one each when the fraction is above 0), picked with ``seed``.

    Raises:
        DataError: a class with too few images, named with its count and the minimum.
    """
    need = min_images_per_class(val_split, test_split)
    counts = np.bincount(labels, minlength=len(classes))
    small = [(classes[c], int(n)) for c, n in enumerate(counts) if n < need]
    if small:
        name, n = min(small, key=lambda x: x[1])
        raise DataError(f"class {name!r} has {n} readable images; each class needs at least "
                        f"{need} ({MIN_TRAIN_PER_CLASS} to train on, one each for the "
                        f"validation and test splits){f' ({len(small)} classes too small)' if len(small) > 1 else ''}")
    rng = np.random.default_rng(seed)
    out = ["train"] * len(labels)
    for c in range(len(classes)):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = max(1, int(round(len(idx) * test_split))) if test_split > 0 else 0
        n_val = max(1, int(round(len(idx) * val_split))) if val_split > 0 else 0
        n_val = min(n_val, len(idx) - n_test - MIN_TRAIN_PER_CLASS)
        for i in idx[:n_test]:
            out[i] = "test"
        for i in idx[n_test:n_test + n_val]:
            out[i] = "val"
    return out


def check_given_split(data: LabelledImages) -> None:
    """A split read from the CSV: every class must have training images.

    Raises:
        DataError: a class without a training image, or no training images at all.
    """
    train = data.counts("train")
    missing = [data.classes[c] for c in range(len(data.classes)) if train[c] == 0]
    if missing:
        raise DataError(f"class {missing[0]!r} has no 'train' rows in {data.source}")


def split_csv(data: LabelledImages, folder: str) -> bytes:
    """The split as a CSV (``path,label,split``; paths relative to ``folder``, where it is
    written): itself valid training data, so ``efficientnet-train DIR/split.csv`` repeats it."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "split"])
    for p, y, s in zip(data.paths, data.labels, data.split):
        w.writerow([os.path.relpath(os.path.abspath(p), os.path.abspath(folder)), data.classes[y], s])
    return buf.getvalue().encode()
