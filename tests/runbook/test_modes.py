"""Disaster mode on its own, without a sandbox: planned, unplanned and recovery runs of a runbook.

Tests the format (`Step.planned`, `Step.unplanned`, `Runbook.recovery`, `has_unplanned`), which
steps each kind of run is made of and how dependencies are handed down past the steps left out
(`modes.select`, `modes.replaced`), the loader's rules on each kind (located problems), the
resolver (replacements, owed steps, static stability, reach, recovery runs) and the shop runbook's
three kinds of run.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from activities import registry
from orchestrator.runbook.graph import ancestors, find_cycle
from orchestrator.runbook.loader import RunbookError, load_file, load_text
from orchestrator.runbook.models import Replacement, Runbook, Step, Unplanned
from orchestrator.runbook.modes import KINDS, Kind, replaced, select
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runs import PlannedStep, ReachCall, StepKind, SwitchInput

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "runbooks" / "shop-region-switch.yaml"
EAST, WEST = "us-east-1", "us-west-2"

#: Six lines: the first line of a test's steps is line 7 of rb.yaml.
HEADER = """\
apiVersion: failover.dev/v1
kind: Runbook
name: t
regions: [us-east-1, us-west-2]
approvers: [alice]
steps:
"""

FLAG = "{namespace: shop, name: flags, key: frozen, value: 'true'}"
AURORA = '{global_cluster: g, target_region: "${{ to_region }}"}'


def load(body: str) -> Runbook:
    return load_text(HEADER + body, "rb.yaml")


def problems(body: str) -> list[str]:
    with pytest.raises(RunbookError) as err:
        load(body)
    return [str(p) for p in err.value.problems]


def ids(steps: list[Step] | list[PlannedStep]) -> list[str]:
    return [s.id for s in steps]


def deps(steps: list[Step] | list[PlannedStep]) -> dict[str, list[str]]:
    return {s.id: list(s.depends_on) for s in steps}


def run(rb: Runbook, kind: Kind, frm: str = EAST, to: str = WEST) -> SwitchInput:
    return resolve(rb, frm, to, requester="alice", mode="drill", kind=kind)


# ------------------------------------------------------------------------------ the model
def test_step_modes_default_to_run() -> None:
    step = Step(id="a", type="noop")
    assert (step.planned, step.unplanned) == ("run", "run")


@pytest.mark.parametrize("choice", ["run", "skip", "defer"])
def test_unplanned_takes_a_word(choice: str) -> None:
    assert Step.model_validate({"id": "a", "type": "noop", "unplanned": choice}).unplanned == choice


def test_unplanned_takes_a_replacement() -> None:
    step = Step.model_validate(
        {"id": "a", "type": "noop", "unplanned": {"replace": {"type": "wait", "params": {"x": 1}}}}
    )
    assert isinstance(step.unplanned, Unplanned)
    assert step.unplanned.replace.type == "wait"
    assert step.unplanned.replace.params == {"x": 1}
    assert step.unplanned.replace.irreversible is False
    assert step.unplanned.replace.region is None
    assert step.unplanned.replace.timeout is None


@pytest.mark.parametrize(
    "fields",
    [
        {"planned": "defer"},  # only unplanned runs defer
        {"planned": "replace"},
        {"unplanned": "later"},
        {"unplanned": {"type": "noop"}},  # a replacement goes under `replace:`
        {"unplanned": {"replace": {"type": "noop", "depends_on": ["b"]}}},  # keeps the step's
    ],
)
def test_bad_modes_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Step.model_validate({"id": "a", "type": "noop", **fields})


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([{"id": "a", "type": "noop"}], False),
        ([{"id": "a", "type": "noop", "unplanned": "run", "planned": "run"}], False),
        ([{"id": "a", "type": "noop", "planned": "skip"}], True),
        ([{"id": "a", "type": "noop", "unplanned": "skip"}], True),
        ([{"id": "a", "type": "noop"}, {"id": "b", "type": "noop", "unplanned": "defer"}], True),
        ([{"id": "a", "type": "noop", "unplanned": {"replace": {"type": "noop"}}}], True),
    ],
)
def test_has_unplanned(steps: list[dict[str, Any]], expected: bool) -> None:
    rb = Runbook.model_validate(
        {"apiVersion": "failover.dev/v1", "kind": "Runbook", "name": "t",
         "regions": [EAST, WEST], "steps": steps}
    )  # fmt: skip
    assert rb.has_unplanned is expected


def test_recovery_steps_alone_say_nothing_of_unplanned_runs() -> None:
    rb = load("  - id: a\n    type: noop\nrecovery:\n  - id: r\n    type: noop\n")
    assert not rb.has_unplanned
    assert ids(rb.recovery) == ["r"]
    assert rb.step("r") is rb.recovery[0]


# ----------------------------------------------------------------------------- replaced()
def test_replaced_leaves_other_steps_alone() -> None:
    for choice in ("run", "skip", "defer"):
        step = Step(id="a", type="noop", unplanned=choice)
        assert replaced(step) is step


def test_replaced_takes_the_replacement_and_keeps_the_step() -> None:
    step = Step.model_validate(
        {
            "id": "db",
            "type": "aurora_global_switchover",
            "description": "switch the writer",
            "params": {"global_cluster": "g", "target_region": "x"},
            "depends_on": ["gate"],
            "region": "r1",
            "timeout": "15m",
            "retry": {"attempts": 7},
            "on_failure": "pause",
            "guards": [{"type": "replica_lag", "params": {"identifier": "i"}}],
            "unplanned": {
                "replace": {
                    "type": "aurora_global_failover",
                    "description": "fail the writer over",
                    "params": {"global_cluster": "g", "target_region": "y"},
                    "region": "r2",
                    "timeout": "20m",
                    "irreversible": True,
                }
            },
        }
    )
    r = replaced(step)
    assert (r.id, r.depends_on, r.retry.attempts, r.on_failure) == ("db", ["gate"], 7, "pause")
    assert r.type == "aurora_global_failover"
    assert r.description == "fail the writer over"
    assert r.params == {"global_cluster": "g", "target_region": "y"}
    assert (r.region, r.timeout) == ("r2", timedelta(minutes=20))
    assert r.guards == []  # a replacement brings its own guards (none here)
    assert r.irreversible is True
    assert r.unplanned == "run"  # replaced once, not again
    assert step.type == "aurora_global_switchover"  # the runbook's step is untouched
    assert len(step.guards) == 1


def test_replaced_falls_back_to_the_steps_description_region_and_timeout() -> None:
    step = Step(
        id="a",
        type="noop",
        description="original",
        region="r1",
        timeout=timedelta(minutes=3),
        irreversible=True,
        unplanned=Unplanned(replace=Replacement(type="wait", params={"duration": "1s"})),
    )
    r = replaced(step)
    assert (r.type, r.description, r.region, r.timeout) == (
        "wait", "original", "r1", timedelta(minutes=3)
    )  # fmt: skip
    assert r.irreversible is False  # the replacement says so itself, or it is not


# ------------------------------------------------------------------------------- select()
CHAIN = """\
  - id: a
    type: noop
  - id: b
    type: noop
    depends_on: [a]
    planned: skip
  - id: c
    type: noop
    depends_on: [b]
    unplanned: skip
  - id: d
    type: noop
    depends_on: [c]
    unplanned: defer
  - id: e
    type: noop
    depends_on: [d]
