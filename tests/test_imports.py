"""xlrun's import graph has no circles, and the CLI starts without the heavy libraries.

The graph is read from the source with ``ast``: every ``import`` statement counts, at module
top or inside a function (a deferred import is still a dependency), and importing ``a.b.c``
also runs the ``__init__`` of ``a`` and ``a.b`` (unless the importer is inside them, where
they are already running). A circle is a strongly connected component of two or more modules.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def modules(root: Path) -> dict[str, Path]:
    """Module name → file, for every ``.py`` file of the ``xlrun`` package under ``root``."""
    out = {}
    for path in sorted((root / "xlrun").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the xlrun modules it imports (see the module docstring)."""
    mods = modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            else:
                continue
            for imported in targets:
                target = imported
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if not target or target == name:
                    continue
                graph[name].add(target)
                parts = target.split(".")
                for i in range(1, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in mods and parent not in own:
                        graph[name].add(parent)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of two or more modules (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_xlrun_has_no_import_circles() -> None:
    graph = import_graph(REPO)
    assert len(graph) > 100 and sum(map(len, graph.values())) > 300  # it read the package
    assert circles(graph) == []


def test_the_check_finds_circles(tmp_path: Path) -> None:
    """Circles the old layout had: a registry module importing its registrants, which import
    it back from inside a function; and a package whose ``__init__`` imports the module that
    imports a name from it."""
    pkg = tmp_path / "xlrun"
    (pkg / "tasks").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "registry.py").write_text("def check():\n    from xlrun.samplers import S\n")
    (pkg / "samplers.py").write_text("from xlrun.registry import check\nS = 1\n")
    (pkg / "tasks" / "__init__.py").write_text("from xlrun.tasks import local\nD = {}\n")
    (pkg / "tasks" / "local.py").write_text("from xlrun.tasks import D\n")
    (pkg / "tasks" / "ok.py").write_text("from xlrun.tasks.local import x\n")
    assert circles(import_graph(tmp_path)) == [["xlrun.registry", "xlrun.samplers"],
                                               ["xlrun.tasks", "xlrun.tasks.local"]]


HEAVY = ("torch", "transformers", "polars", "sqlalchemy", "numpy", "scipy", "faiss")


def test_the_cli_starts_without_heavy_libraries() -> None:
    """``xlrun --help`` loads click and xlrun's CLI modules only: commands import the library
    they call inside their bodies, and flag choices from registries are read lazily."""
    code = ("import sys, xlrun.cli.main\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
