"""Architecture rules that keep the API light and the dependencies one-way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_api_imports_neither_torch_nor_loaders():
    code = ("import sys, neurograph.api.app, neurograph.cli, neurograph.client, neurograph.topology, "
            "neurograph.export, neurograph.search; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformer_lens', 'loaders')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_neurograph_never_imports_loaders_at_module_level():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "neurograph").rglob("*.py")
                 for line in p.read_text().splitlines()
                 if line.startswith(("from loaders", "import loaders"))]
    assert offenders == []


def test_no_python_package_named_graphql_shadows_graphql_core():
    assert not (ROOT / "graphql" / "__init__.py").exists()


def _import_graph() -> dict[str, set[str]]:
    """module -> the modules of neurograph/ and loaders/ it imports, at module level or inside
    a function (a lazy import that closes a circle is still a circle)."""
    import ast

    def name_of(path: Path) -> str:
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for top in ("neurograph", "loaders") for p in (ROOT / top).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)  # `from . import x`: the module x
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_in_neurograph_or_loaders():
    graph = _import_graph()
    assert "neurograph.api.pages" in graph["neurograph.api.app"]  # the graph is real: app renders through pages
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_lazy_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
