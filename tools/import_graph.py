"""The import graph of the cnnkit package: cycles and imports that go against the layers.

    python tools/import_graph.py            # prints cycles and layer violations; exit 1 if any
    python tools/import_graph.py --edges    # also every edge, "a -> b"

Every `import` / `from ... import` statement counts, wherever it stands: at module
level, inside a function (lazy imports), or under `if TYPE_CHECKING:`. An import of
`a.b.c` is an edge to the module `a.b.c` only (not to the packages above it);
`from a.b import c` is an edge to `a.b.c` when `c` is a submodule, else to `a.b`.

The layers (docs/architecture.md), top to bottom; a module may import from its own
layer's package and from any layer below, never from above:

    __main__ modules                  entry points (`python -m cnnkit`, `python -m cnnkit.service`)
    cli                               the command line (it starts the service: `cnnkit serve`)
    service                           the HTTP service
    faces, style, visualize, ndconv   the applications
    runtime, weights, images          shared by every application
    errors                            the one exception tree

Within the applications, faces, style, visualize and ndconv do not import one
another, except where LAYER_EXCEPTIONS says so.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cnnkit"

#: top-level part -> layer number (higher = nearer the user).
LAYERS = {
    "__main__": 5, "cli": 4, "service": 3,
    "faces": 2, "style": 2, "visualize": 2, "ndconv": 2,
    "runtime": 1, "weights": 1, "images": 1,
    "errors": 0, "__init__": 0,
}

#: (importer part, imported part) pairs allowed across one layer: visualize shows what the
#: face encoder and the style network's VGG learned, so it may load those models.
LAYER_EXCEPTIONS = {("visualize", "faces"), ("visualize", "style")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / PACKAGE).rglob("*.py"))}


def _is_package(name: str, known: dict[str, Path]) -> bool:
    return name in known and known[name].name == "__init__.py"


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cnnkit modules that `name` (file `path`) imports, anywhere in its text."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets: Iterable[str] = (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                continue
            # `import cnnkit.a.b.f` where f is not a module: the nearest module above it.
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        # Iterative DFS: the graph is small, but recursion limits are not worth thinking about.
        work = [(v, iter(sorted(edges.get(v, ()))))]
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        while work:
            node, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    break
                if w in on_stack:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found)


def part(module: str) -> str:
    """The layer-bearing part of a module name: `__main__` for entry points, else the top-level part."""
    parts = module.split(".")
    if parts[-1] == "__main__":
        return "__main__"
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    out = []
    for src, targets in sorted(edges.items()):
        for dst in sorted(targets):
            a, b = part(src), part(dst)
            if a == b or (a, b) in LAYER_EXCEPTIONS:
                continue
            if a not in LAYERS or b not in LAYERS:
                out.append(f"{src} -> {dst}: {a if a not in LAYERS else b} has no layer in tools/import_graph.py")
            elif LAYERS[b] >= LAYERS[a] and src != PACKAGE:
                out.append(f"{src} -> {dst}: {a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="print every edge too")
    args = parser.parse_args(argv)
    edges = graph()
    if args.edges:
        for src, targets in sorted(edges.items()):
            for dst in sorted(targets):
                print(f"{src} -> {dst}")
    found = cycles(edges)
    bad = layer_violations(edges)
    for component in found:
        print("cycle:", " <-> ".join(component))
    for line in bad:
        print("layer:", line)
    n_edges = sum(len(t) for t in edges.values())
    print(f"{len(edges)} modules, {n_edges} imports, {len(found)} cycles, {len(bad)} layer violations")
    return 1 if found or bad else 0


if __name__ == "__main__":
    sys.exit(main())
