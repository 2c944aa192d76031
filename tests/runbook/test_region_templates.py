"""Templates over any number of regions: the region lists, a list as a mapping key, `for_each`
steps (copies per region, dependencies through them, none for an empty list), and the located
one-line errors of their misuse."""

from __future__ import annotations

import pytest

from orchestrator.runbook.loader import RunbookError, load_text
from orchestrator.runbook.resolve import ResolveError, resolve
from orchestrator.runbook.templates import TemplateError, references, region_lists, render

THREE = ["us-east-1", "us-west-2", "eu-west-1"]


def _rb(steps: str, regions: list[str] = THREE) -> str:
    return (
        "apiVersion: failover.dev/v1\nkind: Runbook\nname: t\n"
        f"regions: [{', '.join(regions)}]\nsteps:\n{steps}"
    )


STEPS = """\
  - id: first
    type: noop
  - id: flags
    type: k8s_configmap_flag
    for_each: ${{ others }}
    depends_on: [first]
    region: ${{ each }}
    params: {namespace: shop, name: shop-flags, key: "follows-${{ each }}", value: "${{ to_region }}"}
  - id: dns
    type: route53_weighted
    depends_on: [flags]
    params: {zone: shop.example., record: api.shop.example.,
             weights: {"${{ regions }}": 0, "${{ to_region }}": 100}}
  - id: spread
    type: route53_weighted
    depends_on: [dns]
    params: {zone: shop.example., record: www.shop.example.,
             weights: {"${{ from_region }}": 0, "${{ survivors }}": 1}}
  - id: users
    type: dns_answer
    depends_on: [spread]
    params: {record: api.shop.example., expect: "${{ survivors }}"}
"""


def test_region_lists_follow_the_runbooks_order() -> None:
    assert region_lists(THREE, "us-west-2", "eu-west-1") == {
        "regions": THREE,
        "survivors": ["us-east-1", "eu-west-1"],
        "others": ["us-east-1"],
    }
    ctx = {"from_region": "a", "to_region": "c", **region_lists(["a", "b", "c"], "a", "c")}
    # a list key sets each of its regions; a later entry wins
    assert render({"${{ regions }}": 0, "${{ to_region }}": 100}, ctx) == {"a": 0, "b": 0, "c": 100}
    assert render({"${{ to_region }}": 100, "${{ regions }}": 0}, ctx) == {"a": 0, "b": 0, "c": 0}
    assert render("${{ survivors }}", ctx) == ["b", "c"]
    with pytest.raises(TemplateError, match="list of regions"):
        references("shop-${{ others }}")
    with pytest.raises(TemplateError, match="list of regions"):
        render("shop-${{ others }}", ctx)


def test_for_each_repeats_a_step_per_region_and_dependents_wait_for_every_copy() -> None:
    rb = load_text(_rb(STEPS))
    inp = resolve(rb, "us-east-1", "eu-west-1", requester="alice")
    by_id = {s.id: s for s in inp.steps}
    assert [s.id for s in inp.steps] == ["first", "flags-us-west-2", "dns", "spread", "users"]
    copy = by_id["flags-us-west-2"]
    assert copy.region == "us-west-2" and copy.depends_on == ["first"]
    assert copy.params["key"] == "follows-us-west-2" and copy.params["value"] == "eu-west-1"
    assert by_id["dns"].depends_on == ["flags-us-west-2"]
    assert by_id["dns"].params["weights"] == {"us-east-1": 0, "us-west-2": 0, "eu-west-1": 100}
    assert by_id["spread"].params["weights"] == {"us-east-1": 0, "us-west-2": 1, "eu-west-1": 1}
    assert by_id["users"].params["expect"] == ["us-west-2", "eu-west-1"]
    # survivors: two copies when only the source is left out
    text = _rb(STEPS.replace("${{ others }}", "${{ survivors }}"))
    inp = resolve(load_text(text), "us-east-1", "eu-west-1", requester="alice")
    assert {s.id for s in inp.steps} >= {"flags-us-west-2", "flags-eu-west-1"}
    assert next(s for s in inp.steps if s.id == "dns").depends_on == [
        "flags-us-west-2", "flags-eu-west-1"]  # fmt: skip


def test_an_empty_for_each_hands_its_dependencies_down() -> None:
    two = load_text(_rb(STEPS, ["us-east-1", "us-west-2"]))
    inp = resolve(two, "us-east-1", "us-west-2", requester="alice")
    assert [s.id for s in inp.steps] == ["first", "dns", "spread", "users"]
    assert inp.steps[1].depends_on == ["first"]


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("  - id: a\n    type: noop\n    for_each: ${{ to_region }}\n",
         "rb.yaml:8:15: steps[0].for_each: for_each takes a region list"),
        ("  - id: a\n    type: noop\n    for_each: [us-east-1, mars-1]\n",
         "rb.yaml:8:27: steps[0].for_each[1]: 'mars-1' is not one of the runbook's regions"),
        ("  - id: a\n    type: k8s_configmap_flag\n    region: ${{ each }}\n"
         "    params: {namespace: s, name: f, key: k, value: v}\n",
         "rb.yaml:8:13: steps[0].region: undefined template reference ${{ each }}"),
        ("  - id: a\n    type: k8s_configmap_flag\n    region: us-${{ survivors }}\n"
         "    params: {namespace: s, name: f, key: k, value: v}\n",
         "rb.yaml:8:13: steps[0].region: ${{ survivors }} is a list of regions"),
    ],
)  # fmt: skip
def test_misused_region_lists_are_located_errors(steps: str, expected: str) -> None:
    with pytest.raises(RunbookError) as err:
        load_text(_rb(steps), "rb.yaml")
    assert any(str(p).startswith(expected) for p in err.value.problems), err.value.problems


def test_a_copy_whose_id_is_taken_is_refused_when_resolved() -> None:
    steps = STEPS + "  - id: flags-us-west-2\n    type: noop\n"
    with pytest.raises(ResolveError, match="'flags-us-west-2' twice"):
        resolve(load_text(_rb(steps)), "us-east-1", "eu-west-1", requester="alice")
