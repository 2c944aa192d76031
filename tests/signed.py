"""Signed approvals in tests: people with ed25519 keys (in memory and as OpenSSH key files), a
runbook with `approval_auth: signed` that lists them, signed requests and tokens."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.approval_auth import (
    NAMESPACE,
    DecisionAction,
    RunContext,
    make_token,
    plan_digest,
    request_message,
)
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import Mode, SignedRequest, SwitchInput
from orchestrator.signing import sign
from orchestrator.sshsig import PublicKey, Signature


@dataclass
class Person:
    """Someone with an ed25519 key."""

    name: str
    private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def key(self) -> PublicKey:
        return PublicKey(self.private.public_key().public_bytes_raw())

    @property
    def line(self) -> str:
        """`ssh-ed25519 AAAA... name` (an id_ed25519.pub line)."""
        return f"{self.key.openssh()} {self.name}@laptop"

    def sign(self, message: bytes) -> Signature:
        return sign(self.private, message, NAMESPACE)

    def key_file(self, folder: Path) -> Path:
        """The private key as an OpenSSH key file (and its .pub), as ssh-keygen writes them."""
        path = folder / f"id_{self.name}"
        path.write_bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
        Path(f"{path}.pub").write_text(self.line + "\n")
        return path


def people() -> dict[str, Person]:
    """alice requests; bob and carol approve; ops-alice is alice's own key under another name;
    mallory's key is listed nowhere."""
    out = {n: Person(n) for n in ("alice", "bob", "carol", "mallory")}
    out["ops-alice"] = Person("ops-alice", out["alice"].private)
    return out


def runbook_text(who: dict[str, Person], name: str = "signed-drill") -> str:
    """Two gates in a row (`first`, `second`), each needing one approval; signed decisions."""
    signers = "\n".join(f"  {n}: {who[n].line}" for n in ("alice", "ops-alice", "bob", "carol"))
    return f"""\
apiVersion: failover.dev/v1
kind: Runbook
name: {name}
regions: [us-east-1, us-west-2]
approvers: [bob, carol, ops-alice]
approval_auth: signed
allowed_signers:
{signers}
steps:
  - id: prepare
    type: noop
  - id: first
    type: approval
    depends_on: [prepare]
    params: {{expires: 30m}}
  - id: second
    type: approval
    depends_on: [first]
    params: {{expires: 30m}}
  - id: done
    type: noop
    depends_on: [second]
"""


def signed_plan(
    who: dict[str, Person],
    requester: str = "alice",
    signed_by: str | None = None,
    at: datetime | None = None,
    mode: Mode = "drill",
) -> SwitchInput:
    """The runbook resolved with signed decisions, its request signed by `signed_by`'s key."""
    inp = resolve(load_text(runbook_text(who)), "us-east-1", "us-west-2", requester=requester,
                  mode=mode, approval_auth="signed")  # fmt: skip
    sign_request(inp, who[signed_by or requester], at)
    return inp


def sign_request(inp: SwitchInput, person: Person, at: datetime | None = None) -> None:
    nonce = secrets.token_hex(16)
    at = at or datetime.now(UTC).replace(microsecond=0)
    sig = person.sign(request_message(inp.requester, plan_digest(inp), nonce, at))
    inp.request = SignedRequest(
        nonce=nonce, signed_at=at, signature=base64.b64encode(sig.blob).decode()
    )


def token(
    ctx: RunContext,
    person: Person,
    gate: str,
    action: DecisionAction = "approve",
    comment: str = "",
    approver: str | None = None,
    sign: Callable[[bytes], Signature] | None = None,
) -> str:
    """A signed decision of `person` (as `approver`, default their name)."""
    return make_token(ctx, gate, action, approver or person.name, comment, secrets.token_hex(16),
                      sign or person.sign)  # fmt: skip
