"""The import graph of eldric, read from the source with `ast` (nothing is imported):

- the forwarding core, the fast lane and the middleware (eldric/stream, eldric/serve,
  eldric/http.py) are in no import cycle, counting the imports that run (those under
  `if TYPE_CHECKING:` do not), each package taken as one component: stream/ importing
  serve/ while serve/ imports stream/ is a cycle whichever modules the edges join;
- the shared layers (everything outside eldric/roles/) import no role;
- no role imports another role.

`python -m tests.test_layering [ROOT]` prints the runtime edges among the core, the lane
and the middleware (and the modules between them), one `a -> b` a line: how the graph in
docs/design-notes.md ("Layering") was drawn, before and after.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WATCHED = ("eldric.stream", "eldric.serve", "eldric.http")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, package: str) -> list[tuple[str, bool]]:
    """(imported module or name, at runtime?) for every import in the tree."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.append((base, runtime))
            found.extend((f"{base}.{alias.name}", runtime) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, runtime)

    visit(tree, True)
    return found


def graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(runtime edges, all edges) between eldric's modules. Importing a.b.c runs a.b's
    __init__ too, so it counts as an edge to that package as well, unless the importer is
    inside it (a package's own modules importing each other is how packages work)."""
    paths = {_module_name(p, root): p for p in (root / "eldric").rglob("*.py")}
    runtime: dict[str, set[str]] = {m: set() for m in paths}
    every: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        own = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        for name, at_runtime in _imports(ast.parse(path.read_text()), package):
            if name not in paths:
                continue  # a name imported from a module, or not eldric's
            parts = name.split(".")
            targets = ({name} | {".".join(parts[:i]) for i in range(1, len(parts))}) - own
            targets.discard(mod)
            every[mod] |= targets
            if at_runtime:
                runtime[mod] |= targets
    return runtime, every


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


def _watched(mod: str) -> bool:
    return any(mod == w or mod.startswith(w + ".") for w in WATCHED)


def component(mod: str) -> str:
    """A package of eldric (stream, serve, bus, roles.edge, …) is one component; a
    top-level module (http, errors, exchange, …) is one of its own."""
    parts = mod.split(".")
    if len(parts) > 2 and parts[1] == "roles":
        return ".".join(parts[:3])
    return ".".join(parts[:2])


def components(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        ca = component(a)
        out.setdefault(ca, set()).update(c for b in targets if (c := component(b)) != ca)
    return out


def _role(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "roles" else None


def test_the_core_the_lane_and_the_middleware_import_no_cycle():
    runtime, _ = graph()
    bad = [c for c in _cycles(components(runtime)) if any(_watched(m) for m in c)]
    assert bad == [], bad


def test_shared_layers_import_no_role_and_roles_not_each_other():
    _, every = graph()
    shared = [(a, b) for a, targets in every.items() for b in targets
              if _role(a) is None and _role(b) is not None]
    assert shared == []
    crossed = [(a, b) for a, targets in every.items() for b in targets
               if _role(a) and _role(b) and _role(a) != _role(b)]
    assert crossed == []


def test_the_checker_sees_a_cycle_and_ignores_type_checking(tmp_path):
    """The checker itself: a cycle through a package's __init__ is one, an import under
    TYPE_CHECKING is none, a role importing another role is caught."""
    files = {
        "eldric/__init__.py": "",
        "eldric/http.py": "from eldric.serve.lane import x\n",
        "eldric/serve/__init__.py": "",
        "eldric/serve/lane.py": "from eldric import stream\n",
        "eldric/stream/__init__.py": "from eldric.stream.forward import f\n",
        "eldric/stream/forward.py": ("from typing import TYPE_CHECKING\n"
                                     "if TYPE_CHECKING:\n    from eldric.serve.lane import x\n"
                                     "def f():\n    from eldric.http import m\n"),
        "eldric/roles/__init__.py": "",
        "eldric/roles/a/__init__.py": "import eldric.roles.b.handlers\n",
        "eldric/roles/b/__init__.py": "",
        "eldric/roles/b/handlers.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    runtime, every = graph(tmp_path)
    assert "eldric.serve.lane" not in runtime["eldric.stream.forward"]
    assert "eldric.serve.lane" in every["eldric.stream.forward"]
    assert _cycles(runtime) == [["eldric.http", "eldric.serve.lane", "eldric.stream",
                                 "eldric.stream.forward"]]
    assert _cycles(components(runtime)) == [["eldric.http", "eldric.serve", "eldric.stream"]]
    assert {"eldric.roles.b", "eldric.roles.b.handlers"} <= every["eldric.roles.a"]


def edges(root: Path = ROOT) -> list[str]:
    """The runtime edges between components that start or end in the core, the lane or
    the middleware, and the cycles among components."""
    comp = components(graph(root)[0])
    lines = sorted(f"{a} -> {b}" for a, targets in comp.items() for b in targets
                   if (_watched(a) or _watched(b)) and b != "eldric")
    return lines + [f"cycle: {' <-> '.join(c)}" for c in _cycles(comp)]


if __name__ == "__main__":
    print("\n".join(edges(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)))
