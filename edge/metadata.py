"""TFLite model metadata, written and read with plain ``flatbuffers`` (MediaPipe/Task Library layout).

A model file is ``<TFLite flatbuffer> <ZIP of associated files, ZIP_STORED>``. The flatbuffer's
``metadata`` list holds an entry named ``TFLITE_METADATA`` that points at a buffer containing a
``ModelMetadata`` flatbuffer (identifier ``M001``): names, input normalisation, labels file names.
The associated files (``labels.txt`` and this SDK's ``efficientnet_edge.json``) live in the ZIP.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Literal, Sequence, Union

import flatbuffers

from ._schema import metadata_schema_py_generated as _md
from ._schema import model_reader as _mr
from ._schema import model_schema
from ._schema.flatbuf import BYTE, FLOAT, UBYTE, FlatbufferError, Table, has_identifier
from .variants import PreprocessSpec

METADATA_NAME = "TFLITE_METADATA"
MODEL_IDENTIFIER = _mr.MODEL_IDENTIFIER
METADATA_IDENTIFIER = b"M001"
#: Lowest metadata parser that reads what we write (only 1.0.0 features are used; the test
#: checks this against MediaPipe's own GetMinimumMetadataParserVersion).
MIN_PARSER_VERSION = "1.0.0"
FORMAT = "efficientnet-edge/1"
LABELS_FILE = "labels.txt"
SPEC_FILE = "efficientnet_edge.json"
#: Caps on what an untrusted model's associated files may make us read (all in memory).
MAX_ZIP_MEMBERS = 64
MAX_LABELS_BYTES = 16 * 1024 * 1024
MAX_LABELS = 100_000
MAX_SPEC_BYTES = 64 * 1024
MAX_COMPRESSION_RATIO = 100
#: Bytes a flatbuffer builder may leave after the last object it wrote (alignment padding).
_ALIGNMENT_SLACK = 16

OutputKind = Literal["probabilities", "logits"]
ModelSource = Union[bytes, bytearray, str, "os.PathLike[str]"]


class MetadataError(ValueError):
    """The model is not a TFLite flatbuffer, or its metadata is malformed or inconsistent."""


@dataclass
class ModelInfo:
    """What a model's metadata says about it.

    ``input_mean``/``input_std`` map RAW pixels (0–255) to the input tensor's real value:
    ``real = (pixel - input_mean) / input_std`` (one value, or one per channel). They are
    ``[0]``/``[1]`` when normalisation is inside the graph. ``spec.mean``/``spec.std`` are the
    network's own normalisation, recorded for calibration and other runtimes.
    """

    name: str = ""
    description: str = ""
    version: str = "1"
    spec: PreprocessSpec | None = None
    labels: list[str] | None = None
    input_mean: list[float] = field(default_factory=lambda: [0.0])
    input_std: list[float] = field(default_factory=lambda: [1.0])
    output_kind: OutputKind = "probabilities"
    author: str = ""
    license: str = ""


def load_model_bytes(model: ModelSource) -> bytes:
    """The bytes of a model given as bytes or a path.

    Raises:
        FileNotFoundError: no such file.
        MetadataError: not a TFLite flatbuffer.
    """
    if isinstance(model, (bytes, bytearray, memoryview)):
        buf = bytes(model)
    else:
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such model file: {path}")
        with open(path, "rb") as f:
            buf = f.read()
    if len(buf) < 8 or buf[4:8] != MODEL_IDENTIFIER:
        raise MetadataError("not a TFLite model (missing the 'TFL3' flatbuffer identifier)")
    return buf


_UINT8 = 3  # tflite TensorType.UINT8


def _stats(lo: Sequence[float], hi: Sequence[float]) -> "_md.StatsT":
    s = _md.StatsT()
    s.min, s.max = [float(v) for v in lo], [float(v) for v in hi]
    return s


def _build_metadata(info: ModelInfo, in_type: int, out_type: int) -> bytes:
    mean, std = [float(v) for v in info.input_mean], [float(v) for v in info.input_std]
    if len(mean) != len(std) or len(mean) not in (1, 3) or any(s == 0 for s in std):
        raise MetadataError(f"input_mean/input_std must be 1 or 3 values, std non-zero; "
                            f"got {mean} and {std}")
    img = _md.TensorMetadataT()
    img.name, img.description = "image", "Input image, RGB, raw pixels mapped by the normalization."
    img.content = _md.ContentT()
    img.content.contentPropertiesType = _md.ContentProperties.ImageProperties
    img.content.contentProperties = _md.ImagePropertiesT()
    img.content.contentProperties.colorSpace = _md.ColorSpaceType.RGB
    norm = _md.ProcessUnitT()
    norm.optionsType = _md.ProcessUnitOptions.NormalizationOptions
    norm.options = _md.NormalizationOptionsT()
    norm.options.mean, norm.options.std = mean, std
    img.processUnits = [norm]
    if in_type == _UINT8:
        img.stats = _stats([0], [255])
    else:
        img.stats = _stats([(0.0 - m) / s for m, s in zip(mean, std)],
                           [(255.0 - m) / s for m, s in zip(mean, std)])

    out = _md.TensorMetadataT()
    out.name = "probability"
    out.description = ("Probabilities of the labels." if info.output_kind == "probabilities"
                       else "Logits of the labels (apply softmax for probabilities).")
    out.content = _md.ContentT()
    out.content.contentPropertiesType = _md.ContentProperties.FeatureProperties
    out.content.contentProperties = _md.FeaturePropertiesT()
    out.stats = _stats([0], [255]) if out_type == _UINT8 else _stats([0.0], [1.0])
    if info.labels:
        lf = _md.AssociatedFileT()
        lf.name, lf.description = LABELS_FILE, "Labels for the output classes."
        lf.type = _md.AssociatedFileType.TENSOR_AXIS_LABELS
        out.associatedFiles = [lf]

    sub = _md.SubGraphMetadataT()
    sub.inputTensorMetadata, sub.outputTensorMetadata = [img], [out]
    meta = _md.ModelMetadataT()
    meta.name, meta.description, meta.version = info.name, info.description, info.version
    meta.author, meta.license = info.author, info.license
    meta.subgraphMetadata = [sub]
    jf = _md.AssociatedFileT()
    jf.name, jf.description = SPEC_FILE, "efficientnet-edge preprocessing spec and I/O (JSON)."
    jf.type = _md.AssociatedFileType.DESCRIPTIONS
    meta.associatedFiles = [jf]
    meta.minParserVersion = MIN_PARSER_VERSION
    b = flatbuffers.Builder(1024)
    b.Finish(meta.Pack(b), METADATA_IDENTIFIER)
    return bytes(b.Output())


def _spec_json(info: ModelInfo) -> bytes:
    d = {
        "format": FORMAT,
        "model": info.name,
        "spec": info.spec.to_dict() if info.spec else None,
        "input_mean": [float(v) for v in info.input_mean],
        "input_std": [float(v) for v in info.input_std],
        "output": info.output_kind,
        "labels_file": LABELS_FILE if info.labels else None,
    }
    return (json.dumps(d, indent=2) + "\n").encode("utf-8")


def write_metadata(model: ModelSource, info: ModelInfo) -> bytes:
    """A copy of ``model`` carrying ``info`` as TFLite metadata plus labels and spec files.

    Any metadata and associated files already there are replaced, never duplicated.

    Raises:
        FileNotFoundError: ``model`` is a path that does not exist.
        MetadataError: not a TFLite model, or inconsistent ``info`` (bad normalisation,
            output_kind, or a label count different from the output size).
    """
    buf = load_model_bytes(model)
    if info.output_kind not in ("probabilities", "logits"):
        raise MetadataError(f"output_kind must be 'probabilities' or 'logits', "
                            f"got {info.output_kind!r}")
    try:
        _fb = model_schema()  # heavy (~50 MB): writing only
    except ImportError as e:
        raise MetadataError("writing metadata needs the TFLite model schema: "
                            "pip install ai-edge-litert") from e

    summary = _summary(buf)
    if not summary.inputs or not summary.outputs:
        raise MetadataError("model has no subgraph input/output")
    in_type = summary.inputs[0].type
    out_shape, out_type = summary.outputs[0].shape, summary.outputs[0].type
    if info.labels and out_shape and out_shape[-1] != len(info.labels):
        raise MetadataError(f"{len(info.labels)} labels for an output of {out_shape[-1]} classes")
    meta_buf = _build_metadata(info, in_type, out_type)
    root = _fb.Model.GetRootAs(buf, 0)

    m = _fb.ModelT.InitFromObj(root)  # re-packing drops any ZIP appended after the flatbuffer
    new_buffer = _fb.BufferT()
    new_buffer.data = list(meta_buf) if _fb.np is None else _fb.np.frombuffer(meta_buf, "uint8")
    m.metadata = m.metadata or []
    m.buffers = m.buffers or []
    for entry in m.metadata:
        if entry.name in (METADATA_NAME, METADATA_NAME.encode()):
            m.buffers[entry.buffer] = new_buffer  # replace in place: buffer indices stay valid
            break
    else:
        m.buffers.append(new_buffer)
        entry = _fb.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(m.buffers) - 1
        m.metadata.append(entry)
    b = flatbuffers.Builder(len(buf) + 4096)
    b.Finish(m.Pack(b), MODEL_IDENTIFIER)

    out = io.BytesIO()
    out.write(b.Output())
    # Same layout as MediaPipe's MetadataPopulator: ZipFile(mode="a") on the bare flatbuffer.
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
        if info.labels:
            zf.writestr(LABELS_FILE, "".join(f"{label}\n" for label in info.labels))
        zf.writestr(SPEC_FILE, _spec_json(info))
    return out.getvalue()


def _summary(buf: bytes) -> _mr.ModelSummary:
    try:
        return _mr.read_model(buf)
    except FlatbufferError as e:
        raise MetadataError(f"corrupt model flatbuffer: {e}") from e


def metadata_buffer(model: ModelSource, summary: _mr.ModelSummary | None = None) -> bytes | None:
    """The raw ``ModelMetadata`` flatbuffer of a model, or None when it has none.

    Raises:
        FileNotFoundError, MetadataError: see :func:`load_model_bytes`; also a corrupt model
            flatbuffer.
    """
    buf = load_model_bytes(model)
    summary = summary or _summary(buf)
    for name, index in summary.metadata:
        if name == METADATA_NAME.encode():
            data = summary.buffer_data(buf, index)
            if data:
                return data
    return None


def _zip_member(zf: zipfile.ZipFile, name: str, cap: int) -> bytes:
    """One associated file, read in memory within the caps."""
    info = zf.getinfo(name)
    if info.file_size > cap:
        raise MetadataError(f"associated file {name!r} is {info.file_size} bytes "
                            f"(limit {cap})")
    if info.compress_type != zipfile.ZIP_STORED and \
            info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
        raise MetadataError(f"associated file {name!r} expands {info.file_size} / "
                            f"{info.compress_size} times (limit {MAX_COMPRESSION_RATIO})")
    with zf.open(info) as f:
        return f.read(cap + 1)


def _associated_files(buf: bytes, wanted: dict[str, int]) -> dict[str, bytes] | None:
    """The ``wanted`` associated files (name -> size cap) found in the model's ZIP, in memory.

    Never extracted to disk. None when the model has no ZIP at all.

    Raises:
        MetadataError: the ZIP is corrupt or breaks a cap (member count, size, ratio).
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(buf))
    except zipfile.BadZipFile:
        return None
    except (OSError, ValueError, EOFError, struct.error, NotImplementedError) as e:
        raise MetadataError(f"unreadable associated-files ZIP: {e}") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise MetadataError(f"associated-files ZIP has {len(infos)} members "
                                f"(limit {MAX_ZIP_MEMBERS})")
        names = {i.filename for i in infos}
        try:
            return {n: _zip_member(zf, n, cap) for n, cap in wanted.items() if n in names}
        except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, struct.error,
                NotImplementedError, RuntimeError) as e:  # RuntimeError: encrypted member
            if isinstance(e, MetadataError):
                raise
            raise MetadataError(f"corrupt associated-files ZIP: {e}") from e


