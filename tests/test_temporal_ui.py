"""Approving a switch from the Temporal Web UI, in a real headless browser (Debian's chromium,
driven by Playwright; nothing downloaded): the open gate is shown, a self-approval is refused
with the validator's message, a second person's approval lets the run proceed. Screenshots are
saved under test-artifacts/ (FAILOVER_TEST_ARTIFACTS)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Frame, Page, sync_playwright

from orchestrator.sandbox.manager import SandboxEnv
from tests.conftest import ARTIFACTS
from tests.workflows.helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def failover(env: SandboxEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
        timeout=120, cwd=ROOT,
        env=dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, FAILOVER_USER="alice",
                 PYTHONPATH=str(ROOT)),
    )  # fmt: skip


def _open_gates(env: SandboxEnv, wid: str) -> list[str]:
    return list(json.loads(failover(env, "status", wid, "-o", "json").stdout)["open_gates"])


def _status(env: SandboxEnv) -> dict[str, Any]:
    """The drill's status, asked in this process (polled: an interpreter per poll costs more CPU
    than the rest of the test); only outside the browser's block (that runs an event loop)."""
    from tests.cli import failover as in_process

    asked = in_process(env, "status", "noop-drill", "-o", "json")  # exit 5 until the worker polls
    return dict(json.loads(asked.stdout)) if asked.returncode == 0 else {"state": "STARTING"}


def wait_for_text(page: Page, needles: list[str], timeout: float = 30.0) -> None:
    """Wait until one frame of the page shows all the needles."""
    deadline = time.monotonic() + timeout
    while not any(_shows(f, needles) for f in page.frames):
        assert time.monotonic() < deadline, f"not shown: {needles}"
        page.wait_for_timeout(250)


def _shows(frame: Frame, needles: list[str]) -> bool:
    try:
        content = frame.content()
    except PlaywrightError:  # detached as the UI renders the details again: read at the next poll
        return False
    return all(n in content for n in needles)


class UpdateDialog:
    """The UI's 'Send an Update' dialog, opened once for a handler; each `send` types a payload
    and submits it, then waits for the outcome: the dialog closes (accepted) or shows the
    expected refusal (it stays open for the next payload)."""

    def __init__(self, page: Page, name: str) -> None:
        self.page = page
        page.get_by_role("button", name="More Actions").click()
        page.get_by_role("menuitem", name="Send an Update").click()
        self.dialog = page.get_by_role("dialog")
        self.dialog.get_by_role("button", name="Select an Update").click()
        page.get_by_role("option").filter(has_text=f"{name}\n").first.click()

    def send(self, payload: dict[str, str], shot: Path, refused: str | None = None) -> str:
        """Submit `payload`; returns the dialog's text once it shows `refused`, or '' once it
        has closed (the Update was accepted). Whatever it shows after 30 s is returned."""
        editor = self.dialog.get_by_role("textbox", name="Data")  # (a refusal adds a trace box)
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(json.dumps(payload))  # as pasted (typing takes ~20 s)
        # UI 2.54 sends nothing without an Update ID, although the field says optional.
        self.dialog.get_by_role("button", name="Random UUID").click()
        self.dialog.get_by_role("button", name="Submit").click()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            said = self._text()
            if not said or (refused is not None and refused in said):
                break
            self.page.wait_for_timeout(100)
        self.page.screenshot(path=str(shot))
        return self._text()

    def _text(self) -> str:
        """What the dialog shows now; '' once it has closed (never waiting for it, as
        `inner_text` would if it closed between two looks)."""
        if not self.dialog.is_visible():
            return ""
        return "\n".join(self.dialog.all_inner_texts())


@pytest.mark.slow
def test_approve_from_the_temporal_web_ui(env: SandboxEnv, worker_process: None) -> None:
    assert Path(CHROMIUM).exists(), "install Debian's chromium (python3 dev.py test does)"
    started = failover(env, "drill", str(ROOT / "runbooks/noop-drill.yaml"), "--from",
                       "us-east-1", "--to", "us-west-2", "--detach", "-o", "json")  # fmt: skip
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    try:
        deadline = time.monotonic() + 60
        while _status(env)["state"] != "WAITING_APPROVAL":
            assert time.monotonic() < deadline, "the gate did not open"
            time.sleep(0.3)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        url = f"{env.temporal_ui_url}/namespaces/default/workflows/{run['workflow_id']}/{run['run_id']}/history"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            page.get_by_text("User Metadata").first.click()  # summary and current details
            page.get_by_text("Current Details").first.wait_for()
            # The details are Markdown, rendered in a sandboxed iframe: the open gate, the
            # Update to send and its JSON payload.
            wait_for_text(page, ["Gate", "is open", "Send Update", "YOUR-NAME"])
            page.screenshot(path=str(ARTIFACTS / "ui-open-gate.png"), full_page=True)
            dialog = UpdateDialog(page, "approve")
            self_approval = "alice requested this switch and cannot approve it (two-person rule)"
            refused = dialog.send({"approver": "alice", "comment": "mine"},
                                  ARTIFACTS / "ui-self-approval-refused.png", self_approval)  # fmt: skip
            assert self_approval in refused
            accepted = dialog.send({"approver": "bob", "comment": "approved from the Temporal UI"},
                                   ARTIFACTS / "ui-approved.png")  # fmt: skip
            assert accepted == ""
            browser.close()
        watched = failover(env, "watch", run["workflow_id"], "-o", "json")
        assert watched.returncode == 0, watched.stderr
        result = json.loads(watched.stdout)
        assert [(a["approver"], a["comment"]) for a in result["approvals"]] == [
            ("bob", "approved from the Temporal UI")
        ]
    finally:
        failover(env, "abort", run["workflow_id"], "--reason", "test cleanup")


