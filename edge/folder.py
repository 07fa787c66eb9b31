"""Folder-scale classification I/O: a lazy walk of image files, and CSV / JSONL / text rows
written to stdout or atomically to a file (temp file in the same folder, fsync, rename)."""
from __future__ import annotations

import csv
import enum
import io
import json
import os
import stat
from typing import IO, Iterable, Iterator

from PIL import Image

from .classifier import Prediction

#: Photo formats a folder walk picks up (by extension, case-insensitive) when Pillow reads them.
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp",
                    ".dib", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".qoi",
                    ".avif")


def image_extensions() -> frozenset[str]:
    """The :data:`PHOTO_EXTENSIONS` this Pillow can open."""
    Image.init()
    readable = {ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}
    return frozenset(e for e in PHOTO_EXTENSIONS if e in readable)


def _walk(folder: str, recursive: bool, exts: frozenset[str]) -> Iterator[str]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for e in entries:
        if e.name.startswith("."):
            continue  # hidden files, AppleDouble "._x.jpg", .git …
        try:
            if e.is_dir(follow_symlinks=False):
                subdirs.append(e.path)
            elif e.is_file() and os.path.splitext(e.name)[1].lower() in exts:
                yield e.path
        except OSError:
            continue
    if recursive:
        for d in subdirs:
            yield from _walk(d, recursive, exts)


def iter_images(paths: Iterable[str], recursive: bool = False) -> Iterator[str]:
    """Image files named by ``paths``, lazily, in a stable order.

    A file is yielded as given (whatever its extension: the decoder decides); a folder yields
    its image files sorted by name, and with ``recursive`` those of its sub-folders (symlinked
    folders are not followed; hidden files and folders are skipped). Memory stays flat for any
    number of files.
    """
    exts = image_extensions()
    for p in paths:
        p = os.fspath(p)
        try:
            is_dir = stat.S_ISDIR(os.stat(p).st_mode)
        except OSError:
            is_dir = False
        if is_dir:
            yield from _walk(p, recursive, exts)
        else:
            yield p


class OutputFormat(str, enum.Enum):
    """Row formats of ``efficientnet-classify`` (CLI ``--format``)."""

    TEXT = "text"
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def for_path(cls, path: str) -> "OutputFormat | None":
        """The format an output file name implies (.csv, .jsonl/.json), else None."""
        ext = os.path.splitext(path)[1].lower()
        return {".csv": cls.CSV, ".jsonl": cls.JSONL, ".json": cls.JSONL}.get(ext)


class RowWriter:
    """Writes one row per :class:`Prediction` in a format; ``extra`` fields go in each JSON row."""

    def __init__(self, out: IO[str], fmt: OutputFormat, top_k: int, extra: dict | None = None):
        self.out, self.fmt, self.top_k, self.extra = out, OutputFormat(fmt), top_k, extra or {}
        self._csv = None
        if self.fmt == OutputFormat.CSV:
            self._csv = csv.writer(out, lineterminator="\n")
            header = ["image"]
            for r in range(1, top_k + 1):
                header += [f"label_{r}", f"index_{r}", f"score_{r}"]
            self._csv.writerow(header + ["error"])

    def write(self, p: Prediction, name: str) -> None:
        err = None if p.error is None else " ".join(str(p.error).split())
        if self.fmt == OutputFormat.JSONL:
            row = {"image": name, **self.extra,
                   "classes": [{"index": c.index, "label": c.label, "score": round(c.score, 6)}
                               for c in p.categories]}
            if err is not None:
                row["error"] = err
            self.out.write(json.dumps(row) + "\n")
        elif self.fmt == OutputFormat.CSV:
            cells: list = [name]
            for r in range(self.top_k):
                if r < len(p.categories):
                    c = p.categories[r]
                    cells += ["" if c.label is None else c.label, c.index, f"{c.score:.6f}"]
                else:
                    cells += ["", "", ""]
            self._csv.writerow(cells + ["" if err is None else err])
        elif err is None:
            lines = [name] + [f"  {c.score:7.4f}  {c.label if c.label is not None else c.index} "
                              f"({c.index})" for c in p.categories]
            self.out.write("\n".join(lines) + "\n")


class AtomicTextFile:
    """A text file written through a temp file beside ``path``: renamed into place on a clean
    exit (mode per umask, fsynced), removed on any exception or interrupt. Streams rows, so
    memory stays flat however many are written."""

    def __init__(self, path: str):
        self.path = os.path.abspath(os.fspath(path))
        self.tmp: str | None = None
        self.file: io.TextIOWrapper | None = None

    def __enter__(self) -> io.TextIOWrapper:
        folder, base = os.path.split(self.path)
        for n in range(1000):
            tmp = os.path.join(folder, f".{base}.{os.getpid()}.{n}.tmp")
            try:
                # 0o666 and O_EXCL: the kernel applies the umask (mkstemp would give 0600)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(f"cannot create a temp file beside {self.path}")
        self.tmp = tmp
        self.file = open(fd, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.file is not None and self.tmp is not None
        try:
            if exc_type is None:
                self.file.flush()
                os.fsync(self.file.fileno())
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
                self.tmp = None
        finally:
            if self.tmp is not None:
                try:
                    os.unlink(self.tmp)
                except FileNotFoundError:
                    pass

