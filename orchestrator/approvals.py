"""Who may decide what, and when: the approval gates of a run and the operator's decisions.

Plain rules over plain data, so they are unit-tested on their own and shared by a workflow's
Update validators (which refuse) and its handlers (which record). The workflow owns a `GateBook`
and feeds it what happens; nothing here does I/O or reads a clock (times are passed in).

The rules: a gate must be open; the approver must be named and allowed (the gate's approvers, else
the runbook's; nobody listed means anyone); the requester never approves their own switch (the
two-person rule); a person approves a gate once; a gate opens when enough distinct people
approved; one rejection closes it.

With signed decisions (`approval_auth: signed`, a `Verifier`), a decision must also carry a
signature of this run's decision by a key listed for the approver (`orchestrator.approval_auth`),
never a signature already used in the run (replay), and the two-person rule and the one-vote rule
compare keys too: one key under two names is one person.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from orchestrator.approval_auth import DecisionAction, Token, Verifier, parse_token
from orchestrator.runs import ApprovalRecord, Decision, GateSpec, OperatorAction

#: What the operator may decide, by what a step waits for.
OPERATOR_ACTIONS = {"paused": ("retry", "skip", "rollback"), "undo": ("retry", "skip", "end")}


class GateBook:
    """The gates of one run: which are open, who approved, how each one ended."""

    def __init__(
        self,
        requester: str,
        approvers: list[str],
        gates: Mapping[str, GateSpec],
        what: str = "switch",
        verifier: Verifier | None = None,
        requester_key: str = "",
    ) -> None:
        self.what = what  # what is being approved, in messages ("switch", "game day")
        self.requester = requester
        #: Signed decisions only (None: the name given is taken as it is).
        self.verifier = verifier
        #: The fingerprint of the key the requester proved themselves with.
        self.requester_key = requester_key
        self.nonces: set[str] = set()  # of the signed decisions taken (a replay is refused)
        self.key_votes: dict[str, dict[str, str]] = {}  # gate -> key fingerprint -> name
        self.approvers = approvers
        self.gates = dict(gates)
        self.open: list[str] = []
        self.votes: dict[str, list[str]] = {}
        self.outcome: dict[str, str] = {}  # gate -> approved | rejected | expired
        self.records: list[ApprovalRecord] = []
        self.notes: dict[str, str] = {}  # gate -> what the approver must know (the RPO at risk)

    # --------------------------------------------------------------------------- rules
    def waiting(self) -> list[str]:
        """The open gates still undecided (a decided gate stays open until its step resumes)."""
        return [g for g in self.open if g not in self.outcome]

    def gate_for(self, decision: Decision) -> str:
        """The undecided open gate a decision is for (ValueError if none, or if ambiguous)."""
        waiting = self.waiting()
        if decision.gate is not None:
            if decision.gate in self.outcome:
                raise ValueError(
                    f"gate {decision.gate!r} was already decided ({self.outcome[decision.gate]})"
                )
            if decision.gate not in waiting:
                open_ = ", ".join(waiting) or "none"
                raise ValueError(f"gate {decision.gate!r} is not open (open gates: {open_})")
            return decision.gate
        if len(waiting) == 1:
            return waiting[0]
        if not waiting:
            raise ValueError("no gate is open")
        raise ValueError(f"several gates are open ({', '.join(waiting)}): name one")

    def allowed(self, gate: str) -> list[str]:
        """Who may decide a gate (empty: anyone but the requester, to approve)."""
        return self.gates[gate].approvers or self.approvers

    def check(self, decision: Decision, approving: bool) -> str:
        """The gate a decision is for, if the decider may take it (ValueError with why not)."""
        who = decision.approver.strip()
        if not who:
            raise ValueError("approver is required: who decides")
        if self.verifier is not None and parse_token(decision).nonce in self.nonces:
            raise ValueError("replayed: this signed decision was already used in this run")
        sid = self.gate_for(decision)
        key = ""
        if self.verifier is not None:
            _, key = self.verifier.decision(decision, sid, _action(approving))
        allowed = self.allowed(sid)
        if approving and who == self.requester:
            raise ValueError(
                f"{who} requested this {self.what} and cannot approve it (two-person rule)"
            )
        if approving and key and key == self.requester_key:
            raise ValueError(
                f"{who} signed with the key that requested this {self.what} ({self.requester}, "
                f"{key}): the requester cannot approve it (two-person rule)"
            )
        if allowed and who not in allowed:
            raise ValueError(f"{who} may not decide gate {sid} (approvers: {', '.join(allowed)})")
        if approving and who in self.votes.get(sid, []):
            raise ValueError(f"{who} already approved gate {sid}: a second person must approve")
        voted = self.key_votes.get(sid, {})
        if approving and key in voted:
            raise ValueError(
                f"the key {key} already approved gate {sid} (as {voted[key]}): a second person "
                "must approve"
            )
        return sid

    # ------------------------------------------------------------------------- records
    def note(self, gate: str, text: str) -> None:
        """Something the approver must know, shown with the open gate."""
        self.notes[gate] = text

    def opened(self, gate: str) -> None:
        self.open.append(gate)

    def closed(self, gate: str) -> None:
        self.open.remove(gate)

    def approve(self, gate: str, decision: Decision, at: datetime) -> str:
        """Record an approval; the gate opens once enough distinct people approved. A gate
        already decided (rejected, expired) is not reopened."""
        if gate in self.outcome:
            return f"gate {gate} was already decided ({self.outcome[gate]})"
        who = decision.approver.strip()
        votes = self.votes.setdefault(gate, [])
        if who in votes:
            return f"{who} already approved gate {gate}"
        signed = self._taken(decision)
        if isinstance(signed, str):
            return signed
        key = signed.ssh_signature().key.fingerprint if signed is not None else ""
        if key and key in self.key_votes.get(gate, {}):
            return f"the key {key} already approved gate {gate}"
        votes.append(who)
        if key:
            self.key_votes.setdefault(gate, {})[key] = who
        self.records.append(
            ApprovalRecord(gate=gate, approver=who, decision="approve", comment=decision.comment,
                           at=at, key=key)
        )  # fmt: skip
        needed = self.gates[gate].approvals
        if len(votes) >= needed:
            self.outcome[gate] = "approved"
            return f"gate {gate} approved: the {self.what} goes on"
        return f"gate {gate}: {len(votes)} of {needed} approvals"

    def reject(self, gate: str, decision: Decision, at: datetime) -> str:
        """Record a rejection: the gate is closed for good (unless already decided)."""
        if gate in self.outcome:
            return f"gate {gate} was already decided ({self.outcome[gate]})"
        who = decision.approver.strip()
        signed = self._taken(decision)
        if isinstance(signed, str):
            return signed
        key = signed.ssh_signature().key.fingerprint if signed is not None else ""
        self.records.append(
            ApprovalRecord(gate=gate, approver=who, decision="reject", comment=decision.comment,
                           at=at, key=key)
        )  # fmt: skip
        self.outcome[gate] = "rejected"
        return f"gate {gate} rejected: rolling back"

    def _taken(self, decision: Decision) -> Token | str | None:
        """A signed decision's token, its nonce now taken (None: decisions are not signed; a
        string: why it is ignored). Its validator checked it; two copies of one signed decision
        can both pass their validators when delivered together: the second is ignored here."""
        if self.verifier is None:
            return None
        try:
            token = parse_token(decision)
        except ValueError as exc:  # (never: its validator parsed it)
            return f"ignored: {exc}"
        if token.nonce in self.nonces:
            return "ignored: this signed decision was already used in this run"
        self.nonces.add(token.nonce)
        return token

    def expire(self, gate: str, at: datetime) -> None:
        """Nobody decided in time: an unanswered gate never approves."""
        self.outcome[gate] = "expired"
        self.records.append(ApprovalRecord(gate=gate, approver="", decision="expired", at=at))

    def preapproved(self, gate: str, by: str, at: datetime) -> None:
        """Approved before the run started (a game day's approval stands in)."""
        note = "approved before the run started"
        self.records.append(
            ApprovalRecord(gate=gate, approver=by, decision="approve", comment=note, at=at)
        )

    def rejection(self, gate: str) -> ApprovalRecord:
        """The decision that rejected a gate."""
        return next(a for a in reversed(self.records) if a.gate == gate and a.decision == "reject")


def _action(approving: bool) -> DecisionAction:
    return "approve" if approving else "reject"


def operator_target(awaiting: Mapping[str, str], action: OperatorAction) -> str:
    """The step an operator's decision is for, if it applies (ValueError with why not).

    `awaiting` maps the steps that wait for the operator to what they wait for: "paused" (a step
    that failed with `on_failure: pause`) or "undo" (an undo that keeps failing)."""
    if not awaiting:
        raise ValueError("nothing is waiting for the operator")
    if action.step is None:
        if len(awaiting) > 1:
            raise ValueError(f"several steps wait ({', '.join(awaiting)}): name one")
        sid = next(iter(awaiting))
    elif action.step in awaiting:
        sid = action.step
    else:
        raise ValueError(f"step {action.step!r} is not waiting for the operator")
    allowed = OPERATOR_ACTIONS[awaiting[sid]]
    if action.action not in allowed:
        raise ValueError(f"{action.action!r} does not apply to {sid}: use {'|'.join(allowed)}")
    if not action.by.strip():
        raise ValueError("by is required: who decides")
    if action.action == "skip" and not action.reason.strip():
        raise ValueError("a skip needs a reason")
    return sid