"""


def test_select_planned_hands_dependencies_down_past_skipped_steps() -> None:
    sel = select(load(CHAIN), "planned")
    assert deps(sel.steps) == {"a": [], "c": ["a"], "d": ["c"], "e": ["d"]}
    assert sel.deferred == []


def test_select_unplanned_hands_dependencies_down_past_skipped_and_deferred_steps() -> None:
    sel = select(load(CHAIN), "unplanned")
    assert deps(sel.steps) == {"a": [], "b": ["a"], "e": ["b"]}
    assert ids(sel.deferred) == ["d"]
    assert sel.deferred[0].depends_on == ["c"]  # as written: the recovery run resolves it


def test_select_recovery_is_the_deferred_steps_then_the_recovery_steps() -> None:
    rb = load(
        CHAIN
        + "  - id: f\n    type: noop\n    unplanned: defer\n"
        + "recovery:\n"
        + "  - id: r1\n    type: noop\n    depends_on: [e]\n"
        + "  - id: r2\n    type: noop\n    depends_on: [r1, f]\n"
        + "  - id: r3\n    type: noop\n    depends_on: [a]\n"
    )
    sel = select(rb, "recovery")
    assert ids(sel.steps) == ["d", "f", "r1", "r2", "r3"]
    # e runs in no recovery: r1 waits for what e waited for among the steps that run (d);
    # d's own dependencies (c, b, a) are not part of a recovery: it starts at once.
    assert deps(sel.steps) == {"d": [], "f": [], "r1": ["d"], "r2": ["r1", "f"], "r3": []}
    assert sel.deferred == []


def test_select_merges_dependencies_handed_down_twice() -> None:
    rb = load(
        "  - id: a\n    type: noop\n"
        "  - id: b\n    type: noop\n    depends_on: [a]\n    unplanned: skip\n"
        "  - id: c\n    type: noop\n    depends_on: [a]\n    unplanned: defer\n"
        "  - id: x\n    type: noop\n"
        "  - id: d\n    type: noop\n    depends_on: [b, x, c]\n"
    )
    assert deps(select(rb, "unplanned").steps)["d"] == ["a", "x"]  # a once, in order
    assert deps(select(rb, "planned").steps)["d"] == ["b", "x", "c"]


def test_select_keeps_the_runbooks_order_and_leaves_it_untouched() -> None:
    rb = load(CHAIN)
    before = rb.model_dump()
    for kind in KINDS:
        sel = select(rb, kind)
        order = [s.id for s in [*rb.steps, *rb.recovery]]
        assert ids(sel.steps) == sorted(ids(sel.steps), key=order.index)
        assert find_cycle(deps(sel.steps)) is None
        for step in sel.steps:  # every dependency is a step of the same run
            assert set(step.depends_on) <= set(ids(sel.steps))
    assert rb.model_dump() == before


def test_select_unplanned_applies_replacements() -> None:
    rb = load(
        f"""\
  - id: gate
    type: approval
  - id: db
    type: aurora_global_switchover
    depends_on: [gate]
    params: {AURORA}
    unplanned:
      replace:
        type: aurora_global_failover
        params: {AURORA}
        irreversible: true
