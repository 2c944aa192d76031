"""Which modules fail to import when imported first: run as a script, in a fresh interpreter.

    python -P tests/import_cycles.py PKG[,PKG...] MODULE...   (-P: not tests/ on the path)

A module that imports fine after others can fail when imported first only through an import
cycle: entering the cycle at another member leaves a module half-initialised when its sibling
reads from it. So: import every module once, recording each import statement's edge (importer to
imported, and every module to its parent package, which is executed first); find the strongly
connected components of that graph; then import each member of every component of more than one
module first, with no other member of its cycle loaded (a module outside every cycle cannot be
entered half-way, whatever the order). Within a cycle the order of execution is fixed by the
member entered first, so these are all the orders there are; the rest costs nothing extra
(importing each of the ~180 modules first took a minute: pydantic models are built anew each
time). Prints one JSON object: {"failed": {module: error}, "first": [modules imported first],
"edges": N}.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def import_graph(
    packages: tuple[str, ...], names: Sequence[str]
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Import `names` in order, recording the graph among the packages' modules; failures."""

    def ours(name: str) -> bool:
        return name.split(".")[0] in packages

    edges: dict[str, set[str]] = {}
    real = builtins.__import__

    def recording(
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] = (),
        level: int = 0,
    ) -> Any:
        module = real(name, globals, locals, fromlist, level)
        importer = (globals or {}).get("__name__", "")
        if ours(importer):
            package = (globals or {}).get("__package__") or ""
            target = importlib.util.resolve_name("." * level + name, package) if level else name
            if ours(target):
                out = edges.setdefault(importer, set())
                out.add(target)
                out.update(f"{target}.{item}" for item in fromlist or ()
                           if f"{target}.{item}" in sys.modules)  # fmt: skip
        return module

    failed: dict[str, str] = {}
    builtins.__import__ = recording  # type: ignore[assignment]
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
    finally:
        builtins.__import__ = real
    graph = {m: set(edges.get(m, ())) for m in sys.modules if ours(m)}
    for module in graph:
        if "." in module:
            graph[module].add(module.rsplit(".", 1)[0])
    return graph, failed


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in graph:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def import_first(name: str, cycle: list[str]) -> str | None:
    """Import `name` with no other member of its cycle loaded; the error, if any. What the cycle
    imports from outside it stays loaded: it imports none of the cycle (or it would be part of
    it), so it was executed the same whichever member came first."""
    for member in cycle:
        sys.modules.pop(member, None)
    try:
        importlib.import_module(name)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv: list[str]) -> None:
    packages = tuple(argv[0].split(","))
    graph, failed = import_graph(packages, argv[1:])
    first = []
    for cycle in cycles(graph):
        for name in cycle:
            first.append(name)
            error = import_first(name, cycle)
            if error is not None:
                failed.setdefault(name, error)
    edges = sum(len(v) for v in graph.values())
    print(json.dumps({"failed": failed, "first": first, "edges": edges}))


if __name__ == "__main__":
    main(sys.argv[1:])
