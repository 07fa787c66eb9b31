"""One bounds-checked walk of a whole TFLite model flatbuffer, before any interpreter sees it.

Every table LiteRT will read is checked first: offsets, vtables, vectors, strings, opcode /
tensor / buffer indices, tensor types, shapes and constant sizes. A corrupt file raises
:class:`~edge._schema.flatbuf.FlatbufferError` saying what is wrong and where. Field slots
follow tensorflow/lite/schema/schema.fbs (the generated ``schema_py_generated`` costs ~50 MB of
RSS and checks nothing, so the runtime reads with :mod:`.flatbuf`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .flatbuf import (BOOL, BYTE, FLOAT, INT, LONG, UBYTE, UINT, ULONG, FlatbufferError, Table,
                      has_identifier)

MODEL_IDENTIFIER = b"TFL3"

#: TensorType value -> (name, bytes per element; None: variable-size or sub-byte packing)
TENSOR_TYPES: dict[int, tuple[str, int | None]] = {
    0: ("float32", 4), 1: ("float16", 2), 2: ("int32", 4), 3: ("uint8", 1), 4: ("int64", 8),
    5: ("string", None), 6: ("bool", 1), 7: ("int16", 2), 8: ("complex64", 8), 9: ("int8", 1),
    10: ("float64", 8), 11: ("complex128", 16), 12: ("uint64", 8), 13: ("resource", None),
    14: ("variant", None), 15: ("uint32", 4), 16: ("uint16", 2), 17: ("int4", None),
    18: ("bfloat16", 2), 19: ("int2", None), 20: ("uint4", None), 21: ("float8_e4m3fn", 1),
    22: ("float8_e5m2", 1),
}
#: Largest element count a tensor may declare (2**31; EfficientNet-B7's largest is ~2**24).
MAX_ELEMENTS = 2 ** 31
#: BuiltinOptions union members that hold vectors or strings: type -> ((slot, element size), …)
#: (a string is a vector of 1-byte elements; tensorflow/lite/schema/schema.fbs)
_OPTION_VECTORS: dict[int, tuple[tuple[int, int], ...]] = {
    3: ((1, 4), (2, 4)),  # ConcatEmbeddingsOptions
    8: ((5, 1),),  # FullyConnectedOptions.quant_spec
    17: ((0, 4),),  # ReshapeOptions.new_shape
    30: ((0, 4),),  # SqueezeOptions.squeeze_dims
    111: ((0, 1), (1, 1)),  # VarHandleOptions container, shared_name
    115: ((0, 4),),  # BucketizeOptions.boundaries
}
#: DimensionMetadata.array_segments / array_indices union type -> element size
_SPARSE_VECTOR = {1: 4, 2: 2, 3: 1}  # Int32Vector, Uint16Vector, Uint8Vector


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as the file declares it."""

    index: int
    name: str
    shape: tuple[int, ...]
    type: int
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()

    @property
    def type_name(self) -> str:
        return TENSOR_TYPES[self.type][0]


@dataclass(frozen=True)
class ModelSummary:
    """What the runtime needs from a checked model: subgraph 0's I/O, op codes, metadata."""

    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    custom_codes: tuple[str, ...]
    #: (name, buffer index) of each Model.metadata entry
    metadata: tuple[tuple[bytes, int], ...]
    #: (start, length) of each Buffer's bytes within the file
    buffers: tuple[tuple[int, int], ...]
    num_tensors: int
    num_operators: int
    #: End of the flatbuffer: the furthest byte any table, vector or buffer reaches (what
    #: follows, if anything, is appended data such as the metadata's associated-files ZIP).
    end: int = 0

    def buffer_data(self, buf: bytes, index: int) -> bytes:
        start, n = self.buffers[index]
        return bytes(buf[start:start + n])


