"""Signed approvals (`approval_auth: signed`): the rules on their own (`GateBook` with a
`Verifier`), then the region-switch workflow on the sandbox's Temporal (its Update validators
refuse, the run records who proved what, the history replays), then the CLI as an operator uses
it (`failover drill --key`, `failover approve --key | --token | --print-token`)."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from orchestrator import switch
from orchestrator.approval_auth import (
    REQUEST_MAX_AGE,
    RunContext,
    Token,
    Verifier,
    plan_digest,
    unapprovable,
)
from orchestrator.approvals import GateBook
from orchestrator.config import from_sandbox
from orchestrator.runs import Decision, GateSpec, RunState, StepState, SwitchInput
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.signed import Person, people, runbook_text, signed_plan, token
from tests.workflows.helpers import ROOT, run, sandbox_config, start, wait_for, worker
from workflows.registry import WORKFLOWS

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
CTX = RunContext(workflow_id="switch-signed-drill", run_id="run-1", plan="")


# ================================================================== the rules, on their own
@pytest.fixture(scope="module")
def who() -> dict[str, Person]:
    return people()


def signed_book(who: dict[str, Person], approvals: int = 1) -> tuple[GateBook, RunContext]:
    """The gates of a signed run requested (and signed) by alice, gate `first` open."""
    inp = signed_plan(who)
    ctx = replace(CTX, plan=plan_digest(inp))
    verifier = Verifier(inp.signers, ctx)
    gates = {s.id: s.gate for s in inp.steps if s.gate is not None}
    gates["first"] = GateSpec(approvals=approvals)
    assert inp.request is not None
    requester_key = verifier.request(inp, inp.request.signed_at)
    book = GateBook(inp.requester, inp.approvers, gates, verifier=verifier,
                    requester_key=requester_key)  # fmt: skip
    book.opened("first")
    return book, ctx


def decision(approver: str, signature: str | None, gate: str | None = None,
             comment: str = "") -> Decision:  # fmt: skip
    return Decision(approver=approver, gate=gate, comment=comment, signature=signature)


def test_a_valid_signed_approval_passes_and_records_the_key(who: dict[str, Person]) -> None:
    book, ctx = signed_book(who)
    d = decision("bob", token(ctx, who["bob"], "first", comment="ok"), comment="ok")
    assert book.check(d, approving=True) == "first"
    assert book.approve("first", d, T0) == "gate first approved: the switch goes on"
    record = book.records[-1]
    assert (record.approver, record.key) == ("bob", who["bob"].key.fingerprint)
    assert book.requester_key == who["alice"].key.fingerprint


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "this run takes signed decisions only (approval_auth: signed)"),
        ("not a token", "signature: not a failover approval token"),
        ("damaged", "signature: the token is damaged (cut or changed?)"),
        ("unknown key", "unknown key {mallory}: it is not an allowed signer of this run"),
        ("someone else's key", "key {carol} is not bob's: it is listed for carol"),
        ("plan digest", "signed for another plan (digest 000000000000…): this run's plan is"),
        ("forged digest", "bad signature: not made by {bob} over this decision"),
        ("another gate", "signed for gate 'second', not 'first'"),
        ("another run", "signed for another run (switch-signed-drill run run-0), not this one"),
        ("a rejection", "signed to reject, not to approve"),
        ("another name", "signed as carol, not as bob"),
        ("another comment", "signed with the comment 'ok', not 'changed'"),
        ("self-approval by key", "ops-alice signed with the key that requested this switch "
                                 "(alice, {alice}): the requester cannot approve it (two-person rule)"),
        ("self-approval by name", "alice requested this switch and cannot approve it"),
    ],
)  # fmt: skip
def test_signed_approvals_that_are_refused(who: dict[str, Person], case: str, reason: str) -> None:
    book, ctx = signed_book(who)
    bob = who["bob"]
    signature: str | None = token(ctx, bob, "first")
    approver, comment = "bob", ""
    if case == "unsigned":
        signature = None
    elif case == "not a token":
        signature = "-----BEGIN SSH SIGNATURE-----"
    elif case == "damaged":
        assert signature is not None
        signature = signature[:-20]
    elif case == "unknown key":
        signature = token(ctx, who["mallory"], "first", approver="bob")
    elif case == "someone else's key":
        signature = token(ctx, who["carol"], "first", approver="bob")
    elif case == "plan digest":  # signed over another plan (what the approver saw differs)
        signature = token(replace(ctx, plan="0" * 64), bob, "first")
    elif case == "forged digest":  # ... and the token's digest changed to match this run's
        forged = Token.parse(token(replace(ctx, plan="0" * 64), bob, "first"))
        signature = forged.model_copy(update={"plan": ctx.plan}).encode()
    elif case == "another gate":
        signature = token(ctx, bob, "second")
    elif case == "another run":
        signature = token(replace(ctx, run_id="run-0"), bob, "first")
    elif case == "a rejection":
        signature = token(ctx, bob, "first", action="reject")
    elif case == "another name":
        signature = token(ctx, who["carol"], "first")
    elif case == "another comment":
        signature, comment = token(ctx, bob, "first", comment="ok"), "changed"
    elif case == "self-approval by key":
        approver, signature = "ops-alice", token(ctx, who["ops-alice"], "first")
    elif case == "self-approval by name":
        approver, signature = "alice", token(ctx, who["alice"], "first")
    expected = reason.format(**{n: p.key.fingerprint for n, p in who.items()})
    with pytest.raises(ValueError) as refused:
        book.check(decision(approver, signature, comment=comment), approving=True)
    assert str(refused.value).startswith(expected), str(refused.value)


def test_a_replayed_signed_decision_is_refused(who: dict[str, Person]) -> None:
    book, ctx = signed_book(who, approvals=2)
    bobs = decision("bob", token(ctx, who["bob"], "first"))
    book.check(bobs, approving=True)
    assert book.approve("first", bobs, T0) == "gate first: 1 of 2 approvals"
    with pytest.raises(ValueError, match=r"^replayed: this signed decision was already used"):
        book.check(bobs, approving=True)
    # two copies delivered together both pass their validators: the second is ignored
    carols = decision("carol", token(ctx, who["carol"], "first"))
    book.check(carols, approving=True)
    book.check(carols, approving=True)
    assert book.approve("first", carols, T0) == "gate first approved: the switch goes on"
    assert len(book.records) == 2


def test_one_key_under_two_names_approves_once(who: dict[str, Person]) -> None:
    """The two-person rule compares keys: bob's key listed again as 'robert' is still bob."""
    inp = signed_plan(who)
    inp.signers.append(inp.signers[2].model_copy(update={"name": "robert"}))
    assert inp.signers[2].name == "bob"
    ctx = replace(CTX, plan=plan_digest(inp))
    book = GateBook("alice", [], {"first": GateSpec(approvals=2)},
                    verifier=Verifier(inp.signers, ctx))  # fmt: skip
    book.opened("first")
    bob = decision("bob", token(ctx, who["bob"], "first"))
    book.check(bob, approving=True)
    book.approve("first", bob, T0)
    robert = decision("robert", token(ctx, who["bob"], "first", approver="robert"))
    with pytest.raises(ValueError, match=r"the key SHA256:\S+ already approved gate first \(as "
                                         r"bob\): a second person must approve"):  # fmt: skip
        book.check(robert, approving=True)


