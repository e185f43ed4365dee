"""A small reader for .wast scripts: top-level commands as s-expression trees.

A script is a sequence of commands, each a parenthesised s-expression:
``(module ...)``, ``(assert_return (invoke "f" (i32.const 1)) (i32.const 2))``...
The reader keeps, for every list, the span of source text it came from, so a
module can be handed to ``wasmtime.wat2wasm`` verbatim. Comments (``;; ...``
and nested ``(; ... ;)``) and string escapes follow the WebAssembly text format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasmformer.frontend.errors import FrontendError

ESCAPES = {"n": 0x0A, "t": 0x09, "r": 0x0D, '"': 0x22, "'": 0x27, "\\": 0x5C}
HEX_DIGITS = "0123456789abcdefABCDEF"


@dataclass
class String:
    value: bytes


@dataclass
class SList:
    items: list = field(default_factory=list)  # str atoms, String, SList
    start: int = 0
    end: int = 0
    line: int = 0

    def head(self) -> str | None:
        return self.items[0] if self.items and isinstance(self.items[0], str) else None


def read_script(text: str) -> list[SList]:
    """The top-level commands of a script, in order."""
    reader = _Reader(text)
    commands = []
    while True:
        reader.skip_blank()
        if reader.pos >= len(text):
            return commands
        if text[reader.pos] != "(":
            raise FrontendError(f"wast line {reader.line()}: expected '('")
        commands.append(reader.list())


class _Reader:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def skip_blank(self) -> None:
        text = self.text
        while self.pos < len(text):
            if text[self.pos].isspace():
                self.pos += 1
            elif text.startswith(";;", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("(;", self.pos):
                self._block_comment()
            else:
                return

    def _block_comment(self) -> None:
        depth = 0
        while self.pos < len(self.text):
            if self.text.startswith("(;", self.pos):
                depth += 1
                self.pos += 2
            elif self.text.startswith(";)", self.pos):
                depth -= 1
                self.pos += 2
                if depth == 0:
                    return
            else:
                self.pos += 1
        raise FrontendError("wast: unterminated block comment")

    def list(self) -> SList:
        node = SList(start=self.pos, line=self.line())
        self.pos += 1  # "("
        while True:
            self.skip_blank()
            if self.pos >= len(self.text):
                raise FrontendError(f"wast line {node.line}: unbalanced parentheses")
            char = self.text[self.pos]
            if char == ")":
                self.pos += 1
                node.end = self.pos
                return node
            if char == "(":
                node.items.append(self.list())
            elif char == '"':
                node.items.append(self.string())
            else:
                node.items.append(self.atom())

    def atom(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace() and self.text[self.pos] not in '();"':
            self.pos += 1
        return self.text[start:self.pos]

    def string(self) -> String:
        self.pos += 1  # opening quote
        value = bytearray()
        text = self.text
        while self.pos < len(text) and text[self.pos] != '"':
            char = text[self.pos]
            if char != "\\":
                value += char.encode("utf-8")
                self.pos += 1
                continue
            value += self._escape()
        self.pos += 1  # closing quote
        return String(bytes(value))

    def _escape(self) -> bytes:
        text = self.text
        following = text[self.pos + 1]
        if following in ESCAPES:
            self.pos += 2
            return bytes([ESCAPES[following]])
        if following == "u":  # \u{hex}
            close = text.index("}", self.pos)
            code = int(text[self.pos + 3:close].replace("_", ""), 16)
            self.pos = close + 1
            return chr(code).encode("utf-8")
        if following in HEX_DIGITS:
            self.pos += 3
            return bytes([int(text[self.pos - 2:self.pos], 16)])
        raise FrontendError(f"wast line {self.line()}: unknown string escape \\{following}")
