"""Approval gates and operator decisions on their own (`orchestrator.approvals`).

Tests `GateBook` (which gate a decision is for, who may approve or reject it, how approvals are
counted and recorded, rejection, expiry, pre-approval) and `operator_target` (which waiting step
an operator's decision is for, and when it does not apply). Pure: no Temporal, no sandbox.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.approvals import GateBook, operator_target
from orchestrator.runs import ApprovalRecord, Decision, GateSpec, OperatorAction

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def book(*open_: str, approvers: list[str] | None = None, **gates: GateSpec) -> GateBook:
    """A book requested by "rita" with `gates` (default one gate "g"), `open_` of them open."""
    b = GateBook("rita", approvers or [], gates or {"g": GateSpec()})
    for gate in open_:
        b.opened(gate)
    return b


def vote(who: str, gate: str | None = None, comment: str = "") -> Decision:
    return Decision(approver=who, gate=gate, comment=comment)


# ----------------------------------------------------------------------------- gate_for
def test_gate_for_no_open_gate() -> None:
    with pytest.raises(ValueError, match=r"^no gate is open$"):
        book().gate_for(vote("ann"))


def test_gate_for_the_only_open_gate_needs_no_name() -> None:
    assert book("g").gate_for(vote("ann")) == "g"


def test_gate_for_several_open_gates_needs_a_name() -> None:
    b = book("a", "b", a=GateSpec(), b=GateSpec())
    with pytest.raises(ValueError, match=r"several gates are open \(a, b\): name one"):
        b.gate_for(vote("ann"))
    assert b.gate_for(vote("ann", gate="b")) == "b"


def test_gate_for_a_named_gate_that_is_not_open() -> None:
    b = book("a", a=GateSpec(), b=GateSpec())
    with pytest.raises(ValueError, match=r"gate 'b' is not open \(open gates: a\)"):
        b.gate_for(vote("ann", gate="b"))
    with pytest.raises(ValueError, match=r"gate 'a' is not open \(open gates: none\)"):
        book(a=GateSpec()).gate_for(vote("ann", gate="a"))


def test_a_closed_gate_is_no_longer_open() -> None:
    b = book("g")
    b.closed("g")
    with pytest.raises(ValueError, match="no gate is open"):
        b.gate_for(vote("ann"))


# -------------------------------------------------------------------------------- check
@pytest.mark.parametrize("who", ["", "   "])
def test_check_needs_an_approver(who: str) -> None:
    with pytest.raises(ValueError, match="approver is required"):
        book("g").check(vote(who), approving=True)


def test_requester_cannot_approve_but_may_reject() -> None:
    b = book("g")
    with pytest.raises(ValueError, match=r"rita requested this switch .*two-person rule"):
        b.check(vote(" rita "), approving=True)
    assert b.check(vote("rita"), approving=False) == "g"


def test_two_person_rule_names_what_is_approved() -> None:
    b = GateBook("rita", [], {"g": GateSpec()}, what="game day")
    b.opened("g")
    with pytest.raises(ValueError, match="requested this game day"):
        b.check(vote("rita"), approving=True)


def test_empty_approver_lists_mean_anyone() -> None:
    assert book("g").check(vote("anybody"), approving=True) == "g"


def test_runbook_approvers_apply_when_the_gate_names_none() -> None:
    b = book("g", approvers=["ann", "bob"])
    assert b.check(vote("ann"), approving=True) == "g"
    with pytest.raises(ValueError, match=r"eve may not decide gate g \(approvers: ann, bob\)"):
        b.check(vote("eve"), approving=True)
    with pytest.raises(ValueError, match="eve may not decide gate g"):
        b.check(vote("eve"), approving=False)


def test_gate_approvers_override_the_runbooks() -> None:
    b = book("g", approvers=["ann"], g=GateSpec(approvers=["carl"]))
    assert b.allowed("g") == ["carl"]
    assert b.check(vote("carl"), approving=True) == "g"
    with pytest.raises(ValueError, match=r"ann may not decide gate g \(approvers: carl\)"):
        b.check(vote("ann"), approving=True)


def test_a_second_approval_by_the_same_person_is_refused() -> None:
    b = book("g", g=GateSpec(approvals=2))
    b.check(vote("ann"), approving=True)
    b.approve("g", vote(" ann "), T0)
    with pytest.raises(ValueError, match="ann already approved gate g: a second person must"):
        b.check(vote("ann "), approving=True)
    assert b.check(vote("ann"), approving=False) == "g"  # but may still reject
    assert b.check(vote("bob"), approving=True) == "g"


# -------------------------------------------------------------------------- recording
def test_approvals_count_distinct_people_until_enough() -> None:
    b = book("g", g=GateSpec(approvals=3))
    assert b.approve("g", vote("ann", comment="ok"), T0) == "gate g: 1 of 3 approvals"
    assert b.approve("g", vote(" ann "), T0) == "ann already approved gate g"
    assert b.approve("g", vote("bob"), T0) == "gate g: 2 of 3 approvals"
    assert "g" not in b.outcome
    t1 = T0 + timedelta(minutes=1)
    assert b.approve("g", vote("cy"), t1) == "gate g approved: the switch goes on"
    assert b.outcome == {"g": "approved"}
    assert b.votes == {"g": ["ann", "bob", "cy"]}
    assert b.records == [
        ApprovalRecord(gate="g", approver="ann", decision="approve", comment="ok", at=T0),
        ApprovalRecord(gate="g", approver="bob", decision="approve", at=T0),
        ApprovalRecord(gate="g", approver="cy", decision="approve", at=t1),
    ]


def test_reject_closes_the_gate_and_is_the_rejection() -> None:
    b = book("g", g=GateSpec(approvals=2))
    b.approve("g", vote("ann"), T0)
    assert b.reject("g", vote("  bob ", comment="not now"), T0) == "gate g rejected: rolling back"
    assert b.outcome == {"g": "rejected"}
    assert b.rejection("g") == ApprovalRecord(
        gate="g", approver="bob", decision="reject", comment="not now", at=T0
    )


def test_rejection_is_the_one_that_decided_its_gate() -> None:
    b = book("a", "b", a=GateSpec(), b=GateSpec())
    b.reject("a", vote("ann", comment="first"), T0)
    assert (
        b.reject("a", vote("bob", comment="second"), T0) == "gate a was already decided (rejected)"
    )
    b.approve("b", vote("cy"), T0)
    last = b.rejection("a")
    assert (last.approver, last.comment, last.decision) == ("ann", "first", "reject")


def test_a_rejected_gate_is_never_reopened_by_a_later_approval() -> None:
    """A reject and an approve in the same workflow task: the gate stays open until its step
    resumes, but it is decided: the approval is refused by the validator and, if it got past,
    recorded as nothing."""
    b = book("g")
    b.reject("g", vote("bob", comment="no"), T0)
    with pytest.raises(ValueError, match="gate 'g' was already decided \\(rejected\\)"):
        b.check(vote("ann", gate="g"), approving=True)
    with pytest.raises(ValueError, match="no gate is open"):
        b.check(vote("ann"), approving=True)
    assert b.approve("g", vote("ann"), T0) == "gate g was already decided (rejected)"
    assert b.outcome == {"g": "rejected"} and b.rejection("g").approver == "bob"
    assert [r.decision for r in b.records] == ["reject"]


def test_expire_records_an_unanswered_gate() -> None:
    b = book("g")
    b.expire("g", T0)
    assert b.outcome == {"g": "expired"}
    assert b.records == [ApprovalRecord(gate="g", approver="", decision="expired", at=T0)]


def test_preapproved_records_without_opening_or_deciding() -> None:
    b = book()
    b.preapproved("g", "game day dr (requested by rita)", T0)
    assert b.records == [
        ApprovalRecord(
            gate="g",
            approver="game day dr (requested by rita)",
            decision="approve",
            comment="approved before the run started",
            at=T0,
        )
    ]
    assert b.open == [] and b.outcome == {} and b.votes == {}


@given(
    approvers=st.lists(
        st.text(alphabet="abcdefghij", min_size=1, max_size=4).filter(lambda s: s != "rita"),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    needed=st.integers(min_value=1, max_value=12),
)
def test_approved_exactly_at_the_nth_distinct_approval(approvers: list[str], needed: int) -> None:
    """The outcome turns "approved" when the n-th distinct approval is recorded, never before."""
    b = book("g", g=GateSpec(approvals=needed))
    for i, who in enumerate(approvers, start=1):
        if i > needed:  # decided: no further vote is taken
            with pytest.raises(ValueError, match="already decided"):
                b.check(vote(who, gate="g"), approving=True)
            assert b.approve("g", vote(who), T0) == "gate g was already decided (approved)"
            continue
        assert b.check(vote(who), approving=True) == "g"
        b.approve("g", vote(who), T0)
        assert (b.outcome.get("g") == "approved") == (i >= needed)
        b.approve("g", vote(who), T0)  # a repeat never counts
        assert len(b.votes["g"]) == i
    assert len(b.records) == min(len(approvers), needed)


# ---------------------------------------------------------------------- operator_target
def act(
    action: str = "retry", by: str = "ops", reason: str = "", step: str | None = None
) -> OperatorAction:
    return OperatorAction.model_validate(
        {"action": action, "by": by, "reason": reason, "step": step}
    )


def test_operator_nothing_waiting() -> None:
    with pytest.raises(ValueError, match="nothing is waiting for the operator"):
        operator_target({}, act())


def test_operator_the_only_waiting_step_needs_no_name() -> None:
    assert operator_target({"db": "paused"}, act()) == "db"


def test_operator_several_waiting_need_a_name() -> None:
    awaiting = {"db": "paused", "dns": "undo"}
    with pytest.raises(ValueError, match=r"several steps wait \(db, dns\): name one"):
        operator_target(awaiting, act())
    assert operator_target(awaiting, act(step="dns")) == "dns"


def test_operator_unknown_step() -> None:
    with pytest.raises(ValueError, match="step 'web' is not waiting for the operator"):
        operator_target({"db": "paused"}, act(step="web"))


@pytest.mark.parametrize(
    ("why", "action", "ok"),
    [
        ("paused", "retry", True),
        ("paused", "skip", True),
        ("paused", "rollback", True),
        ("paused", "end", False),
        ("undo", "retry", True),
        ("undo", "skip", True),
        ("undo", "end", True),
        ("undo", "rollback", False),
    ],
)
def test_operator_actions_by_what_the_step_waits_for(why: str, action: str, ok: bool) -> None:
    decision = act(action, reason="because")
    if ok:
        assert operator_target({"db": why}, decision) == "db"
    else:
        use = "retry|skip|rollback" if why == "paused" else "retry|skip|end"
        message = f"'{action}' does not apply to db: use {use}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            operator_target({"db": why}, decision)


@pytest.mark.parametrize("by", ["", "  "])
def test_operator_needs_by(by: str) -> None:
    with pytest.raises(ValueError, match="by is required"):
        operator_target({"db": "paused"}, act(by=by))


@pytest.mark.parametrize("reason", ["", " \t"])
def test_operator_skip_needs_a_reason(reason: str) -> None:
    with pytest.raises(ValueError, match="a skip needs a reason"):
        operator_target({"db": "undo"}, act("skip", reason=reason))
    assert operator_target({"db": "undo"}, act("retry", reason=reason)) == "db"