"""
    )
    planned, unplanned = select(rb, "planned").steps, select(rb, "unplanned").steps
    assert [(s.type, s.irreversible) for s in planned] == [
        ("approval", False), ("aurora_global_switchover", False)
    ]  # fmt: skip
    assert [(s.type, s.irreversible) for s in unplanned] == [
        ("approval", False), ("aurora_global_failover", True)
    ]  # fmt: skip
    assert unplanned[1].depends_on == ["gate"]


def test_without_unplanned_settings_every_kind_but_recovery_is_the_whole_runbook() -> None:
    rb = load("  - id: a\n    type: noop\n  - id: b\n    type: noop\n    depends_on: [a]\n")
    assert (
        deps(select(rb, "planned").steps) == deps(select(rb, "unplanned").steps) == deps(rb.steps)
    )
    assert select(rb, "unplanned").deferred == []
    assert select(rb, "recovery").steps == []


# ------------------------------------------------------------------------------- the loader
@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: teleport\n",
            "rb.yaml:11:15: steps[0].unplanned.replace.type: unknown step type 'teleport'",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: noop\n        params: {speed: 3}\n",
            "rb.yaml:12:18: steps[0].unplanned.replace.params.speed: unknown field",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: wait\n",
            "steps[0].unplanned.replace.params.duration: required field missing",
        ),
        (
            f"  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: aurora_global_failover\n        params: {AURORA}\n",
            "rb.yaml:11:15: steps[0].unplanned.replace.type: step type 'aurora_global_failover' cannot be undone: mark the step `irreversible: true`",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: noop\n        region: ${{ params.nope }}\n",
            "rb.yaml:12:17: steps[0].unplanned.replace.region: undefined template reference ${{ params.nope }}",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: noop\n        guards: [{type: approval}]\n",
            "steps[0].unplanned.replace.guards[0].type: a guard must be a read-only check; 'approval' is not",
        ),
        (
            "  - id: a\n    type: noop\n  - id: b\n    type: noop\n    planned: skip\n    unplanned: skip\n",
            "rb.yaml:11:5: steps[1].planned: the step would never run (skipped in planned runs and skip in unplanned ones)",
        ),
        (
            "  - id: a\n    type: noop\n  - id: b\n    type: noop\n    planned: skip\n    unplanned: defer\n",
            "rb.yaml:11:5: steps[1].planned: the step would never run (skipped in planned runs and defer in unplanned ones)",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned: defer\nrecovery:\n  - id: a\n    type: noop\n",
            "rb.yaml:11:9: recovery[0].id: duplicate step id 'a' (first at steps[0])",
        ),
        (
            "  - id: a\n    type: noop\n    depends_on: [r]\n    unplanned: defer\nrecovery:\n  - id: r\n    type: noop\n",
            "rb.yaml:9:18: steps[0].depends_on[0]: 'r' is a recovery step: a switch step cannot depend on it",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned: defer\nrecovery:\n  - id: r\n    type: noop\n    unplanned:\n      replace: {type: noop}\n",
            "rb.yaml:13:5: recovery[0].unplanned: a recovery step runs only in recoveries: no unplanned: here",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned: defer\nrecovery:\n  - id: r\n    type: noop\n    unplanned: skip\n",
            "recovery[0].unplanned: a recovery step runs only in recoveries",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned: defer\nrecovery:\n  - id: r\n    type: noop\n    planned: skip\n",
            "rb.yaml:13:5: recovery[0].planned: a recovery step runs only in recoveries: no planned: here",
        ),
        (
            "  - id: a\n    type: noop\n    unplanned: defer\nrecovery:\n  - id: r\n    type: noop\n    depends_on: [zz]\n",
            "rb.yaml:13:18: recovery[0].depends_on[0]: depends on unknown step 'zz'",
        ),
        (
            "  - id: a\n    type: noop\nrecovery:\n  - id: r\n    type: noop\n    depends_on: [s]\n  - id: s\n    type: noop\n    depends_on: [r]\n",
            "recovery[0].depends_on: dependency cycle: r -> s -> r",
        ),
    ],
)
def test_malformed_modes(steps: str, expected: str) -> None:
    found = problems(steps)
    assert any(expected in p for p in found), found


GATE_SKIPPED = f"""\
  - id: gate
    type: approval
    unplanned: skip
  - id: db
    type: aurora_global_switchover
    depends_on: [gate]
    params: {AURORA}
    unplanned:
      replace:
        type: aurora_global_failover
        params: {AURORA}
        irreversible: true
