"""Signed requests and decisions (`approval_auth: signed`): what is signed, and how it is checked.

A run's requester signs its plan; each approver signs one decision on one gate of one run. The
signatures are SSH signatures (`orchestrator.sshsig`) under the namespace `failover-approval`
over a canonical message: JSON with sorted keys and no spaces, UTF-8. So

    printf '%s' "$MESSAGE" | ssh-keygen -Y sign -n failover-approval -f ~/.ssh/id_ed25519

signs the same bytes as `failover approve`, and `ssh-keygen -Y verify` checks its signatures.

- A request: {"action": "request", "requester": name, "plan": digest, "nonce", "signed_at"}.
  Checked when the run starts: nothing runs otherwise.
- A decision: {"action": "approve"|"reject", "workflow_id", "run_id" (the first run's id, a
  UUID), "plan": digest, "gate", "approver": name, "comment", "nonce"}. Checked by the
  workflow's Update validator: a signature for another run, plan, gate, action, name or comment
  does not verify.
- The plan digest is SHA-256 over the run's input as the workflow received it (the resolved
  runbook, regions, mode, requester, approvers, the signers' keys...), without the request's
  own signature; fields at their default value are left out, so a worker that knows a newer
  optional field computes the same digest.

A decision travels as a token (`failover approve --print-token`): the fields it was signed over
and the signature, base64 of JSON. The token's fields only name what differs, in the refusal;
what is verified is always the message built from the run itself and the Update's fields.

Pure computation (no I/O, no clock: times are passed in): the workflow calls it in its Update
validators and when it starts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from orchestrator.runs import Decision, Signer, SwitchInput
from orchestrator.sshsig import PublicKey, Signature, SshSigError

#: The SSH signature namespace of every signed request and decision.
NAMESPACE = "failover-approval"
TOKEN_PREFIX = "failover-sig1:"
#: A request must have been signed at most this long before the run started ...
REQUEST_MAX_AGE = timedelta(minutes=15)
#: ... and not later than this after it (clocks differ).
REQUEST_MAX_AHEAD = timedelta(minutes=5)

DecisionAction = Literal["approve", "reject"]


def canonical(data: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: JSON, sorted keys, no spaces, UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def plan_digest(inp: SwitchInput) -> str:
    """SHA-256 (hex) of the run's input without the request's signature, default values left out
    (the same bytes for any version that knows the fields set)."""
    data = inp.model_dump(mode="json", exclude={"request"}, exclude_defaults=True)
    return hashlib.sha256(canonical(data)).hexdigest()


def request_message(requester: str, plan: str, nonce: str, signed_at: datetime) -> bytes:
    """What the requester signs.

    (Not the Temporal namespace: what a workflow reads of it differs when a history is replayed
    by Temporal's Replayer, so the check would not replay alike. The plan holds the signers' keys:
    environments with their own keys have different plans.)"""
    return canonical(
        {
            "action": "request",
            "requester": requester,
            "plan": plan,
            "nonce": nonce,
            "signed_at": _utc(signed_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    )


def _utc(at: datetime) -> datetime:
    """An aware time in UTC (a naive one is taken as UTC: never the machine's local time)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass(frozen=True)
class RunContext:
    """What identifies a run in its decisions: workflow id, first run id and plan digest."""

    workflow_id: str
    run_id: str
    plan: str


class Token(BaseModel):
    """A signed decision as it travels (the Decision's `signature`)."""

    workflow_id: str
    run_id: str
    plan: str
    gate: str
    action: DecisionAction
    approver: str
    comment: str
    nonce: str
    #: The SSH signature, base64 of its bytes.
    signature: str

    def message(self) -> bytes:
        """The message these fields make (what was signed, if the token is honest)."""
        return decision_message(
            RunContext(self.workflow_id, self.run_id, self.plan),
            self.gate, self.action, self.approver, self.comment, self.nonce,
        )  # fmt: skip

    def encode(self) -> str:
        """One line to paste (a JSON string's value in the Temporal UI)."""
        return TOKEN_PREFIX + base64.urlsafe_b64encode(canonical(self.model_dump())).decode()

    @classmethod
    def parse(cls, text: str) -> Token:
        """A token (ValueError saying why it is not one)."""
        text = text.strip()
        if not text.startswith(TOKEN_PREFIX):
            raise ValueError(
                "signature: not a failover approval token (it starts with "
                f"{TOKEN_PREFIX!r}: see 'failover approve --print-token')"
            )
        try:
            data = json.loads(base64.urlsafe_b64decode(text[len(TOKEN_PREFIX) :]))
            return cls.model_validate(data)
        except (binascii.Error, ValueError, ValidationError):
            raise ValueError("signature: the token is damaged (cut or changed?)") from None

    def ssh_signature(self) -> Signature:
        """The SSH signature it carries (ValueError if unreadable)."""
        try:
            return Signature.parse(base64.b64decode(self.signature, validate=True))
        except (binascii.Error, SshSigError) as exc:
            raise ValueError(f"signature: unreadable SSH signature ({exc})") from None


def decision_message(
    ctx: RunContext, gate: str, action: DecisionAction, approver: str, comment: str, nonce: str
) -> bytes:
    """What an approver signs."""
    return canonical(
        {
            "action": action,
            "workflow_id": ctx.workflow_id,
            "run_id": ctx.run_id,
            "plan": ctx.plan,
            "gate": gate,
            "approver": approver,
            "comment": comment,
            "nonce": nonce,
        }
    )


def make_token(
    ctx: RunContext,
    gate: str,
    action: DecisionAction,
    approver: str,
    comment: str,
    nonce: str,
    sign: Callable[[bytes], Signature],
) -> str:
    """Sign a decision (`sign`: the message's bytes -> an SSH signature under NAMESPACE)."""
    who = approver.strip()
    sig = sign(decision_message(ctx, gate, action, who, comment, nonce))
    return Token(
        workflow_id=ctx.workflow_id, run_id=ctx.run_id, plan=ctx.plan, gate=gate, action=action,
        approver=who, comment=comment, nonce=nonce,
        signature=base64.b64encode(sig.blob).decode(),
    ).encode()  # fmt: skip


def short(digest: str) -> str:
    return digest[:12] + "…"


class Signers:
    """Who may sign a run: names by key fingerprint and keys by name."""

    def __init__(self, signers: list[Signer]) -> None:
        self.names: dict[str, list[str]] = {}  # fingerprint -> names
        for s in signers:
            fp = PublicKey.parse(s.key).fingerprint
            self.names.setdefault(fp, [])
            if s.name not in self.names[fp]:
                self.names[fp].append(s.name)

    def known(self, key: PublicKey, name: str, whose: str) -> str:
        """The key's fingerprint if it is listed for `name` (ValueError saying why not)."""
        fp = key.fingerprint
        if fp not in self.names:
            raise ValueError(f"unknown key {fp}: {whose} is not an allowed signer of this run")
        if name not in self.names[fp]:
            raise ValueError(
                f"key {fp} is not {name}'s: it is listed for {', '.join(self.names[fp])}"
            )
        return fp

    def holders(self, fingerprint: str) -> list[str]:
        return self.names.get(fingerprint, [])


class Verifier:
    """Checks a run's request and its decisions against its signers and its context."""

    def __init__(self, signers: list[Signer], ctx: RunContext) -> None:
        self.signers = Signers(signers)
        self.ctx = ctx

    def request(self, inp: SwitchInput, started_at: datetime) -> str:
        """The fingerprint the requester proved themselves with (ValueError saying why not)."""
        req = inp.request
        if req is None:
            raise ValueError(
                "requester not authenticated: this run takes signed requests (approval_auth: "
                "signed) and its input carries no signature ('failover drill' and 'failover "
                "run' sign with --key or ssh-agent)"
            )
        try:
            sig = Signature.parse(base64.b64decode(req.signature, validate=True))
        except (binascii.Error, SshSigError) as exc:
            raise ValueError(f"requester not authenticated: unreadable signature ({exc})") from None
        try:
            fp = self.signers.known(sig.key, inp.requester, f"the requester {inp.requester}")
        except ValueError as exc:
            raise ValueError(f"requester not authenticated: {exc}") from None
        message = request_message(inp.requester, self.ctx.plan, req.nonce, req.signed_at)
        if not sig.verifies(message, NAMESPACE):
            raise ValueError(
                "requester not authenticated: the signature is not over this plan "
                f"(digest {short(self.ctx.plan)}): the input was changed after it was signed"
            )
        signed_at, started_at = _utc(req.signed_at), _utc(started_at)
        if signed_at < started_at - REQUEST_MAX_AGE:
            raise ValueError(
                f"requester not authenticated: signed at {signed_at:%Y-%m-%d %H:%M:%S}, "
                f"more than {REQUEST_MAX_AGE} before the run started (a replayed request?)"
            )
        if signed_at > started_at + REQUEST_MAX_AHEAD:
            raise ValueError(
                f"requester not authenticated: signed at {signed_at:%Y-%m-%d %H:%M:%S}, "
                "after the run started (is the signer's clock right?)"
            )
        return fp

    def decision(self, decision: Decision, gate: str, action: DecisionAction) -> tuple[Token, str]:
        """The token of a decision and the fingerprint of the key that signed it, if it is this
        run's `action` on `gate` by `decision.approver` (ValueError saying why not)."""
        token = parse_token(decision)
        who = decision.approver.strip()
        ctx = self.ctx
        if token.run_id != ctx.run_id or token.workflow_id != ctx.workflow_id:
            raise ValueError(
                f"signed for another run ({token.workflow_id} run {token.run_id}), not this one "
                f"({ctx.workflow_id} run {ctx.run_id})"
            )
        if token.plan != ctx.plan:
            raise ValueError(
                f"signed for another plan (digest {short(token.plan)}): this run's plan is "
                f"{short(ctx.plan)}; check the run and sign again"
            )
        if token.gate != gate:
            raise ValueError(f"signed for gate {token.gate!r}, not {gate!r}")
        if token.action != action:
            raise ValueError(f"signed to {token.action}, not to {action}")
        if token.approver != who:
            raise ValueError(f"signed as {token.approver}, not as {who}")
        if token.comment != decision.comment:
            raise ValueError(
                f"signed with the comment {token.comment!r}, not {decision.comment!r}: send the "
                "comment that was signed"
            )
        sig = token.ssh_signature()
        fp = self.signers.known(sig.key, who, "it")
        message = decision_message(ctx, gate, action, who, decision.comment, token.nonce)
        if not sig.verifies(message, NAMESPACE):
            raise ValueError(f"bad signature: not made by {fp} over this decision")
        return token, fp


def parse_token(decision: Decision) -> Token:
    """The token a decision carries (ValueError if none, or not a token)."""
    if not decision.signature or not decision.signature.strip():
        raise ValueError(
            "this run takes signed decisions only (approval_auth: signed): sign with 'failover "
            "approve RUN --key KEY' (or ssh-agent), or paste the token that 'failover approve "
            'RUN --print-token\' prints as "signature"'
        )
    return Token.parse(decision.signature)


def unapprovable(inp: SwitchInput, requester_key: str) -> list[str]:
    """Why a signed run could never pass its gates: a gate with fewer people holding a listed
    key (other than the requester, by name and by key) than the approvals it needs. Checked
    before the run starts (`failover drill`, `run`)."""
    by_name: dict[str, set[str]] = {}
    for s in inp.signers:
        by_name.setdefault(s.name, set()).add(PublicKey.parse(s.key).fingerprint)
    out = []
    for step in inp.steps:
        gate = step.gate
        if gate is None or gate.preapproved_by:
            continue
        allowed = gate.approvers or inp.approvers or list(by_name)
        able = [
            n for n in allowed if n != inp.requester and by_name.get(n, set()) - {requester_key}
        ]
        if len(able) < gate.approvals:
            who = f"only {', '.join(able)}" if able else "nobody"
            out.append(
                f"gate {step.id} needs {gate.approvals} signed approval(s) and {who} could give "
                f"one: list the approvers' keys in allowed_signers (approvers: "
                f"{', '.join(allowed) or 'anyone'})"
            )
    return out
