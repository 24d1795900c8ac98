"""The gateway's import graph, read from source with `ast` (nothing is imported or run).

What counts as an import of a module, wherever it appears in the file (module level, inside
functions, methods and classes, under `try`, and under `if TYPE_CHECKING:`):
- `import a.b` and `from a.b import c` (`c` is taken as the module `a.b.c` when that module
  exists, else as a name of `a.b`); relative imports are resolved against the importer;
- `importlib.import_module("a.b")` and `__import__("a.b")` with a literal name: a dependency
  hidden in a string is still a dependency.
Imports under `TYPE_CHECKING` count like any other: a lower layer that names a higher
layer's types in its signatures depends on that layer's API (mypy follows the import, and
the next edit turns it into a runtime import); a type that both layers need belongs in the
lower one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DYNAMIC_IMPORTERS = frozenset({"import_module", "__import__"})


@dataclass(frozen=True, slots=True)
class Import:
    importer: str
    target: str  # a dotted module name (for `from m import name`, `m.name` if it is a module)
    line: int


@dataclass(frozen=True, slots=True)
class SourceModule:
    name: str
    is_package: bool  # an __init__.py: relative imports resolve against the module itself
    source: str


def modules_under(package_dir: Path) -> list[SourceModule]:
    """Every module of the package whose directory is `package_dir`, by dotted name."""
    root = package_dir.parent
    found: list[SourceModule] = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found.append(SourceModule(".".join(parts), is_package, path.read_text(encoding="utf-8")))
    return found


def imports_of(module: SourceModule, known: frozenset[str]) -> Iterator[Import]:
    """Every import in `module`'s source; `known` names the modules that exist (see above)."""
    tree = ast.parse(module.source, filename=module.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module.name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node.module, node.level)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                target = submodule if submodule in known else base
                yield Import(module.name, target, node.lineno)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            name = node.args[0]
            assert isinstance(name, ast.Constant) and isinstance(name.value, str)
            yield Import(module.name, name.value, node.lineno)


def _resolve(module: SourceModule, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    parts = module.name.split(".")
    if not module.is_package:
        parts.pop()  # `from . import x` in a.b.c means a.b
    if level > 1:
        parts = parts[: -(level - 1)]
    return ".".join([*parts, name] if name else parts)


def _is_dynamic_import(call: ast.Call) -> bool:
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in _DYNAMIC_IMPORTERS or not call.args:
        return False
    first = call.args[0]
    return isinstance(first, ast.Constant) and isinstance(first.value, str)


def import_graph(package_dir: Path) -> list[Import]:
    """Every import made by every module of the package (internal and external)."""
    modules = modules_under(package_dir)
    known = frozenset(m.name for m in modules)
    # `from m import a, b` is one import of m: one entry per (importer, target, line)
    return list(dict.fromkeys(imp for m in modules for imp in imports_of(m, known)))