"""


def test_irreversible_replacement_needs_a_gate_in_unplanned_runs() -> None:
    # Fine in planned runs (a reversible switchover behind the gate): one problem, at the
    # replacement's `irreversible:` key.
    assert problems(GATE_SKIPPED) == [
        "rb.yaml:18:9: steps[1].unplanned.replace.irreversible: an irreversible step must depend "
        "(directly or not) on an approval step (in unplanned runs)"
    ]


def test_irreversible_replacement_behind_a_gate_loads() -> None:
    rb = load(GATE_SKIPPED.replace("    unplanned: skip\n", "", 1))
    unplanned = select(rb, "unplanned").steps
    assert [s.id for s in unplanned if s.irreversible] == ["db"]


def test_a_gate_replaced_by_a_step_that_is_not_one_is_no_gate() -> None:
    body = f"""\
  - id: gate
    type: approval
    unplanned:
      replace: {{type: noop}}
  - id: db
    type: aurora_global_failover
    depends_on: [gate]
    params: {AURORA}
    irreversible: true
"""
    assert problems(body) == [
        "rb.yaml:15:5: steps[1].irreversible: an irreversible step must depend (directly or not) "
        "on an approval step (in unplanned runs)"
    ]


def test_irreversible_step_in_planned_runs_names_no_kind() -> None:
    body = f"""\
  - id: gate
    type: approval
    planned: skip
  - id: db
    type: aurora_global_failover
    depends_on: [gate]
    params: {AURORA}
    irreversible: true
"""
    assert problems(body) == [
        "rb.yaml:14:5: steps[1].irreversible: an irreversible step must depend (directly or not) "
        "on an approval step"
    ]


def test_irreversible_recovery_step_needs_a_gate_of_the_recovery() -> None:
    # The switch's gate is not part of a recovery: depending on it gates nothing there.
    body = """\
  - id: gate
    type: approval
  - id: a
    type: noop
    depends_on: [gate]
    unplanned: defer
recovery:
  - id: rejoin
    type: aurora_global_rejoin
    depends_on: [a]
    params: {global_cluster: g, cluster: c, region: "${{ from_region }}"}
    irreversible: true