def test_a_signed_rejection(who: dict[str, Person]) -> None:
    book, ctx = signed_book(who)
    no = decision("carol", token(ctx, who["carol"], "first", action="reject", comment="stop"),
                  comment="stop")  # fmt: skip
    with pytest.raises(ValueError, match="signed to reject, not to approve"):
        book.check(no, approving=True)
    assert book.check(no, approving=False) == "first"
    assert book.reject("first", no, T0) == "gate first rejected: rolling back"
    assert book.rejection("first").key == who["carol"].key.fingerprint


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "requester not authenticated: this run takes signed requests"),
        ("unknown key", "requester not authenticated: unknown key {mallory}: the requester alice "
                        "is not an allowed signer of this run"),
        ("someone else's key", "requester not authenticated: key {bob} is not alice's"),
        ("changed plan", "requester not authenticated: the signature is not over this plan"),
        ("naive time", ""),
        ("too old", "requester not authenticated: signed at 2024-05-01 11:44:59, more than "
                    "0:15:00 before the run started (a replayed request?)"),
        ("ahead", "requester not authenticated: signed at 2024-05-01 12:05:01, after the run "
                  "started"),
    ],
)  # fmt: skip
def test_requests_that_are_refused(who: dict[str, Person], case: str, reason: str) -> None:
    at = {"too old": T0 - REQUEST_MAX_AGE - timedelta(seconds=1),
          "ahead": T0 + timedelta(minutes=5, seconds=1)}.get(case, T0)  # fmt: skip
    signer = {"unknown key": "mallory", "someone else's key": "bob"}.get(case, "alice")
    if case == "naive time":  # taken as UTC, whatever the machine's time zone
        at = T0.replace(tzinfo=None)
    inp = signed_plan(who, signed_by=signer, at=at)
    if case == "unsigned":
        inp.request = None
    if case == "changed plan":  # someone adds themselves as an approver after it was signed
        inp.approvers.append("mallory")
    verifier = Verifier(inp.signers, replace(CTX, plan=plan_digest(inp)))
    if not reason:
        assert verifier.request(inp, T0) == who["alice"].key.fingerprint
        return
    expected = reason.format(**{n: p.key.fingerprint for n, p in who.items()})
    with pytest.raises(ValueError) as refused:
        verifier.request(inp, T0)
    assert str(refused.value).startswith(expected), str(refused.value)


