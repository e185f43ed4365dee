"""`explain --debug`: each step of a C program names the source line clang's DWARF line table gives it."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json

import pytest

from wasmformer.cli import EXIT_ERROR, EXIT_OK, main

SQUARE_C = """#include <stdio.h>

__attribute__((noinline)) static int square(int x) {
    return x * x;
}

int main(void) {
    int digit = getchar() - '0';
    int n = square(digit);
    putchar('0' + n / 10);
    putchar('0' + n % 10);
    putchar('\\n');
    return 0;
}
"""
RETURN_LINE, CALL_LINE = 4, 9

needs_c = pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="needs the ziglang package")


@pytest.fixture(scope="module")
def explained(tmp_path_factory, universal):
    source = tmp_path_factory.mktemp("lines") / "square.c"
    source.write_text(SQUARE_C)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # capsys is per test; the compile and the run are done once
        status = main(["explain", str(source), "--input", "7", "--debug", "--json", "-q"])
    assert status == EXIT_OK
    return json.loads(out.getvalue())


@needs_c
def test_the_steps_of_square_are_its_return_line(explained):
    steps = [step for step in explained["steps"] if step["function"] == "square" and step["op"] != "local_set"]
    assert [step["instruction"] for step in steps] == ["local.get 0", "local.get 0", "i32.mul", "return1"]
    for step in steps:
        assert step["source_line"] == {"file": step["source_line"]["file"], "line": RETURN_LINE,
                                       "text": "return x * x;"}
        assert step["source_line"]["file"].endswith("square.c")


@needs_c
def test_the_call_is_on_its_line_and_the_library_has_none(explained):
    call = next(step for step in explained["steps"] if step["instruction"] == "call1 $square")
    assert call["source_line"]["line"] == CALL_LINE
    library = [step for step in explained["steps"] if step["function"] in ("putchar", "__stdio_write")]
    assert library and all(step["source_line"] is None for step in library)


def test_debug_needs_a_c_program(capsys, tmp_path, universal):
    source = tmp_path / "empty.wat"
    source.write_text('(module (func (export "main")))')
    assert main(["explain", str(source), "--debug", "-q"]) == EXIT_ERROR
    assert "--debug reads the C source lines of a .c program" in capsys.readouterr().err
