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


def nearest_dependents(deps: Mapping[str, Sequence[str]], node: str, among: set[str]) -> set[str]:
    """The steps of `among` that depend on `node` with no other step of `among` in between (the
    undos a step's undo must wait for: its nearest dependents that are undone too)."""
    children: dict[str, list[str]] = {}
    for sid, ds in deps.items():
        for dep in ds:
            children.setdefault(dep, []).append(sid)
    found: set[str] = set()
    seen: set[str] = set()
    todo = list(children.get(node, ()))
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.add(cur)
        if cur in among:
            found.add(cur)
        else:
            todo.extend(children.get(cur, ()))
    return found


def undo_plan(
    deps: Mapping[str, Sequence[str]], completion: Sequence[str]
) -> tuple[list[str], dict[str, set[str]]]:
    """How a rollback runs: the steps to undo, in reverse completion order, and for each the
    undos it must wait for (its nearest dependents among them); the others run in parallel."""
    todo = list(reversed(completion))
    undoing = set(todo)
    return todo, {sid: nearest_dependents(deps, sid, undoing) for sid in todo}


def critical_path(
    deps: Mapping[str, Sequence[str]], cost: Mapping[str, float]
) -> tuple[list[str], float]:
    """The chain of dependencies with the largest total cost, and that cost."""
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(sid: str) -> tuple[float, list[str]]:
        if sid not in best:
            before = max((longest(d) for d in deps.get(sid, ())), default=(0.0, []))
            best[sid] = (before[0] + cost[sid], [*before[1], sid])
        return best[sid]

    total, path = max((longest(s) for s in deps), default=(0.0, []))
    return path, total
