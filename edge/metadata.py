"""TFLite model metadata, written and read with plain ``flatbuffers`` (MediaPipe/Task Library layout).

A model file is ``<TFLite flatbuffer> <ZIP of associated files, ZIP_STORED>``. The flatbuffer's
``metadata`` list holds an entry named ``TFLITE_METADATA`` that points at a buffer containing a
``ModelMetadata`` flatbuffer (identifier ``M001``): names, input normalisation, labels file names.
The associated files (``labels.txt`` and this SDK's ``efficientnet_edge.json``) live in the ZIP.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Literal, Sequence, Union

import flatbuffers

from ._schema import metadata_schema_py_generated as _md
from ._schema import model_reader as _mr
from ._schema import model_schema
from .variants import PreprocessSpec

METADATA_NAME = "TFLITE_METADATA"
MODEL_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
#: Lowest metadata parser that reads what we write (only 1.0.0 features are used; the test
#: checks this against MediaPipe's own GetMinimumMetadataParserVersion).
MIN_PARSER_VERSION = "1.0.0"
FORMAT = "efficientnet-edge/1"
LABELS_FILE = "labels.txt"
SPEC_FILE = "efficientnet_edge.json"

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

    try:
        (_, in_type), (out_shape, out_type) = _mr.io_tensor(buf, "input"), _mr.io_tensor(buf, "output")
    except (IndexError, ValueError) as e:
        raise MetadataError(f"model has no readable subgraph input/output: {e}") from e
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


def metadata_buffer(model: ModelSource) -> bytes | None:
    """The raw ``ModelMetadata`` flatbuffer of a model, or None when it has none.

    Raises:
        FileNotFoundError, MetadataError: see :func:`load_model_bytes`.
    """
    buf = load_model_bytes(model)
    try:
        for name, index in _mr.metadata_entries(buf):
            if name == METADATA_NAME.encode():
                data = _mr.buffer_data(buf, index)
                if data:
                    return data
    except (IndexError, ValueError) as e:
        raise MetadataError(f"corrupt model flatbuffer: {e}") from e
    return None


def _associated_files(buf: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(buf)) as zf:
            return {n: zf.read(n) for n in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


def read_metadata(model: ModelSource) -> ModelInfo | None:
    """Read back the metadata of a model: ours, or MediaPipe-style metadata written by others.

    Returns None when the model carries no metadata.

    Raises:
        FileNotFoundError: ``model`` is a path that does not exist.
        MetadataError: not a TFLite model, or unreadable metadata / spec JSON.
    """
    buf = load_model_bytes(model)
    raw = metadata_buffer(buf)
    if raw is None:
        return None
    if not _md.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
        raise MetadataError("TFLITE_METADATA buffer lacks the 'M001' identifier")
    try:
        meta = _md.ModelMetadataT.InitFromObj(_md.ModelMetadata.GetRootAs(raw, 0))
    except Exception as e:  # corrupt flatbuffer: struct.error, IndexError…
        raise MetadataError(f"cannot parse model metadata: {e}") from e

    def s(v) -> str:
        return v.decode("utf-8") if isinstance(v, bytes) else (v or "")

    info = ModelInfo(name=s(meta.name), description=s(meta.description),
                     version=s(meta.version), author=s(meta.author), license=s(meta.license))
    files = _associated_files(buf)
    sub = (meta.subgraphMetadata or [None])[0]
    if sub is not None and sub.inputTensorMetadata:
        for pu in sub.inputTensorMetadata[0].processUnits or []:
            if pu.optionsType == _md.ProcessUnitOptions.NormalizationOptions:
                info.input_mean = [float(v) for v in pu.options.mean]
                info.input_std = [float(v) for v in pu.options.std]
    if sub is not None and sub.outputTensorMetadata:
        for af in sub.outputTensorMetadata[0].associatedFiles or []:
            if af.type == _md.AssociatedFileType.TENSOR_AXIS_LABELS and s(af.name) in files:
                text = files[s(af.name)].decode("utf-8")
                info.labels = [ln.strip() for ln in text.splitlines() if ln.strip()]
                break
    if SPEC_FILE in files:
        try:
            d = json.loads(files[SPEC_FILE].decode("utf-8"))
            if d.get("spec"):
                info.spec = PreprocessSpec.from_dict(d["spec"])
            info.input_mean = [float(v) for v in d.get("input_mean", info.input_mean)]
            info.input_std = [float(v) for v in d.get("input_std", info.input_std)]
            info.output_kind = d.get("output", info.output_kind)
        except (ValueError, KeyError, TypeError) as e:
            raise MetadataError(f"malformed {SPEC_FILE}: {e}") from e
    return info
