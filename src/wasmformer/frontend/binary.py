"""A cursor over the bytes of a wasm binary: fixed-size fields and LEB128 integers.

LEB128 ("little endian base 128") writes an integer 7 bits per byte, least
significant group first; the high bit of each byte says "more bytes follow".
Signed values are two's complement, sign-extended from the last group's top bit.
"""

from __future__ import annotations

from wasmformer.frontend.errors import FrontendError

LEB_GROUP_BITS = 7
LEB_GROUP_MASK = 0x7F
LEB_CONTINUE_BIT = 0x80
LEB_SIGN_BIT = 0x40  # the top bit of the last 7-bit group of a signed LEB128


class Reader:
    """Reads a wasm binary front to back; every error names the byte offset."""

    def __init__(self, data: bytes, start: int = 0, end: int | None = None):
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def fail(self, message: str) -> FrontendError:
        return FrontendError(f"malformed wasm binary at byte {self.pos}: {message}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def bytes(self, count: int) -> bytes:
        if self.pos + count > self.end:
            raise self.fail("unexpected end")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return bytes(chunk)

    def u32(self) -> int:
        return self._unsigned_leb(32)

    def u64(self) -> int:
        return self._unsigned_leb(64)

    def s32(self) -> int:
        return self._signed_leb(32)

    def s33(self) -> int:
        """Block types: a type index is written as a non-negative 33-bit signed LEB128."""
        return self._signed_leb(33)

    def s64(self) -> int:
        return self._signed_leb(64)

    def name(self) -> str:
        raw = self.bytes(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("a name is not valid UTF-8") from None

    def vector(self, read_item) -> list:
        return [read_item() for _ in range(self.u32())]

    def _leb_groups(self, bits: int, kind: str) -> tuple[int, int, int]:
        """The 7-bit groups of one LEB128 number: (value so far, bits read, last group byte)."""
        value, shift = 0, 0
        while True:
            group = self.byte()
            value |= (group & LEB_GROUP_MASK) << shift
            shift += LEB_GROUP_BITS
            if not group & LEB_CONTINUE_BIT:
                return value, shift, group
            if shift >= bits:
                raise self.fail(f"integer too long for {kind}{bits}")

    def _unsigned_leb(self, bits: int) -> int:
        value, _, _ = self._leb_groups(bits, "u")
        if value >= 1 << bits:
            raise self.fail(f"integer too large for u{bits}")
        return value

    def _signed_leb(self, bits: int) -> int:
        value, shift, group = self._leb_groups(bits, "s")
        if group & LEB_SIGN_BIT:
            value -= 1 << shift
        if not -(1 << (bits - 1)) <= value < 1 << (bits - 1):
            raise self.fail(f"integer out of range for s{bits}")
        return value