"""
    assert problems(body) == [
        "rb.yaml:18:5: recovery[0].irreversible: an irreversible step must depend (directly or "
        "not) on an approval step (in recovery runs)"
    ]
    gated = body.replace(
        "recovery:\n", "recovery:\n  - id: ok\n    type: approval\n    depends_on: [a]\n"
    ).replace("depends_on: [a]\n    params", "depends_on: [ok]\n    params")
    rb = load(gated)
    assert deps(select(rb, "recovery").steps) == {"a": [], "ok": ["a"], "rejoin": ["ok"]}


def test_deferred_irreversible_step_needs_a_gate_in_recovery_runs() -> None:
    body = f"""\
  - id: gate
    type: approval
  - id: db
    type: aurora_global_failover
    depends_on: [gate]
    params: {AURORA}
    irreversible: true
    unplanned: defer
"""
    assert problems(body) == [
        "rb.yaml:13:5: steps[1].irreversible: an irreversible step must depend (directly or not) "
        "on an approval step (in recovery runs)"
    ]


def test_recovery_steps_may_depend_on_deferred_steps() -> None:
    rb = load(
        f"  - id: fence\n    type: k8s_configmap_flag\n    params: {FLAG}\n    unplanned: defer\n"
        "recovery:\n  - id: count\n    type: noop\n    depends_on: [fence]\n"
    )
    assert ids(rb.recovery) == ["count"]
    assert deps(select(rb, "recovery").steps) == {"fence": [], "count": ["fence"]}


def test_every_mode_problem_is_reported_at_once() -> None:
    found = problems(
        "  - id: a\n    type: noop\n    planned: skip\n    unplanned: skip\n"
        "  - id: b\n    type: noop\n    unplanned:\n      replace: {type: teleport}\n"
        "recovery:\n  - id: a\n    type: noop\n    unplanned: skip\n"
    )
    assert len(found) == 4, found
    assert sum("duplicate step id 'a'" in p for p in found) == 1
    assert sum("never run" in p for p in found) == 1
    assert sum("unknown step type 'teleport'" in p for p in found) == 1
    assert sum("a recovery step runs only in recoveries" in p for p in found) == 1


def test_unknown_field_in_a_replacement_is_located_at_its_key() -> None:
    found = problems(
        "  - id: a\n    type: noop\n    unplanned:\n      replace:\n        type: noop\n"
        "        colour: red\n"
    )
    assert found == ["rb.yaml:12:9: steps[0].unplanned.replace.colour: unknown field"]


# ----------------------------------------------------------------------------- the resolver
def test_unplanned_run_applies_replacements_and_owes_deferred_steps() -> None:
    rb = load(
        f"""\
  - id: fence
    type: k8s_configmap_flag
    params: {{namespace: shop, name: flags, key: frozen, value: 'true', region: "${{{{ from_region }}}}"}}
    unplanned: defer
  - id: note
    type: noop
    description: Said in full.
    unplanned: defer
  - id: gate
    type: approval
    depends_on: [fence]
  - id: db
    type: aurora_global_switchover
    depends_on: [gate]
    params: {AURORA}
    unplanned:
      replace:
        type: aurora_global_failover
        params: {AURORA}
        irreversible: true