def _index_list(values: tuple, limit: int, what: str, allow_minus_one: bool = False) -> None:
    lo = -1 if allow_minus_one else 0
    for v in values:
        if not lo <= v < limit:
            raise FlatbufferError(f"{what}: index {v} out of range (0..{limit - 1})")


def _buffers(model: Table) -> list[tuple[int, int]]:
    out = []
    size = len(model.buf)
    for b in model.tables(4, "buffer"):
        start, n = b._vector(0, 1)
        offset, length = b.scalar(1, ULONG), b.scalar(2, ULONG)
        if offset > 1:  # >2 GB models: data after the flatbuffer, at offset/size
            if offset + length > size:
                raise FlatbufferError(f"{b.what}: data at {offset}+{length} runs past the "
                                      f"{size}-byte file")
            start, n = offset, length
        out.append((start, n))
    return out


def _quantization(t: Table | None) -> tuple[tuple[float, ...], tuple[int, ...]]:
    if t is None:
        return (), ()
    t.numbers(0, FLOAT), t.numbers(1, FLOAT)  # min, max: checked, unused
    scale, zp = t.numbers(2, FLOAT), t.numbers(3, LONG)
    if len(scale) != len(zp):
        # LiteRT reads a tensor with zero points but no scales as unquantised, and an int8
        # kernel given one aborts the process (found by benchmarks/fuzz_inputs.py)
        raise FlatbufferError(f"{t.what}: {len(scale)} scales for {len(zp)} zero points")
    if t.scalar(4, UBYTE):
        t.table(5, f"{t.what} details")
    return scale, zp


def _sparsity(t: Table | None) -> None:
    if t is None:
        return
    t.numbers(0, INT), t.numbers(1, INT)  # traversal_order, block_map
    for dim in t.tables(2, f"{t.what} dim_metadata"):
        for type_slot, slot in ((2, 3), (4, 5)):
            kind = dim.scalar(type_slot, UBYTE)
            sub = dim.table(slot, f"{dim.what} array") if kind else None
            if sub is not None:
                sub._vector(0, _SPARSE_VECTOR.get(kind, 1))


def _tensor(t: Table, index: int, buffers: list[tuple[int, int]]) -> TensorInfo:
    shape = t.numbers(0, INT)
    ttype = t.scalar(1, BYTE)
    if ttype not in TENSOR_TYPES:
        raise FlatbufferError(f"{t.what}: unknown tensor type {ttype}")
    bidx = t.scalar(2, UINT)
    if bidx >= len(buffers):
        raise FlatbufferError(f"{t.what}: buffer index {bidx} out of range "
                              f"({len(buffers)} buffers)")
    name = t.text(3)
    if any(d < 0 for d in shape):
        raise FlatbufferError(f"{t.what} ({name!r}): negative dimension in shape {list(shape)}")
    elements = math.prod(shape)
    if elements > MAX_ELEMENTS:
        raise FlatbufferError(f"{t.what} ({name!r}): shape {list(shape)} has {elements} "
                              f"elements (more than {MAX_ELEMENTS})")
    scale, zp = _quantization(t.table(4, f"{t.what} quantization"))
    _sparsity(t.table(6, f"{t.what} sparsity"))
    t.numbers(7, INT)  # shape_signature
    for v in t.tables(9, f"{t.what} variant"):
        v.numbers(0, INT)
    size = TENSOR_TYPES[ttype][1]
    held = buffers[bidx][1]
    if bidx and held and size and not t.has(6) and held < elements * size:
        raise FlatbufferError(f"{t.what} ({name!r}): constant holds {held} bytes, its "
                              f"{TENSOR_TYPES[ttype][0]} shape {list(shape)} needs {elements * size}")
    return TensorInfo(index, name, tuple(shape), ttype, tuple(scale), tuple(zp))