@pytest.mark.slow
def test_signed_approval_from_the_temporal_web_ui(
    env: SandboxEnv, worker_process: None, tmp_path: Path
) -> None:
    """approval_auth: signed: the UI's Update dialog takes the token `failover approve
    --print-token` prints, as "signature"; an unknown key, a tampered plan digest, another gate's
    token, a self-approval by key and a replay are refused with the reason in the dialog."""
    from orchestrator.approval_auth import Token
    from tests.cli import failover as in_process
    from tests.signed import people, runbook_text

    who = people()
    keys = {n: who[n].key_file(tmp_path) for n in ("alice", "bob", "carol", "mallory")}
    runbook = tmp_path / "signed-drill.yaml"
    runbook.write_text(runbook_text(who))
    started = in_process(env, "drill", str(runbook), "--from", "us-east-1", "--to", "us-west-2",
                         "--detach", "-o", "json", "--key", str(keys["alice"]))  # fmt: skip
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout)
    wid = run["workflow_id"]

    def status() -> dict[str, Any]:
        asked = in_process(env, "status", wid, "-o", "json")  # exit 5 until the worker polls
        return dict(json.loads(asked.stdout)) if asked.returncode == 0 else {"open_gates": []}

    def wait_gate(gate: str) -> None:
        deadline = time.monotonic() + 60
        while status()["open_gates"] != [gate]:
            assert time.monotonic() < deadline, f"gate {gate} did not open"
            time.sleep(0.3)

    def token(who_: str, key: str, gate: str, comment: str = "") -> str:
        printed = in_process(env, "approve", wid, "--as", who_, "--gate", gate, "--key",
                             str(keys[key]), "--comment", comment, "--print-token")  # fmt: skip
        assert printed.returncode == 0, printed.stderr
        return printed.stdout.strip()

    try:
        wait_gate("first")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        url = f"{env.temporal_ui_url}/namespaces/default/workflows/{wid}/{run['run_id']}/history"
        good = token("bob", "bob", "first", "checked the plan")
        tampered = Token.parse(good).model_copy(update={"plan": "0" * 64}).encode()
        refusals = [
            ({"approver": "bob", "gate": "first", "signature": token("bob", "mallory", "first")},
             f"unknown key {who['mallory'].key.fingerprint}: it is not an allowed signer"),
            ({"approver": "bob", "gate": "first", "comment": "checked the plan",
              "signature": tampered},
             "signed for another plan (digest 000000000000…): this run's plan is"),
            ({"approver": "bob", "gate": "first", "signature": token("bob", "bob", "second")},
             "signed for gate 'second', not 'first'"),
            ({"approver": "ops-alice", "gate": "first",
              "signature": token("ops-alice", "alice", "first")},
             "ops-alice signed with the key that requested this switch (alice, "),
            ({"approver": "bob", "gate": "first"},
             "this run takes signed decisions only (approval_auth: signed)"),
        ]  # fmt: skip
        carols = {"approver": "carol", "gate": "second",
                  "signature": token("carol", "carol", "second")}  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, wait_until="load")
            page.get_by_text("User Metadata").first.click()
            page.get_by_text("Current Details").first.wait_for()
            wait_for_text(page, ["Gate", "is open", "Decisions are signed", "--print-token",
                                 f"failover approve {wid} --gate first"])  # fmt: skip
            page.screenshot(path=str(ARTIFACTS / "ui-signed-open-gate.png"), full_page=True)
            dialog = UpdateDialog(page, "approve")
            for i, (payload, reason) in enumerate(refusals):
                said = dialog.send(payload, ARTIFACTS / f"ui-signed-refused-{i}.png", reason)
                assert reason in said, said
            accepted = {"approver": "bob", "gate": "first", "comment": "checked the plan",
                        "signature": good}  # fmt: skip
            said = dialog.send(accepted, ARTIFACTS / "ui-signed-approved.png")
            assert said == "", said
            deadline = time.monotonic() + 60  # (no asyncio in here: the real entry point)
            while _open_gates(env, wid) != ["second"]:
                assert time.monotonic() < deadline, "gate second did not open"
            replayed = "replayed: this signed decision was already used in this run"
            dialog = UpdateDialog(page, "approve")
            said = dialog.send({**accepted, "gate": "second"},
                               ARTIFACTS / "ui-signed-replay-refused.png", replayed)  # fmt: skip
            assert replayed in said, said
            said = dialog.send(carols, ARTIFACTS / "ui-signed-second.png")
            assert said == "", said
            browser.close()
        watched = in_process(env, "watch", wid, "-o", "json")
        assert watched.returncode == 0, watched.stderr
        result = json.loads(watched.stdout)
        assert [(a["gate"], a["approver"], a["key"]) for a in result["approvals"]] == [
            ("first", "bob", who["bob"].key.fingerprint),
            ("second", "carol", who["carol"].key.fingerprint),
        ]
    finally:
        in_process(env, "abort", wid, "--reason", "test cleanup")
