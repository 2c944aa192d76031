"""The step DAG: cycles, parallel groups (levels), ancestors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in deps.get(node, ()):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep in deps and state.get(dep) is None:
                cycle = visit(dep)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in deps:
        if state.get(node) is None:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def levels(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Parallel groups: each step in the first level whose dependencies all come before it."""
    depth: dict[str, int] = {}

    def level(node: str) -> int:
        if node not in depth:
            depth[node] = 1 + max((level(d) for d in deps.get(node, ())), default=-1)
        return depth[node]

    out: list[list[str]] = []
    for node in deps:
        d = level(node)
        while len(out) <= d:
            out.append([])
        out[d].append(node)
    return out


def ancestors(deps: Mapping[str, Sequence[str]], node: str) -> set[str]:
    """Every step that must complete before `node` (transitively)."""
    seen: set[str] = set()
    todo = list(deps.get(node, ()))
    while todo:
        cur = todo.pop()
        if cur not in seen:
            seen.add(cur)
            todo.extend(deps.get(cur, ()))
    return seen
