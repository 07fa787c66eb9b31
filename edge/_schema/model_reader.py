"""Hand-written lazy reader for the few TFLite model fields the runtime needs.

Importing the generated ``schema_py_generated`` costs ~50 MB of RSS (hundreds of classes), so the
runtime path reads with ``flatbuffers.table.Table`` directly. Field slots follow
tensorflow/lite/schema/schema.fbs (vtable offset = 4 + 2 * field index).
"""
from __future__ import annotations

from flatbuffers import encode, number_types as N, packer
from flatbuffers.table import Table


def _root(buf: bytes) -> Table:
    return Table(buf, encode.Get(packer.uoffset, buf, 0))


def _vec(t: Table, slot: int) -> list[Table]:
    o = t.Offset(4 + 2 * slot)
    if not o:
        return []
    start, n = t.Vector(o), t.VectorLen(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * i)) for i in range(n)]


def _str(t: Table, slot: int) -> bytes | None:
    o = t.Offset(4 + 2 * slot)
    return t.String(o + t.Pos) if o else None


def _scalar(t: Table, slot: int, flags, default=0):
    o = t.Offset(4 + 2 * slot)
    return t.Get(flags, o + t.Pos) if o else default


def _ints(t: Table, slot: int) -> list[int]:
    o = t.Offset(4 + 2 * slot)
    if not o:
        return []
    start = t.Vector(o)
    return [encode.Get(packer.int32, t.Bytes, start + 4 * i) for i in range(t.VectorLen(o))]


def metadata_entries(buf: bytes) -> list[tuple[bytes, int]]:
    """(name, buffer index) of each Model.metadata entry."""
    return [(_str(m, 0) or b"", _scalar(m, 1, N.Uint32Flags)) for m in _vec(_root(buf), 6)]


def buffer_data(buf: bytes, index: int) -> bytes:
    """Bytes of Model.buffers[index] (inline data only)."""
    b = _vec(_root(buf), 4)[index]
    o = b.Offset(4)
    if not o:
        return b""
    start, n = b.Vector(o), b.VectorLen(o)
    return bytes(buf[start:start + n])


def custom_op_codes(buf: bytes) -> list[str]:
    """custom_code of every OperatorCode that has one."""
    out = []
    for oc in _vec(_root(buf), 1):
        s = _str(oc, 1)
        if s:
            out.append(s.decode("utf-8", "replace"))
    return out


def io_tensor(buf: bytes, which: str) -> tuple[list[int], int]:
    """(shape, TensorType) of subgraph 0's first input ('input') or output ('output')."""
    sg = _vec(_root(buf), 2)[0]
    idx = _ints(sg, 1 if which == "input" else 2)[0]
    t = _vec(sg, 0)[idx]
    return _ints(t, 0), _scalar(t, 1, N.Int8Flags)
