"""The rollback and timing rules of the step DAG on their own (`orchestrator.runbook.graph`).

Tests `nearest_dependents` (the undone dependents a step's undo waits for, skipping steps that
are not undone), `undo_plan` (reverse completion order plus those waits; simulated on random DAGs
to show every wait is a real dependent and the plan never deadlocks) and `critical_path`.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.runbook.graph import ancestors, critical_path, nearest_dependents, undo_plan

#: a -> b, c -> d (b and c depend on a, d on both)
DIAMOND = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
CHAIN = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}


# --------------------------------------------------------------------- nearest_dependents
def test_nearest_dependents_diamond() -> None:
    every = set(DIAMOND)
    assert nearest_dependents(DIAMOND, "a", every) == {"b", "c"}
    assert nearest_dependents(DIAMOND, "b", every) == {"d"}
    assert nearest_dependents(DIAMOND, "d", every) == set()
    assert nearest_dependents(DIAMOND, "a", {"a", "d"}) == {"d"}  # through b and c
    assert nearest_dependents(DIAMOND, "a", {"a", "b", "d"}) == {"b", "d"}  # d also via c


def test_nearest_dependents_skip_steps_not_undone() -> None:
    assert nearest_dependents(CHAIN, "a", {"a", "c", "d"}) == {"c"}
    assert nearest_dependents(CHAIN, "a", {"a"}) == set()


# ----------------------------------------------------------------------------- undo_plan
def test_undo_plan_diamond() -> None:
    todo, waits = undo_plan(DIAMOND, ["a", "c", "b", "d"])
    assert todo == ["d", "b", "c", "a"]
    assert waits == {"d": set(), "b": {"d"}, "c": {"d"}, "a": {"b", "c"}}


def test_undo_plan_waits_skip_over_a_step_not_undone() -> None:
    # b was a check (nothing to undo): a's undo waits for c, the nearest undone dependent
    todo, waits = undo_plan(CHAIN, ["a", "c", "d"])
    assert todo == ["d", "c", "a"]
    assert waits == {"d": set(), "c": {"d"}, "a": {"c"}}


def test_undo_plan_independent_steps_do_not_wait() -> None:
    todo, waits = undo_plan({"x": [], "y": [], "z": []}, ["y", "x", "z"])
    assert todo == ["z", "x", "y"]
    assert waits == {"x": set(), "y": set(), "z": set()}


def test_undo_plan_nothing_to_undo() -> None:
    assert undo_plan(DIAMOND, []) == ([], {})


@st.composite
def dags_and_completions(draw: st.DrawFn) -> tuple[dict[str, list[str]], list[str]]:
    """Steps s0..sN, each depending only on lower-numbered ones, and the completion order of a
    random subset of them that respects the dependencies (a topological order of the subset)."""
    n = draw(st.integers(min_value=1, max_value=12))
    deps: dict[str, list[str]] = {"s0": []}
    for i in range(1, n):
        deps[f"s{i}"] = [f"s{j}" for j in sorted(draw(st.sets(st.integers(0, i - 1))))]
    chosen = set(draw(st.lists(st.sampled_from(sorted(deps)), unique=True)))
    done: list[str] = []

    def ready(sid: str) -> bool:
        return sid not in done and all(d in done or d not in chosen for d in deps[sid])

    while len(done) < len(chosen):
        done.append(draw(st.sampled_from(sorted(s for s in chosen if ready(s)))))
    return deps, done


@given(dags_and_completions())
def test_undo_plan_waits_are_dependents_and_never_deadlock(
    case: tuple[dict[str, list[str]], list[str]],
) -> None:
    deps, completion = case
    todo, waits = undo_plan(deps, completion)
    assert todo == completion[::-1]
    assert set(waits) == set(todo)
    for sid, wait in waits.items():
        assert wait <= set(todo)
        assert all(sid in ancestors(deps, w) for w in wait)
    # every undone dependent is waited for, directly or through another wait
    for sid in todo:
        reach: set[str] = set()
        frontier = set(waits[sid])
        while frontier:
            reach |= frontier
            frontier = set().union(*(waits[w] for w in frontier)) - reach
        assert reach == {t for t in todo if sid in ancestors(deps, t)}
    # run the undos as the workflow does: any step whose waits are all undone may go
    undone: list[str] = []
    pending = list(todo)
    while pending:
        runnable = [s for s in pending if waits[s] <= set(undone)]
        assert runnable, f"deadlock: {pending} wait for {[waits[s] for s in pending]}"
        undone.append(runnable[0])
        pending.remove(runnable[0])
    assert sorted(undone) == sorted(todo)


# -------------------------------------------------------------------------- critical_path
def test_critical_path_picks_the_costliest_chain() -> None:
    cost = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0}
    assert critical_path(DIAMOND, cost) == (["a", "b", "d"], 7.0)
    assert critical_path(DIAMOND, {**cost, "c": 6.0}) == (["a", "c", "d"], 8.0)


def test_critical_path_of_independent_steps_is_the_costliest_one() -> None:
    deps: dict[str, list[str]] = {"x": [], "y": [], "z": ["x"]}
    assert critical_path(deps, {"x": 1.0, "y": 3.0, "z": 1.5}) == (["y"], 3.0)
    assert critical_path(deps, {"x": 2.0, "y": 3.0, "z": 1.5}) == (["x", "z"], 3.5)


def test_critical_path_of_nothing() -> None:
    assert critical_path({}, {}) == ([], 0.0)
