"""Bounds-checked flatbuffer reading for untrusted files.

Every table, vtable, field, vector and string is checked against the buffer before it is read,
so a corrupt file raises :class:`FlatbufferError` naming what is out of range; nothing here
raises ``struct.error`` or ``IndexError``, and no loop runs longer than the buffer is long (a
vector of ``n`` elements must fit in the bytes that are there).
"""
from __future__ import annotations

import struct

_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")


class FlatbufferError(ValueError):
    """A flatbuffer offset, vtable, vector or string lies outside the buffer or is malformed."""


def _fmt(code: str) -> struct.Struct:
    return struct.Struct("<" + code)


#: scalar struct formats by name, for :meth:`Table.scalar` and :meth:`Table.numbers`
BYTE, UBYTE, BOOL = _fmt("b"), _fmt("B"), _fmt("?")
SHORT, USHORT, INT, UINT = _fmt("h"), _fmt("H"), _fmt("i"), _fmt("I")
LONG, ULONG, FLOAT, DOUBLE = _fmt("q"), _fmt("Q"), _fmt("f"), _fmt("d")


class Table:
    """One flatbuffer table at ``pos`` in ``buf``, its vtable already checked.

    ``what`` names the table in error messages ("subgraph 0 tensor 12").
    """

    __slots__ = ("buf", "pos", "what", "_vt", "_vlen", "_olen", "_extent")

    def __init__(self, buf: bytes, pos: int, what: str, extent: list[int] | None = None):
        n = len(buf)
        if pos < 0 or pos + 4 > n:
            raise FlatbufferError(f"{what}: table offset {pos} is outside the {n}-byte buffer")
        vt = pos - _I32.unpack_from(buf, pos)[0]
        if vt < 0 or vt + 4 > n:
            raise FlatbufferError(f"{what}: vtable offset {vt} is outside the {n}-byte buffer")
        vlen, olen = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
        if vlen < 4 or vlen % 2 or vt + vlen > n:
            raise FlatbufferError(f"{what}: malformed vtable (size {vlen} at {vt})")
        if olen < 4 or pos + olen > n:
            raise FlatbufferError(f"{what}: table of {olen} bytes at {pos} runs past the buffer")
        self.buf, self.pos, self.what = buf, pos, what
        self._vt, self._vlen, self._olen = vt, vlen, olen
        self._extent = extent if extent is not None else [0]
        self._reach(max(pos + olen, vt + vlen))

    def _reach(self, end: int) -> None:
        if end > self._extent[0]:
            self._extent[0] = end

    @property
    def extent(self) -> int:
        """The furthest byte read so far through this table or any reached from it."""
        return self._extent[0]

    @classmethod
    def root(cls, buf: bytes, what: str = "root table") -> "Table":
        """The root table of a finished flatbuffer (uoffset at byte 0)."""
        if len(buf) < 8:
            raise FlatbufferError(f"{what}: buffer of {len(buf)} bytes is too short")
        return cls(buf, _U32.unpack_from(buf, 0)[0], what, [8])

    def _field(self, slot: int, size: int) -> int:
        """Absolute position of field ``slot`` (0 when absent), checked to fit the table."""
        voff = 4 + 2 * slot
        if voff + 2 > self._vlen:
            return 0
        o = _U16.unpack_from(self.buf, self._vt + voff)[0]
        if not o:
            return 0
        if o + size > self._olen:
            raise FlatbufferError(f"{self.what}: field {slot} lies outside its table")
        return self.pos + o

    def has(self, slot: int) -> bool:
        """True when field ``slot`` is present."""
        return self._field(slot, 1) != 0

    def scalar(self, slot: int, fmt: struct.Struct, default=0):
        """A scalar field, or ``default`` when absent."""
        p = self._field(slot, fmt.size)
        return fmt.unpack_from(self.buf, p)[0] if p else default

    def _target(self, slot: int, kind: str) -> int | None:
        p = self._field(slot, 4)
        if not p:
            return None
        t = p + _U32.unpack_from(self.buf, p)[0]
        if t + 4 > len(self.buf):
            raise FlatbufferError(f"{self.what}: {kind} field {slot} points outside the buffer")
        return t

    def table(self, slot: int, what: str) -> "Table | None":
        """A sub-table field, or None when absent."""
        t = self._target(slot, "table")
        return None if t is None else Table(self.buf, t, what, self._extent)

    def _vector(self, slot: int, elem: int) -> tuple[int, int]:
        """(start, length) of a vector field whose ``length * elem`` bytes are all present."""
        t = self._target(slot, "vector")
        if t is None:
            return 0, 0
        n = _U32.unpack_from(self.buf, t)[0]
        if t + 4 + n * elem > len(self.buf):
            raise FlatbufferError(f"{self.what}: vector field {slot} of {n} elements runs "
                                  f"past the end of the {len(self.buf)}-byte buffer")
        self._reach(t + 4 + n * elem)
        return t + 4, n

    def vector_len(self, slot: int, elem: int = 1) -> int:
        """Number of elements of a vector field (0 when absent), checked to fit."""
        return self._vector(slot, elem)[1]

    def numbers(self, slot: int, fmt: struct.Struct) -> tuple:
        """A vector of scalars (empty when absent)."""
        start, n = self._vector(slot, fmt.size)
        return struct.unpack_from(f"<{n}{fmt.format[-1]}", self.buf, start) if n else ()

    def blob(self, slot: int) -> bytes:
        """A [ubyte] vector's bytes (empty when absent)."""
        start, n = self._vector(slot, 1)
        return bytes(self.buf[start:start + n])

    def string(self, slot: int) -> bytes | None:
        """A string field's bytes (no decoding), or None when absent."""
        start, n = self._vector(slot, 1)
        if not start:
            return None
        if start + n >= len(self.buf) or self.buf[start + n] != 0:
            raise FlatbufferError(f"{self.what}: string field {slot} is not NUL-terminated")
        self._reach(start + n + 1)
        return bytes(self.buf[start:start + n])

    def text(self, slot: int, default: str = "") -> str:
        """A string field decoded as UTF-8 (undecodable bytes replaced), or ``default``."""
        s = self.string(slot)
        return default if s is None else s.decode("utf-8", "replace")

    def tables(self, slot: int, what: str) -> list["Table"]:
        """A vector of tables, each checked; ``what`` gets `` N`` appended per element."""
        start, n = self._vector(slot, 4)
        out = []
        for i in range(n):
            p = start + 4 * i
            out.append(Table(self.buf, p + _U32.unpack_from(self.buf, p)[0], f"{what} {i}",
                             self._extent))
        return out


def has_identifier(buf: bytes, ident: bytes) -> bool:
    """True when the 4-byte file identifier after the root offset is ``ident``."""
    return len(buf) >= 8 and bytes(buf[4:8]) == ident