"""
    )
    inp = run(rb, "unplanned")
    assert inp.kind == "unplanned"
    assert ids(inp.steps) == ["gate", "db"]
    db = inp.steps[1]
    assert (db.type, db.irreversible, db.reversible, db.kind) == (
        "aurora_global_failover", True, False, StepKind.MUTATE
    )  # fmt: skip
    assert db.params["target_region"] == WEST
    assert "FAIL OVER" in db.description
    assert db.depends_on == ["gate"]
    assert inp.steps[0].depends_on == []  # fence is owed, not waited for
    assert [(o.id, o.type) for o in inp.owed] == [("fence", "k8s_configmap_flag"), ("note", "noop")]
    assert inp.owed[0].description == "set frozen='true' in ConfigMap shop/flags in us-east-1"
    assert inp.owed[1].description == "Said in full."
    assert inp.reach is None

    planned = run(rb, "planned")
    assert ids(planned.steps) == ["fence", "note", "gate", "db"]
    assert planned.steps[3].type == "aurora_global_switchover"
    assert planned.owed == []


def test_owed_descriptions_are_rendered_for_the_failed_region() -> None:
    rb = load(
        "  - id: a\n    type: noop\n"
        "  - id: asg\n    type: asg_capacity\n    unplanned: defer\n"
        '    params: {name: shop-asg, region: "${{ from_region }}", desired: 0}\n'
    )
    assert run(rb, "unplanned", EAST, WEST).owed[0].description.endswith(f"in {EAST}: desired 0")
    assert run(rb, "unplanned", WEST, EAST).owed[0].description.endswith(f"in {WEST}: desired 0")


@pytest.mark.parametrize(
    ("step", "name"),
    [
        (
            f"  - id: flag\n    type: k8s_configmap_flag\n    region: ${{{{ from_region }}}}\n    params: {FLAG}\n",
            "flag (k8s_configmap_flag)",
        ),
        (
            '  - id: asg\n    type: asg_capacity\n    params: {name: n, region: "${{ from_region }}", desired: 0}\n',
            "asg (asg_capacity)",
        ),
        (
            '  - id: db\n    type: aurora_global_switchover\n    params: {global_cluster: g, target_region: "${{ to_region }}", api_region: "${{ from_region }}"}\n',
            "db (aurora_global_switchover)",
        ),
        (
            '  - id: dns\n    type: route53_weighted\n    params: {zone: z., record: r.z., weights: {"${{ to_region }}": 100}}\n',
            "dns (route53_weighted)",
        ),
    ],
)
def test_unplanned_run_that_would_use_the_failed_region_is_refused(step: str, name: str) -> None:
    rb = load("  - id: a\n    type: noop\n    unplanned: skip\n" + step)
    with pytest.raises(ResolveError) as err:
        run(rb, "unplanned", EAST, WEST)
    message = str(err.value)
    assert f"step {name}" in message
    assert "unplanned" in message and EAST in message
    run(rb, "planned", EAST, WEST)  # a planned run may use it
    for choice in ("skip", "defer"):
        left_out = load("  - id: a\n    type: noop\n" + step + f"    unplanned: {choice}\n")
        assert ids(run(left_out, "unplanned", EAST, WEST).steps) == ["a"]


def test_route53_is_refused_only_when_us_east_1_fails() -> None:
    rb = load(
        "  - id: dns\n    type: route53_weighted\n    unplanned: {replace: {type: noop}}\n"
        '    params: {zone: z., record: r.z., weights: {"${{ to_region }}": 100}}\n'
        "  - id: dns2\n    type: route53_failover\n"
        '    params: {zone: z., record: w.z., primary: "${{ to_region }}"}\n'
    )
    assert ids(run(rb, "unplanned", WEST, EAST).steps) == ["dns", "dns2"]
    with pytest.raises(ResolveError, match=r"step dns2 \(route53_failover\) depends on us-east-1"):
        run(rb, "unplanned", EAST, WEST)


def test_a_replacement_restores_static_stability() -> None:
    rb = load(
        f"""\
  - id: flag
    type: k8s_configmap_flag
    region: ${{{{ from_region }}}}
    params: {FLAG}
    unplanned:
      replace:
        type: k8s_configmap_flag
        region: ${{{{ to_region }}}}
        params: {FLAG}
"""
    )
    (step,) = run(rb, "unplanned", EAST, WEST).steps
    assert step.region == WEST
    (step,) = run(rb, "planned", EAST, WEST).steps
    assert step.region == EAST


def test_a_guard_on_the_failed_region_breaks_static_stability() -> None:
    rb = load(
        f"""\
  - id: a
    type: noop
    unplanned: skip
  - id: flag
    type: k8s_configmap_flag
    region: ${{{{ to_region }}}}
    params: {FLAG}
    guards:
      - type: replica_lag
        params: {{identifier: db, region: "${{{{ from_region }}}}", max_lag: 5s}}
