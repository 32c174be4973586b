"""No import cycles in ``study/`` and ``analysis/``, checked on the source with ``ast``.

A cycle means neither module can be read, tested or moved without the other, and Python loads
one of them half-initialised (the lazy import inside a function that hides a cycle still runs,
so it still counts). The graph has one node per module (a package is its ``__init__``) and an
edge A -> B when A imports B anywhere, at module level or inside a function or method. How an
import statement becomes edges:

- ``import a.b`` -> ``a.b``; ``from a.b import c`` -> ``a.b.c`` when that is a module, else
  ``a.b`` (the name lives in ``a/b.py`` or is re-exported by ``a/b/__init__.py``: importing a
  package's ``__init__`` is an edge to the ``__init__``, so a package that re-exports its
  submodules and a submodule that imports the package form a cycle);
- relative imports (``from . import x``, ``from ..store import y``) are resolved against the
  importing module's package first, then as above;
- the parent packages Python initialises on the way (``a`` for ``a.b``) are not edges: a package
  always finishes loading before anything below it is asked for its names, so they cannot close
  a cycle on their own; the ``__init__`` that does import a submodule has that edge itself;
- imports under ``if TYPE_CHECKING:`` are not edges (they never run);
- only modules of the scanned trees are nodes; other imports are ignored.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = ("study", "analysis")


def module_name(path: Path, root: Path) -> str:
    """``study/services/design.py`` -> ``study.services.design``; a package is its ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runs(node: ast.AST) -> Iterable[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (n for stmt in child.orelse for n in [stmt, *_runs(stmt)])
            continue
        yield child
        yield from _runs(child)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, name: str, *, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of ``modules`` that ``source`` (module ``name``) imports, by the rules above."""
    found: set[str] = set()
    for node in _runs(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return found & modules


def import_graph(root: Path, trees: Iterable[str] = TREES) -> dict[str, set[str]]:
    """Module name -> the modules it imports, for every ``.py`` file under ``trees``."""
    paths = {
        module_name(path, root): path for tree in trees for path in (root / tree).rglob("*.py")
    }
    modules = set(paths)
    return {
        name: imports_of(
            path.read_text(encoding="utf-8"),
            name,
            is_package=path.name == "__init__.py",
            modules=modules,
        )
        - {name}
        for name, path in sorted(paths.items())
    }


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module, each as the list of
    modules along it, first module repeated at the end (``[a, b, a]``); sorted, so the failure
    message is stable."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(_a_cycle_through(graph, component) for component in components)


def _a_cycle_through(graph: Mapping[str, set[str]], component: set[str]) -> list[str]:
    """The shortest cycle through the component's first module (by name), breadth first."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & component):
                if nxt == start:
                    return [*paths[node], start]
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"{sorted(component)} holds no cycle through {start}")


def _tree(tmp_path: Path, files: Mapping[str, str]) -> dict[str, set[str]]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return import_graph(tmp_path, ["pkg"])


# The checker must be able to fail: each form of import is tried on a small tree.
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "import pkg.b\n",
                "pkg/b.py": "from pkg import a\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        (  # a function-level import still runs, so it still closes a cycle
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from pkg.b import x\n",
                "pkg/b.py": "x = 1\ndef f():\n    from . import a\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
        ),
        (  # a re-exporting __init__ and a submodule that imports the package
            {
                "pkg/__init__.py": "from pkg.sub.c import y\n",
                "pkg/sub/__init__.py": "",
                "pkg/sub/c.py": "from pkg import helper\ny = 1\n",
                "pkg/helper.py": "",
            },
            [],
        ),
        (
            {
                "pkg/__init__.py": "from pkg.sub.c import y\n",
                "pkg/sub/__init__.py": "",
                "pkg/sub/c.py": "from pkg import y as z\ny = 1\n",
            },
            [["pkg", "pkg.sub.c", "pkg"]],
        ),
        (  # relative imports, two levels up, into a package's __init__
            {
                "pkg/__init__.py": "",
                "pkg/sub/__init__.py": "from .d import f\n",
                "pkg/sub/d.py": "from ..e import g\ndef f(): ...\n",
                "pkg/e.py": "from pkg.sub import f\ndef g(): ...\n",
            },
            [["pkg.e", "pkg.sub", "pkg.sub.d", "pkg.e"]],
        ),
        (  # TYPE_CHECKING imports never run; other modules are not nodes
            {
                "pkg/__init__.py": "",
                "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from pkg import b\nimport json\n",
                "pkg/b.py": "from pkg import a\n",
            },
            [],
        ),
    ],
    ids=["absolute", "function-level", "package-no-cycle", "package", "relative", "type-checking"],
)
def test_cycles_are_found_in_every_form_of_import(
    tmp_path: Path, files: dict[str, str], expected: list[list[str]]
) -> None:
    assert cycles(_tree(tmp_path, files)) == expected


def test_the_graph_covers_both_trees() -> None:
    graph = import_graph(ROOT)
    assert "study.store" in graph and "analysis.agreement" in graph
    assert "study.store" in graph["study.services._common"]


def test_study_and_analysis_have_no_import_cycle() -> None:
    found = cycles(import_graph(ROOT))
    assert found == [], "import cycles (each module imports the next):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found
    )
