"""No two modules of wasmformer import each other, directly or through others.

Every import counts, at any level: a function-level import that closes a
cycle is still a cycle (tests/import_graph.py reads them with ``ast``).
"""

from __future__ import annotations

from tests.import_graph import cycles, import_graph, module_files

# Cycles that exist and are being removed: each a set of modules importing each other.
# The test fails when a new cycle appears and also when a listed one has gone, so that
# this list only ever shrinks. It is empty: keep it so.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()


def _describe(components) -> str:
    return "; ".join(" <-> ".join(sorted(component)) for component in sorted(components, key=sorted))


def test_the_package_has_no_new_import_cycles():
    found = cycles(import_graph(module_files()))
    new = found - KNOWN_CYCLES
    assert not new, f"import cycles (move the shared pieces to a module of their own): {_describe(new)}"


def test_every_known_cycle_still_exists():
    gone = KNOWN_CYCLES - cycles(import_graph(module_files()))
    assert not gone, f"these cycles are gone; remove them from KNOWN_CYCLES: {_describe(gone)}"


def test_the_reader_sees_every_kind_of_import(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from . import c\n")
    (package / "a.py").write_text("def f():\n    from pkg.sub import b\n")  # inside a function
    (package / "sub" / "b.py").write_text("from ..a import f\n")  # relative, two levels
    (package / "sub" / "c.py").write_text("import pkg.sub.b\nfrom pkg import a, sub\n")
    graph = import_graph(module_files(tmp_path, "pkg"))
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a"}
    assert graph["pkg.sub"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.sub.b", "pkg.a", "pkg.sub"}
    assert cycles(graph) == {frozenset({"pkg.a", "pkg.sub.b"}), frozenset({"pkg.sub", "pkg.sub.c"})}