def test_the_plan_digest_survives_temporals_payloads(who: dict[str, Person]) -> None:
    """What the CLI signs is what the workflow computes from its decoded input."""
    inp = signed_plan(who)
    conv = pydantic_data_converter.payload_converter
    [decoded] = conv.from_payloads(conv.to_payloads([inp]), [SwitchInput])
    assert plan_digest(decoded) == plan_digest(inp)
    assert plan_digest(decoded.model_copy(update={"request": None})) == plan_digest(inp)
    changed = decoded.model_copy(update={"to_region": "us-east-1"})
    assert plan_digest(changed) != plan_digest(inp)


def test_gates_nobody_listed_could_approve(who: dict[str, Person]) -> None:
    inp = signed_plan(who)
    assert unapprovable(inp, who["alice"].key.fingerprint) == []
    # only ops-alice (alice's own key) is left for gate first
    inp.steps[1].gate = GateSpec(approvers=["ops-alice", "dora"], approvals=1)
    assert unapprovable(inp, who["alice"].key.fingerprint) == [
        "gate first needs 1 signed approval(s) and nobody could give one: list the "
        "approvers' keys in allowed_signers (approvers: ops-alice, dora)"
    ]


def test_the_runbook_lists_keys_and_says_signed(who: dict[str, Person]) -> None:
    from orchestrator.runbook.loader import RunbookError, load_text

    rb = load_text(runbook_text(who))
    assert rb.approval_auth == "signed"
    assert ("ops-alice", who["alice"].key.openssh()) in rb.signer_keys()  # comment dropped
    bad = runbook_text(who).replace(who["carol"].key.openssh(), "ssh-rsa AAAAB3NzaC1yc2E")
    with pytest.raises(RunbookError) as exc:
        load_text(bad, "signed.yaml")
    assert str(exc.value.problems[0]).startswith(
        "signed.yaml:11:10: allowed_signers.carol[0]: ssh-rsa keys are not supported"
    )


# ============================================================= the workflow on the sandbox
def test_signed_run_on_temporal(env: SandboxEnv, who: dict[str, Person]) -> None:
    """Every refusal is the validator's, with its reason; the accepted decisions carry keys; the
    history replays (validators are not run on replay, handlers are)."""

    async def scenario() -> None:
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, signed_plan(who))
            p = await wait_for(h, lambda p: p.open_gates == ["first"])
            assert p.approval_auth == "signed"
            assert p.requester_key == who["alice"].key.fingerprint
            inp, first_run = await switch.started_with(h)
            ctx = RunContext(h.id, first_run, plan_digest(inp))

            async def approve(name: str, signature: str | None, gate: str = "first") -> str:
                return await switch.approve(h, decision(name, signature, gate))

            async def no(name: str, signature: str | None, gate: str = "first") -> str:
                with pytest.raises(switch.RefusedError) as exc:
                    await approve(name, signature, gate)
                return str(exc.value)

            assert (await no("bob", None)).startswith("this run takes signed decisions only")
            assert (await no("bob", token(ctx, who["mallory"], "first", approver="bob"))) == (
                f"unknown key {who['mallory'].key.fingerprint}: it is not an allowed signer of "
                "this run"
            )
            other_plan = token(replace(ctx, plan="f" * 64), who["bob"], "first")
            assert (await no("bob", other_plan)).startswith(
                f"signed for another plan (digest ffffffffffff…): this run's plan is "
                f"{ctx.plan[:12]}…"
            )
            # a signature that fails in the validator, in the workflow sandbox (the worker
            # goes on: no native code raises there)
            forged = Token.parse(other_plan).model_copy(update={"plan": ctx.plan}).encode()
            assert await no("bob", forged) == (
                f"bad signature: not made by {who['bob'].key.fingerprint} over this decision"
            )
            second = token(ctx, who["bob"], "second")
            assert await no("bob", second) == "signed for gate 'second', not 'first'"
            assert await no("ops-alice", token(ctx, who["ops-alice"], "first")) == (
                f"ops-alice signed with the key that requested this switch (alice, "
                f"{who['alice'].key.fingerprint}): the requester cannot approve it (two-person "
                "rule)"
            )
            good = token(ctx, who["bob"], "first")
            assert await approve("bob", good) == "gate first approved: the switch goes on"
            await wait_for(h, lambda p: p.open_gates == ["second"])
            assert await no("bob", good, "second") == (
                "replayed: this signed decision was already used in this run"
            )
            assert await approve("bob", second, "second") == (
                "gate second approved: the switch goes on"
            )
            result = await h.result()
            assert result.state == RunState.SUCCEEDED
            assert [(a.gate, a.approver, a.key) for a in result.approvals] == [
                ("first", "bob", who["bob"].key.fingerprint),
                ("second", "bob", who["bob"].key.fingerprint),
            ]
            history = await h.fetch_history()
        replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None

    run(scenario())


