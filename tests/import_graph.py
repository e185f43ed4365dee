"""The import graph of the wasmformer package, read from the source with ``ast`` (nothing is imported).

Every ``import`` statement counts, wherever it is: module level, inside a
function, under ``if TYPE_CHECKING:``. ``from pkg import name`` is an edge to
the module ``pkg.name`` when that is a module, else to ``pkg``. Relative
imports are resolved against the importing module's package. Importing a
submodule is not counted as importing its parent packages' ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "wasmformer"


def module_files(root: Path = SOURCE_ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, package)
            found.update(_from_targets(base, [alias.name for alias in node.names], modules))
    return {target for target in found if target in modules and target != name}


def _absolute(module: str | None, level: int, package: str) -> str:
    if level == 0:
        return module or ""
    anchor = package.split(".")
    anchor = anchor[:len(anchor) - (level - 1)]
    return ".".join(anchor + ([module] if module else []))


def _from_targets(base: str, names: list[str], modules: dict[str, Path]) -> set[str]:
    submodules = {f"{base}.{name}" for name in names if f"{base}.{name}" in modules}
    plain_names = any(f"{base}.{name}" not in modules for name in names)
    return submodules | ({base} if plain_names else set())


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    """``start`` and every module it imports, directly or not."""
    seen, stack = {start}, [start]
    while stack:
        for target in graph[stack.pop()]:
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module: each is a set of files importing each other."""
    return {component for component in _components(graph) if len(component) > 1}


def _components(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep import chains)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    result.append(_pop_component(node, stack, on_stack))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph[target]))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return result


def _pop_component(root: str, stack: list[str], on_stack: set[str]) -> frozenset[str]:
    component = []
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.append(node)
        if node == root:
            return frozenset(component)
