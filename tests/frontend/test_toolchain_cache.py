"""The compiled-C cache: a second compile of the same program runs no compiler, any change to the
source, a header it includes, the flags or the runtime header compiles again, and a damaged or
unwritable cache only costs a compile."""

from __future__ import annotations

import importlib.util
import json

import pytest

from wasmformer.disk_cache import CACHE_ENV
from wasmformer.frontend import toolchain

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ziglang") is None, reason="needs the ziglang package")

PROGRAM = '#include "answer.h"\nint main(void) { return ANSWER; }\n'


@pytest.fixture
def compiles(monkeypatch, tmp_path):
    """The cache in tmp_path/cache; the returned list counts the compiler's runs."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    runs = []
    real_run = toolchain._run_compiler

    def counted(*args, **kwargs):
        runs.append(args[0])
        return real_run(*args, **kwargs)

    monkeypatch.setattr(toolchain, "_run_compiler", counted)
    return runs


def _program(directory, answer: int):
    (directory / "answer.h").write_text(f"#define ANSWER {answer}\n")
    (directory / "main.c").write_text(PROGRAM)
    return directory / "main.c"


def test_the_second_compile_comes_from_the_cache(tmp_path, compiles):
    source = _program(tmp_path, 42)
    first = toolchain.compile_c(source)
    second = toolchain.compile_c(source)
    assert second == first and len(compiles) == 1
    assert [path.suffix for path in (tmp_path / "cache" / toolchain.C_CACHE_DIR).iterdir()] == [".json"]


def test_source_text_is_cached_too(tmp_path, compiles):
    text = "int main(void) { return 7; }\n"
    assert toolchain.compile_c(text) == toolchain.compile_c(text) and len(compiles) == 1


def test_an_edited_included_header_compiles_again(tmp_path, compiles):
    source = _program(tmp_path, 42)
    first = toolchain.compile_c(source)
    _program(tmp_path, 43)
    second = toolchain.compile_c(source)
    assert second != first and len(compiles) == 2
    assert toolchain.compile_c(source) == second and len(compiles) == 2


def test_the_source_and_the_flags_are_in_the_key(tmp_path, compiles):
    source = _program(tmp_path, 42)
    toolchain.compile_c(source)
    toolchain.compile_c(source, opt="-O1")
    toolchain.compile_c(source, stack_size=2048)
    source.write_text(PROGRAM + "int unused;\n")
    toolchain.compile_c(source)
    assert len(compiles) == 4


def test_the_runtime_include_directory_is_in_the_key(tmp_path, compiles, monkeypatch):
    source = _program(tmp_path, 42)
    toolchain.compile_c(source)
    include = tmp_path / "include"
    include.mkdir()
    (include / "wasmformer.h").write_text((toolchain.INCLUDE_DIR / "wasmformer.h").read_text() + "\n/* edited */\n")
    monkeypatch.setattr(toolchain, "INCLUDE_DIR", include)
    toolchain.compile_c(source)
    assert len(compiles) == 2


def test_a_damaged_entry_compiles_again(tmp_path, compiles):
    source = _program(tmp_path, 42)
    first = toolchain.compile_c(source)
    [entry] = (tmp_path / "cache" / toolchain.C_CACHE_DIR).iterdir()
    entry.write_bytes(b"\x00 not json")
    assert toolchain.compile_c(source) == first and len(compiles) == 2
    assert toolchain.compile_c(source) == first and len(compiles) == 2  # rewritten whole


def test_a_damaged_module_that_is_still_base64_compiles_again(tmp_path, compiles):
    source = _program(tmp_path, 42)
    first = toolchain.compile_c(source)
    [entry] = (tmp_path / "cache" / toolchain.C_CACHE_DIR).iterdir()
    record = json.loads(entry.read_text())
    encoded = record["wasm"]
    record["wasm"] = encoded[:-8] + ("A" if encoded[-8] != "A" else "B") + encoded[-7:]
    entry.write_text(json.dumps(record))
    assert toolchain.compile_c(source) == first and len(compiles) == 2


def test_an_unwritable_cache_still_compiles(tmp_path, compiles, monkeypatch):
    blocked = tmp_path / "a file, not a directory"
    blocked.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocked))
    source = _program(tmp_path, 42)
    assert toolchain.compile_c(source) == toolchain.compile_c(source) and len(compiles) == 2


def test_the_dependency_list_is_read_like_make():
    rule = "out.o: main.c /a/b.h \\\n  /with\\ space/c.h /dollar$$/d.h\n"
    assert toolchain._dependencies(rule) == ["main.c", "/a/b.h", "/with space/c.h", "/dollar$/d.h"]