def _floats(values, what: str) -> list[float]:
    out = [float(v) for v in values]
    if len(out) not in (1, 3) or not all(math.isfinite(v) for v in out):
        raise MetadataError(f"{what} must be 1 or 3 finite values, got {out}")
    return out


def _labels(data: bytes, name: str) -> list[str]:
    if len(data) > MAX_LABELS_BYTES:
        raise MetadataError(f"labels file {name!r} is over {MAX_LABELS_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise MetadataError(f"labels file {name!r} is not UTF-8 text ({e})") from e
    labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if len(labels) > MAX_LABELS:
        raise MetadataError(f"labels file {name!r} has {len(labels)} labels (limit {MAX_LABELS})")
    return labels


def _read_m001(raw: bytes) -> tuple[ModelInfo, str | None]:
    """ModelInfo from a ModelMetadata flatbuffer, and the output's labels file name."""
    if not has_identifier(raw, METADATA_IDENTIFIER):
        raise MetadataError("TFLITE_METADATA buffer lacks the 'M001' identifier")
    root = Table.root(raw, "model metadata")
    info = ModelInfo(name=root.text(0), description=root.text(1), version=root.text(2),
                     author=root.text(4), license=root.text(5))
    root.tables(6, "model associated file")
    root.text(7)
    labels_file = None
    subs = root.tables(3, "subgraph metadata")
    if subs:
        ins = subs[0].tables(2, "input tensor metadata")
        outs = subs[0].tables(3, "output tensor metadata")
        for pu in ins[0].tables(4, "input process unit") if ins else ():
            if pu.scalar(0, UBYTE) == _md.ProcessUnitOptions.NormalizationOptions:
                opts = pu.table(1, "normalization options")
                if opts is None:
                    raise MetadataError("normalization process unit without options")
                info.input_mean = _floats(opts.numbers(0, FLOAT), "normalization mean")
                info.input_std = _floats(opts.numbers(1, FLOAT), "normalization std")
        for af in outs[0].tables(6, "output associated file") if outs else ():
            if af.scalar(2, BYTE) == _md.AssociatedFileType.TENSOR_AXIS_LABELS:
                labels_file = af.text(0)
                break
    return info, labels_file


def _apply_spec_json(info: ModelInfo, data: bytes) -> None:
    try:
        d = json.loads(data.decode("utf-8"))
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        if d.get("spec"):
            if not isinstance(d["spec"], dict):
                raise TypeError("'spec' is not an object")
            info.spec = PreprocessSpec.from_dict(d["spec"]).validate()
        info.input_mean = _floats(d.get("input_mean", info.input_mean), "input_mean")
        info.input_std = _floats(d.get("input_std", info.input_std), "input_std")
        info.output_kind = d.get("output", info.output_kind)
        if info.output_kind not in ("probabilities", "logits"):
            raise ValueError(f"output must be 'probabilities' or 'logits', got {info.output_kind!r}")
    except (ValueError, KeyError, TypeError, RecursionError, OverflowError) as e:
        raise MetadataError(f"malformed {SPEC_FILE}: {e}") from e


def read_metadata(model: ModelSource, summary: _mr.ModelSummary | None = None) -> ModelInfo | None:
    """Read back the metadata of a model: ours, or MediaPipe-style metadata written by others.

    Untrusted files are read in memory with caps (labels file size and count, ZIP member count
    and compression ratio); nothing is extracted to disk. Returns None when the model carries
    no metadata. ``summary``: the model's :func:`~edge._schema.model_reader.read_model` result,
    when the caller already has it.

    Raises:
        FileNotFoundError: ``model`` is a path that does not exist.
        MetadataError: not a TFLite model, a corrupt flatbuffer, unreadable metadata, labels,
            spec JSON or associated-files ZIP, or a cap exceeded (the message says which).

    Warns:
        RuntimeWarning: the metadata names a labels file but the model carries no ZIP at all
            (a tool re-packed the flatbuffer and dropped it); ``labels`` is then None.
    """
    buf = load_model_bytes(model)
    summary = summary or _summary(buf)
    raw = metadata_buffer(buf, summary)
    if raw is None:
        return None
    try:
        info, labels_file = _read_m001(raw)
    except FlatbufferError as e:
        raise MetadataError(f"cannot parse model metadata: {e}") from e
    wanted = {SPEC_FILE: MAX_SPEC_BYTES}
    if labels_file:
        wanted[labels_file] = MAX_LABELS_BYTES
    files = _associated_files(buf, wanted)
    if files is None and len(buf) - summary.end > _ALIGNMENT_SLACK:
        raise MetadataError(f"the {len(buf) - summary.end} bytes after the model flatbuffer are "
                            "not a readable associated-files ZIP (truncated or corrupt file?)")
    if files is None:
        if labels_file:
            warnings.warn(f"the model's metadata names labels file {labels_file!r} but the model "
                          "carries no associated files (re-packed by a tool that drops them, "
                          "such as edgetpu_compiler?); classes have no labels: pass labels=",
                          RuntimeWarning, stacklevel=2)
        return info
    if labels_file:
        if labels_file not in files:
            raise MetadataError(f"metadata names labels file {labels_file!r}, which the model "
                                "does not carry")
        info.labels = _labels(files[labels_file], labels_file)
    if SPEC_FILE in files:
        _apply_spec_json(info, files[SPEC_FILE])
    return info
