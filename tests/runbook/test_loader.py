"""Runbook loading: every malformed input gets its one-line located message; no input crashes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.runbook.durations import format_duration, parse_duration
from orchestrator.runbook.graph import ancestors, find_cycle, levels
from orchestrator.runbook.loader import RunbookError, load_file, load_text
from orchestrator.runbook.templates import TemplateError, render

ROOT = Path(__file__).resolve().parents[2]

HEADER = """\
apiVersion: failover.dev/v1
kind: Runbook
name: t
regions: [us-east-1, us-west-2]
parameters:
  ns: {default: shop}
steps:
"""


def problems(steps: str, header: str = HEADER) -> list[str]:
    with pytest.raises(RunbookError) as err:
        load_text(header + steps, "rb.yaml")
    return [str(p) for p in err.value.problems]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            "  - id: a\n    type: teleport\n",
            "rb.yaml:9:11: steps[0].type: unknown step type 'teleport'",
        ),
        (
            "  - id: a\n    type: noop\n    colour: red\n",
            "rb.yaml:10:5: steps[0].colour: unknown field",
        ),
        (
            "  - id: a\n    type: noop\n    timeout: soon\n",
            "rb.yaml:10:14: steps[0].timeout: invalid duration 'soon'",
        ),
        (
            "  - id: a\n    type: noop\n  - id: a\n    type: noop\n",
            "rb.yaml:10:9: steps[1].id: duplicate step id 'a'",
        ),
        (
            "  - id: a\n    type: noop\n    depends_on: [b]\n",
            "rb.yaml:10:18: steps[0].depends_on[0]: depends on unknown step 'b'",
        ),
        (
            "  - id: a\n    type: noop\n    depends_on: [b]\n  - id: b\n    type: noop\n    depends_on: [a]\n",
            "steps[0].depends_on: dependency cycle: a -> b -> a",
        ),
        ("  - id: a\n    type: noop\n    depends_on: [a]\n", "a step cannot depend on itself"),
        (
            "  - id: a\n    type: noop\n    params: {speed: 3}\n",
            "rb.yaml:10:14: steps[0].params.speed: unknown field",
        ),
        ("  - id: a\n    type: wait\n", "steps[0].params.duration: required field missing"),
        (
            "  - id: a\n    type: noop\n    irreversible: true\n",
            "steps[0].irreversible: an irreversible step must depend",
        ),
        (
            "  - id: a\n    type: noop\n    params: {message: '${{ params.nope }}'}\n",
            "undefined template reference ${{ params.nope }}",
        ),
        (
            "  - id: a\n    type: noop\n    params: {message: '${{ __import__(1) }}'}\n",
            "unsupported template",
        ),
        ("  - id: Bad_Id\n    type: noop\n", "steps[0].id: String should match pattern"),
        (
            "  - id: a\n    type: noop\n    on_failure: ignore\n",
            "steps[0].on_failure: expected 'rollback' or 'pause'",
        ),
        (
            "  - id: a\n    type: approval\n    params: {on_expiry: approve}\n",
            "on_expiry must be 'reject'",
        ),
        ("  - id: a\n    type: noop\n    guards: [{type: approval}]\n", "steps[0].guards[0].type"),
        ("  []\n", "rb.yaml:8:3: steps: List should have at least 1 item"),
        (
            "  - id: a\n    type: noop\n    timeout: 99999999999d\n",
            "steps[0].timeout: invalid duration '99999999999d': longer than a year",
        ),
        (
            "  - id: a\n    type: http_check\n    params: {url: 'http://x', endpoint: app}\n",
            "steps[0].params: give exactly one of url or endpoint",
        ),
        (
            "  - id: a\n    type: ssm_parameter\n    params: {name: /x}\n",
            "steps[0].params.value: required field missing",
        ),
        (
            "  - id: a\n    type: k8s_configmap_flag\n    params: {namespace: s, name: n, key: k, value: 1}\n",
            "steps[0].params.value: Input should be a valid string",
        ),
    ],
)
def test_malformed_runbooks(steps: str, expected: str) -> None:
    found = problems(steps)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "rb.yaml:1:1: a runbook is a YAML mapping"),
        ("steps: [\n", "not valid YAML"),
        (
            "apiVersion: v0\nkind: Runbook\nname: t\nregions: [a, b]\nsteps: [{id: a, type: noop}]\n",
            "rb.yaml:1:13: apiVersion: expected 'failover.dev/v1'",
        ),
        (
            "apiVersion: failover.dev/v1\nkind: Runbook\nname: t\nregions: [a]\nsteps: [{id: a, type: noop}]\n",
            "regions: List should have at least 2 items",
        ),
        (
            "apiVersion: failover.dev/v1\nkind: Runbook\nname: t\nregions: [a, a]\nsteps: [{id: a, type: noop}]\n",
            "regions: a region is listed twice",
        ),
        (
            "apiVersion: failover.dev/v1\nkind: Runbook\nregions: [a, b]\nsteps: [{id: a, type: noop}]\n",
            "name: required field missing",
        ),
    ],
)
def test_malformed_documents(text: str, expected: str) -> None:
    with pytest.raises(RunbookError) as err:
        load_text(text, "rb.yaml")
    assert any(expected in str(p) for p in err.value.problems), err.value.problems


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        "  - id: a\n    type: teleport\n  - id: b\n    type: noop\n    depends_on: [zz]\n"
    )
    assert len(found) == 2


def test_example_runbooks_are_valid() -> None:
    files = sorted((ROOT / "runbooks").glob("*.yaml"))
    assert files
    for f in files:
        rb = load_file(f)
        assert rb.steps


def test_unreadable_file() -> None:
    with pytest.raises(RunbookError, match="cannot read"):
        load_file("/nonexistent/runbook.yaml")


def test_durations_round_trip() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration(5) == timedelta(seconds=5)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    assert format_duration(timedelta(milliseconds=250)) == "250ms"
    for bad in ("", "5", "-5s", "1x", True, -1, None):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_templates_render_and_keep_types() -> None:
    ctx = {"from_region": "us-east-1", "to_region": "us-west-2", "params.n": 3}
    assert render(
        {"a": "${{ to_region }}", "b": ["x-${{ from_region }}"], "c": "${{params.n}}"}, ctx
    ) == {
        "a": "us-west-2",
        "b": ["x-us-east-1"],
        "c": 3,
    }
    with pytest.raises(TemplateError):
        render("${{ params.missing }}", ctx)


def test_graph_helpers() -> None:
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert levels(deps) == [["a"], ["b", "c"], ["d"]]
    assert ancestors(deps, "d") == {"a", "b", "c"}
    assert find_cycle(deps) is None
    assert find_cycle({"x": ["y"], "y": ["x"]}) == ["x", "y", "x"]


yaml_ish = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "apiVersion",
                    "kind",
                    "name",
                    "regions",
                    "steps",
                    "id",
                    "type",
                    "params",
                    "depends_on",
                    "timeout",
                    "retry",
                    "irreversible",
                    "guards",
                    "x",
                ]
            ),
            c,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_no_text_crashes_the_loader(text: str) -> None:
    try:
        load_text(text)
    except RunbookError as exc:
        assert exc.problems and str(exc)


@settings(max_examples=200, deadline=None)
@given(yaml_ish)
def test_no_structure_crashes_the_loader(doc: object) -> None:
    import yaml

    base = {"apiVersion": "failover.dev/v1", "kind": "Runbook", "name": "f", "regions": ["a", "b"]}
    body = base | (doc if isinstance(doc, dict) else {"steps": doc})
    try:
        load_text(yaml.safe_dump(body))
    except RunbookError as exc:
        assert exc.problems