def test_a_run_whose_requester_is_not_proven_does_nothing(
    env: SandboxEnv, who: dict[str, Person]
) -> None:
    async def scenario() -> None:
        async with worker(sandbox_config(env)) as (client, queue):
            inp = signed_plan(who, signed_by="mallory")
            result = await (await start(client, queue, inp)).result()
            assert result.state == RunState.ROLLED_BACK
            assert result.reason == (
                f"requester not authenticated: unknown key {who['mallory'].key.fingerprint}: "
                "the requester alice is not an allowed signer of this run"
            )
            assert {s.state for s in result.steps} == {StepState.NOT_RUN}
            # signed, then changed: an approver added after the requester signed
            inp = signed_plan(who)
            inp.approvers.append("mallory")
            result = await (await start(client, queue, inp)).result()
            assert result.reason.startswith(
                "requester not authenticated: the signature is not over this plan"
            )
            assert {s.state for s in result.steps} == {StepState.NOT_RUN}

    run(scenario())


# ============================================================================ the CLI


def wait_state(env: SandboxEnv, wid: str, pred: object, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        st = json.loads(failover(env, "status", wid, "-o", "json").stdout)
        if pred(st):  # type: ignore[operator]
            return dict(st)
        assert time.monotonic() < deadline, st
        time.sleep(0.2)


def test_signed_approvals_from_the_cli(
    env: SandboxEnv, worker_process: None, who: dict[str, Person], tmp_path: Path
) -> None:
    keys = {n: who[n].key_file(tmp_path) for n in ("alice", "bob", "carol", "mallory")}
    runbook = tmp_path / "signed-drill.yaml"
    runbook.write_text(runbook_text(who))
    unsigned = failover(env, "drill", str(runbook), "--from", "us-east-1", "--to", "us-west-2",
                        "--detach", SSH_AUTH_SOCK="")  # fmt: skip
    assert unsigned.returncode == 2
    assert unsigned.stderr.startswith("error: approval_auth: signed: give --key")
    wrong = failover(env, "drill", str(runbook), "--from", "us-east-1", "--to", "us-west-2",
                     "--detach", "--key", str(keys["bob"]))  # fmt: skip
    assert wrong.returncode == 2 and (
        f"your key {who['bob'].key.fingerprint} is not listed for alice" in wrong.stderr
    )
    auto = failover(env, "drill", str(runbook), "--from", "us-east-1", "--to", "us-west-2",
                    "--auto-approve", "bob", "--key", str(keys["alice"]))  # fmt: skip
    assert auto.returncode == 2 and "--auto-approve bob: cannot sign for them" in auto.stderr
    started = failover(env, "drill", str(runbook), "--from", "us-east-1", "--to", "us-west-2",
                       "--detach", "-o", "json", "--key", str(keys["alice"]))  # fmt: skip
    assert started.returncode == 0, started.stderr
    wid = json.loads(started.stdout)["workflow_id"]
    try:
        wait_state(env, wid, lambda st: st["open_gates"] == ["first"])

        def approve(*args: str) -> tuple[int, str]:
            ran = failover(env, "approve", wid, *args)
            return ran.returncode, (ran.stderr or ran.stdout).strip()

        code, said = approve("--as", "bob", "--gate", "first", "--key", str(keys["mallory"]))
        assert (code, said) == (2, f"error: refused: unknown key {who['mallory'].key.fingerprint}"
                                   ": it is not an allowed signer of this run")  # fmt: skip
        code, said = approve("--as", "ops-alice", "--key", str(keys["alice"]), "--gate", "first")
        assert (
            code == 2
            and said.startswith(
                "error: refused: ops-alice signed with the key that requested this switch (alice, "
            )
            and said.endswith("the requester cannot approve it (two-person rule)")
        )
        printed = failover(env, "approve", wid, "--as", "bob", "--gate", "second",
                           "--key", str(keys["bob"]), "--print-token")  # fmt: skip
        assert printed.returncode == 0, printed.stderr
        for_second = printed.stdout.strip()
        assert for_second.startswith("failover-sig1:") and "\n" not in for_second
        assert '"signature": "TOKEN"' in printed.stderr
        code, said = approve("--as", "bob", "--gate", "first", "--token", for_second)
        assert (code, said) == (2, "error: refused: signed for gate 'second', not 'first'")
        tampered = Token.parse(for_second).model_copy(update={"gate": "first", "plan": "a" * 64})
        code, said = approve("--as", "bob", "--gate", "first", "--token", tampered.encode())
        assert code == 2 and said.startswith(
            "error: refused: signed for another plan (digest aaaaaaaaaaaa…): this run's plan is"
        )
        printed = failover(env, "approve", wid, "--as", "bob", "--comment", "looks right",
                           "--key", str(keys["bob"]), "--gate", "first", "--print-token")  # fmt: skip
        first = printed.stdout.strip()
        code, said = approve("--as", "bob", "--gate", "first", "--comment", "looks right",
                             "--token", first)  # fmt: skip
        assert (code, said) == (0, "gate first approved: the switch goes on")
        wait_state(env, wid, lambda st: st["open_gates"] == ["second"])
        code, said = approve("--as", "bob", "--gate", "first", "--comment", "looks right",
                             "--token", first)  # fmt: skip
        assert (code, said) == (
            2, "error: refused: replayed: this signed decision was already used in this run"
        )  # fmt: skip
        # no --gate: the run's only open gate
        code, said = approve("--as", "carol", "--key", str(keys["carol"]))
        assert (code, said) == (0, "gate second approved: the switch goes on")
        watched = failover(env, "watch", wid, "-o", "json")
        assert watched.returncode == 0, watched.stderr
        result = json.loads(watched.stdout)
        assert [(a["approver"], a["comment"], a["key"]) for a in result["approvals"]] == [
            ("bob", "looks right", who["bob"].key.fingerprint),
            ("carol", "", who["carol"].key.fingerprint),
        ]
        assert result["requester_key"] == who["alice"].key.fingerprint
    finally:
        failover(env, "abort", wid, "--reason", "test cleanup")


def test_signed_is_the_default_outside_the_sandbox(
    env: SandboxEnv, worker_process: None, who: dict[str, Person], tmp_path: Path
) -> None:
    """A configuration for real infrastructure: the noop drill (no approval_auth) takes signed
    decisions; keys from the configured allowed_signers file; a run by name on the sandbox's
    configuration takes names, as before."""
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(
        "# the team\n"
        f"alice {who['alice'].line}\n"
        f'bob namespaces="git,failover-approval" {who["bob"].line}\n'
    )
    data = from_sandbox(env).model_dump(mode="json", exclude={"notify", "reports", "sandbox",
                                                              "source"})  # fmt: skip
    data["aws"].update(access_key_id="sandbox", secret_access_key="sandbox")
    data["approvals"] = {"key": str(who["alice"].key_file(tmp_path))}
    config = tmp_path / "failover.yaml"
    config.write_text(yaml.safe_dump(data))
    runbook = str(ROOT / "runbooks/noop-drill.yaml")
    no_keys = failover(env, "drill", runbook, "--from", "us-east-1", "--to", "us-west-2",
                       "--detach", "--config", str(config))  # fmt: skip
    assert no_keys.returncode == 2
    assert no_keys.stderr.strip() == (
        "error: approval_auth: signed: gate approve needs 1 signed approval(s) and nobody could "
        "give one: list the approvers' keys in allowed_signers (approvers: alice, bob)"
    )
    data["approvals"]["allowed_signers"] = str(allowed)
    config.write_text(yaml.safe_dump(data))
    started = failover(env, "drill", runbook, "--from", "us-east-1", "--to", "us-west-2",
                       "--detach", "-o", "json", "--config", str(config))  # fmt: skip
    assert started.returncode == 0, started.stderr
    wid = json.loads(started.stdout)["workflow_id"]
    try:
        wait_state(env, wid, lambda st: st["open_gates"] == ["approve"])
        by_name = failover(env, "approve", wid, "--as", "bob", "--config", str(config))
        assert by_name.returncode == 2
        assert "error: approval_auth: signed: give --key" not in by_name.stderr  # config has one
        assert "refused: key " in by_name.stderr and "is not bob's: it is listed for alice" in (
            by_name.stderr
        )  # alice's key from the configuration, sent as bob
        bob_key = who["bob"].key_file(tmp_path)
        ok = failover(env, "approve", wid, "--as", "bob", "--key", str(bob_key), "--config",
                      str(config))  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        assert failover(env, "watch", wid, "--config", str(config)).returncode == 0
    finally:
        failover(env, "abort", wid, "--reason", "test cleanup")
    # the sandbox's own configuration: the same runbook takes names (approval_auth: none)
    started = failover(env, "drill", runbook, "--from", "us-east-1", "--to", "us-west-2",
                       "--detach", "-o", "json")  # fmt: skip
    assert started.returncode == 0, started.stderr
    wid = json.loads(started.stdout)["workflow_id"]
    try:
        wait_state(env, wid, lambda st: st["open_gates"] == ["approve"])
        printed = failover(env, "approve", wid, "--as", "bob", "--print-token")
        assert printed.returncode == 2 and printed.stderr.strip() == (
            f"error: run {wid} takes decisions by name (approval_auth: none): leave out --token "
            "and --print-token"
        )
        keyed = failover(env, "approve", wid, "--as", "bob", "--key", str(bob_key))
        assert keyed.returncode == 0, keyed.stderr
        assert keyed.stderr.splitlines() == [
            f"run {wid} takes decisions by name (approval_auth: none): not signed",
            "gate approve approved: the switch goes on",
        ]
        watched = json.loads(failover(env, "watch", wid, "-o", "json").stdout)
        assert watched["approval_auth"] == "none" and watched["approvals"][0]["key"] == ""
    finally:
        failover(env, "abort", wid, "--reason", "test cleanup")


def test_options_that_do_not_go_together(env: SandboxEnv) -> None:
    both = failover(env, "approve", "switch-x", "--token", "t", "--print-token")
    assert both.returncode == 2
    assert both.stderr.strip() == (
        "error: --token and --print-token: give one (a token to send, or one to make)"
    )
    evacuation = failover(env, "approve", "evacuation-x", "--print-token")
    assert evacuation.returncode == 2 and evacuation.stderr.strip() == (
        "error: an evacuation's gates take names, not signatures: leave out --key, --token and "
        "--print-token"
    )


def test_bad_allowed_signers_file_is_one_line(env: SandboxEnv, tmp_path: Path) -> None:
    data = from_sandbox(env).model_dump(mode="json", exclude={"notify", "reports", "sandbox",
                                                              "source"})  # fmt: skip
    data["aws"].update(access_key_id="sandbox", secret_access_key="sandbox")
    allowed = tmp_path / "people"
    allowed.write_text("# x\nbob ssh-rsa AAAAB3NzaC1yc2E\n")
    data["approvals"] = {"allowed_signers": str(allowed)}
    config = tmp_path / "failover.yaml"
    config.write_text(yaml.safe_dump(data))
    ran = failover(env, "drill", str(ROOT / "runbooks/noop-drill.yaml"), "--from", "us-east-1",
                   "--to", "us-west-2", "--detach", "--config", str(config))  # fmt: skip
    assert ran.returncode == 2
    assert ran.stderr.strip() == (
        f"error: approvals.allowed_signers: {allowed}:2: ssh-rsa keys are not supported: use an "
        "ed25519 key (ssh-keygen -t ed25519)"
    )


def test_token_is_base64_json(who: dict[str, Person]) -> None:
    text = token(replace(CTX, plan="ab" * 32), who["bob"], "first", comment="ok")
    data = json.loads(base64.urlsafe_b64decode(text.removeprefix("failover-sig1:")))
    assert {k: data[k] for k in ("gate", "action", "approver", "comment", "plan")} == {
        "gate": "first", "action": "approve", "approver": "bob", "comment": "ok",
        "plan": "ab" * 32,
    }  # fmt: skip