"""
    )
    with pytest.raises(ResolveError, match="flag"):
        run(rb, "unplanned", EAST, WEST)


@pytest.mark.parametrize(
    ("steps", "reach"),
    [
        ("  - id: a\n    type: noop\n", None),
        (
            f"  - id: a\n    type: k8s_configmap_flag\n    region: ${{{{ to_region }}}}\n    params: {FLAG}\n",
            None,
        ),
        (
            f"  - id: a\n    type: k8s_configmap_flag\n    region: ${{{{ from_region }}}}\n    params: {FLAG}\n",
            ReachCall(region=EAST, kubernetes=True, aws=False),
        ),
        (
            '  - id: a\n    type: asg_capacity\n    params: {name: n, region: "${{ from_region }}", desired: 0}\n',
            ReachCall(region=EAST, kubernetes=False, aws=True),
        ),
        (
            f"  - id: a\n    type: k8s_configmap_flag\n    region: ${{{{ from_region }}}}\n    params: {FLAG}\n"
            '  - id: b\n    type: asg_capacity\n    params: {name: n, region: "${{ from_region }}", desired: 0}\n'
            '  - id: c\n    type: asg_capacity\n    params: {name: n, region: "${{ to_region }}", desired: 3}\n',
            ReachCall(region=EAST, kubernetes=True, aws=True),
        ),
        (  # Route 53's API is served from us-east-1, the source here
            '  - id: a\n    type: route53_weighted\n    params: {zone: z., record: r.z., weights: {"${{ to_region }}": 100}}\n',
            ReachCall(region=EAST, kubernetes=False, aws=True),
        ),
        (  # skipped in planned runs: asks nothing of the source
            f"  - id: a\n    type: noop\n  - id: b\n    type: k8s_configmap_flag\n    region: ${{{{ from_region }}}}\n    params: {FLAG}\n    planned: skip\n",
            None,
        ),
    ],
)
def test_planned_run_asks_its_source_what_its_steps_use_there(
    steps: str, reach: ReachCall | None
) -> None:
    rb = load(steps)
    assert run(rb, "planned", EAST, WEST).reach == reach


def test_reach_follows_the_source_region() -> None:
    rb = load(
        f"  - id: a\n    type: k8s_configmap_flag\n    region: ${{{{ from_region }}}}\n    params: {FLAG}\n"
    )
    assert run(rb, "planned", WEST, EAST).reach == ReachCall(region=WEST, kubernetes=True)


def test_recovery_is_refused_when_nothing_is_owed() -> None:
    rb = load("  - id: a\n    type: noop\n    unplanned: skip\n  - id: b\n    type: noop\n")
    with pytest.raises(ResolveError, match="defers nothing"):
        run(rb, "recovery")


def test_recovery_runs_the_deferred_steps_then_the_recovery_steps() -> None:
    rb = load(
        f"""\
  - id: fence
    type: k8s_configmap_flag
    region: ${{{{ from_region }}}}
    params: {FLAG}
    unplanned: defer
  - id: gate
    type: approval
    depends_on: [fence]
  - id: move
    type: noop
    depends_on: [gate]
  - id: scale-down
    type: asg_capacity
    depends_on: [move]
    params: {{name: n, region: "${{{{ from_region }}}}", desired: 0}}
    unplanned: defer
recovery:
  - id: approve-rejoin
    type: approval
    depends_on: [fence]
  - id: rejoin
    type: aurora_global_rejoin
    depends_on: [approve-rejoin, scale-down]
    params: {{global_cluster: g, cluster: c, region: "${{{{ from_region }}}}"}}
    irreversible: true
"""
    )
    inp = run(rb, "recovery", EAST, WEST)  # the failed region answers again: it is the source
    assert inp.kind == "recovery"
    assert ids(inp.steps) == ["fence", "scale-down", "approve-rejoin", "rejoin"]
    assert deps(inp.steps) == {
        "fence": [],
        "scale-down": ["fence"],  # handed down past move and gate
        "approve-rejoin": ["fence"],
        "rejoin": ["approve-rejoin", "scale-down"],
    }
    assert inp.steps[0].region == EAST
    assert inp.steps[3].params["region"] == EAST
    assert inp.steps[2].kind == StepKind.GATE and inp.steps[2].gate is not None
    assert (inp.owed, inp.reach) == ([], None)


# ------------------------------------------------------------------------ the shop runbook
SHOP_SKIPPED = [
    "dns-half",
    "target-healthy-at-half",
    "arc-source-off",
    "demote-source-db",
    "unfreeze-writes",
]
SHOP_OWED = [
    "freeze-writes",
    "writes-fenced",
    "dns-full",
    "failover-records",
    "source-alb-to-peer",
    "scale-down-source-pods",
    "scale-down-source-asg",
]
SHOP_RECOVERY = [
    "lost-writes",
    "approve-rejoin",
    "rejoin-source-db",
    "rejoin-aurora",
    "unfreeze-source",
]


@pytest.fixture(scope="module")
def shop() -> Runbook:
    return load_file(SHOP)


def _strings(value: Any) -> Iterator[str]:
    """Every string in params, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _gated(steps: list[PlannedStep]) -> dict[str, bool]:
    """Each irreversible step: whether an approval gate is among its ancestors."""
    graph = deps(steps)
    gates = {s.id for s in steps if s.kind == StepKind.GATE}
    return {s.id: bool(ancestors(graph, s.id) & gates) for s in steps if s.irreversible}