def _operator(op: Table, n_codes: int, n_tensors: int, size: int) -> None:
    code = op.scalar(0, UINT)
    if code >= n_codes:
        raise FlatbufferError(f"{op.what}: opcode index {code} out of range ({n_codes} codes)")
    for slot, kind in ((1, "input"), (2, "output"), (8, "intermediate")):
        _index_list(op.numbers(slot, INT), n_tensors, f"{op.what} {kind}", allow_minus_one=True)
    kind = op.scalar(3, UBYTE)
    options = op.table(4, f"{op.what} options") if kind else None
    if options is not None:
        for slot, elem in _OPTION_VECTORS.get(kind, ()):
            options._vector(slot, elem)
    op.blob(5)  # custom_options
    op.numbers(7, BOOL)  # mutating_variable_inputs
    offset, length = op.scalar(9, ULONG), op.scalar(10, ULONG)
    if length and offset + length > size:
        raise FlatbufferError(f"{op.what}: large custom options run past the {size}-byte file")
    if op.scalar(11, UBYTE):
        op.table(12, f"{op.what} options_2")


def read_model(buf: bytes) -> ModelSummary:
    """Check the whole model flatbuffer and summarise what the runtime needs.

    Raises:
        FlatbufferError: not a TFLite flatbuffer, or any offset, index, type, shape or constant
            size is out of range (the message says which table and field).
    """
    if not has_identifier(buf, MODEL_IDENTIFIER):
        raise FlatbufferError("not a TFLite model (missing the 'TFL3' flatbuffer identifier)")
    model = Table.root(buf, "model")
    version = model.scalar(0, UINT)
    buffers = _buffers(model)
    codes = model.tables(1, "operator code")
    custom = []
    for c in codes:
        name = c.string(1)
        if name:
            custom.append(name.decode("utf-8", "replace"))
    model.text(3)  # description
    subgraphs = model.tables(2, "subgraph")
    if not subgraphs:
        raise FlatbufferError("the model has no subgraph")
    first: tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]] = ((), ())
    n_tensors = n_ops = 0
    sizes = []
    for s, sg in enumerate(subgraphs):
        tensors = [_tensor(t, i, buffers) for i, t in enumerate(sg.tables(0, f"subgraph {s} tensor"))]
        sizes.append(len(tensors))
        ins, outs = sg.numbers(1, INT), sg.numbers(2, INT)
        _index_list(ins, len(tensors), f"subgraph {s} inputs")
        _index_list(outs, len(tensors), f"subgraph {s} outputs")
        ops = sg.tables(3, f"subgraph {s} operator")
        for op in ops:
            _operator(op, len(codes), len(tensors), len(buf))
        sg.text(4)
        if s == 0:
            first = (tuple(tensors[i] for i in ins), tuple(tensors[i] for i in outs))
            n_tensors, n_ops = len(tensors), len(ops)
    _index_list(model.numbers(5, INT), len(buffers), "metadata_buffer")
    metadata = []
    for m in model.tables(6, "metadata"):
        name, index = m.string(0) or b"", m.scalar(1, UINT)
        _index_list((index,), len(buffers), f"{m.what} ({name!r}) buffer")
        metadata.append((name, index))
    for sig in model.tables(7, "signature"):
        sub = sig.scalar(4, UINT)
        _index_list((sub,), len(subgraphs), f"{sig.what} subgraph")
        for slot in (0, 1):
            for tm in sig.tables(slot, f"{sig.what} tensor map"):
                tm.text(0)
                _index_list((tm.scalar(1, UINT),), sizes[sub], f"{tm.what} tensor")
        sig.text(2)
    for slot, what in ((8, "external buffer group"), (9, "external buffer")):
        model.tables(slot, what)
    end = max([model.extent] + [st + n for st, n in buffers])
    return ModelSummary(version, first[0], first[1], tuple(custom), tuple(metadata),
                        tuple(buffers), n_tensors, n_ops, end)


def custom_op_codes(buf: bytes) -> list[str]:
    """custom_code of every OperatorCode that has one.

    Raises:
        FlatbufferError: see :func:`read_model`.
    """
    return list(read_model(buf).custom_codes)