def test_shop_loads_with_unplanned_runs_and_a_recovery(shop: Runbook) -> None:
    assert shop.has_unplanned
    assert ids(shop.recovery) == SHOP_RECOVERY
    assert [s.id for s in shop.steps if s.unplanned == "defer"] == SHOP_OWED


def test_shop_planned_run(shop: Runbook) -> None:
    inp = run(shop, "planned")
    got = ids(inp.steps)
    assert inp.owed == []
    assert {"arc-target-on", "dns-half", "dns-full", "arc-source-off"} <= set(got)
    assert set(SHOP_SKIPPED) <= set(got)
    assert not set(SHOP_RECOVERY) & set(got)
    assert inp.steps[got.index("aurora-switchover")].type == "aurora_global_switchover"
    assert inp.reach == ReachCall(region=EAST, kubernetes=True, aws=True)
    assert all(_gated(inp.steps).values())


@pytest.mark.parametrize(("frm", "to"), [(EAST, WEST), (WEST, EAST)])
def test_shop_unplanned_run(shop: Runbook, frm: str, to: str) -> None:
    inp = run(shop, "unplanned", frm, to)
    by_id = {s.id: s for s in inp.steps}
    assert [o.id for o in inp.owed] == SHOP_OWED
    assert all(o.description for o in inp.owed)
    assert not (set(SHOP_SKIPPED) | set(SHOP_OWED)) & set(by_id)
    assert not set(SHOP_RECOVERY) & set(by_id)

    aurora = by_id["aurora-switchover"]
    assert (aurora.type, aurora.irreversible) == ("aurora_global_failover", True)
    assert aurora.params["target_region"] == to
    promote = by_id["promote-target-db"]
    assert (promote.type, promote.irreversible) == ("cnpg_role", True)
    assert promote.params["role"] == "primary"
    assert promote.params.get("token_from") is None
    assert promote.depends_on == ["approve"]  # past demote-source-db, skipped
    assert by_id["users-reach-target"].depends_on == ["arc-target-on"]
    assert by_id["approve"].gate is not None
    assert by_id["approve"].gate.message.startswith(f"UNPLANNED: {frm} does not answer")
    assert by_id["arc-target-on"].params["states"] == {f"shop-{to}": "On", f"shop-{frm}": "Off"}

    assert _gated(inp.steps) == {"aurora-switchover": True, "promote-target-db": True}


@pytest.mark.parametrize(("frm", "to"), [(EAST, WEST), (WEST, EAST)])
def test_shop_unplanned_run_acts_on_nothing_in_the_failed_region(
    shop: Runbook, frm: str, to: str
) -> None:
    for step in run(shop, "unplanned", frm, to).steps:
        assert step.region != frm, step.id
        for value in _strings(step.params):
            assert value != frm, (step.id, step.params)
        for guard in step.guards:
            assert frm not in _strings(guard.params), (step.id, guard)
        stype = registry.get(step.type)
        assert stype is not None
        assert frm not in stype.regions_used(stype.parse(step.params), step.region), step.id


def test_shop_recovery_run(shop: Runbook) -> None:
    inp = run(shop, "recovery")
    assert ids(inp.steps) == SHOP_OWED + SHOP_RECOVERY
    by_id = {s.id: s for s in inp.steps}
    assert by_id["dns-full"].depends_on == ["writes-fenced"]  # fenced first, then Route 53
    assert by_id["lost-writes"].depends_on == ["writes-fenced"]
    assert by_id["dns-full"].params["weights"] == {WEST: 100, EAST: 0}
    assert by_id["rejoin-aurora"].params["region"] == EAST
    assert _gated(inp.steps) == {"rejoin-aurora": True}
    assert (inp.owed, inp.reach) == ([], None)


@pytest.mark.parametrize("kind", KINDS)
def test_shop_every_irreversible_step_is_gated_in_each_kind(shop: Runbook, kind: Kind) -> None:
    chosen = select(shop, kind).steps
    graph = deps(chosen)
    gates = {s.id for s in chosen if (t := registry.get(s.type)) is not None and t.gate}
    assert gates
    for step in chosen:
        assert set(step.depends_on) <= set(graph), step.id
        if step.irreversible:
            assert ancestors(graph, step.id) & gates, (kind, step.id)
