"""Game days in tests: the shop runbook's game day made faster, and what the sandbox's faults are."""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator.gameday.models import GameDayInput, GameDayProgress, Phase
from orchestrator.gameday.resolve import resolve_gameday
from orchestrator.runbook.loader import load_text
from orchestrator.runs import RunProgress
from orchestrator.sandbox.manager import SandboxEnv, http_json
from tests.workflows.helpers import RUNBOOKS

# Probe every second, settle for 2 s, trip after 2 s: the same game day, in half the time.
FAST = {
    "probe_interval: 2s": "probe_interval: 1s",
    "settle: 6s": "settle: 2s",
    "for: 4s": "for: 2s",
    # The tests are not about latency: a busy 2-core machine answers slower than 500 ms at p95.
    "max_latency_ms: 500": "max_latency_ms: 3000",
}


def shop_gameday(
    name: str, frm: str = "us-east-1", to: str = "us-west-2", **edits: str
) -> GameDayInput:
    text = (RUNBOOKS / "shop-region-switch.yaml").read_text()
    for old, new in FAST.items():  # both game days of the runbook
        assert old in text, old
        text = text.replace(old, new)
    for old, new in edits.items():  # the first occurrence: the `gameday:` section's
        assert old in text, old
        text = text.replace(old, new, 1)
    return resolve_gameday(load_text(text), name, frm, to, requester="alice")


def app_faults(env: SandboxEnv) -> dict[str, Any]:
    """Each region's injected faults, read from the sandbox itself."""
    out = {}
    for region in env.regions:
        base = f"{env.control_url(region)}/_sandbox"
        health = http_json(f"{base}/region")
        app = http_json(f"{base}/app")
        out[region] = (health["healthy"], app["error_rate"], app["latency_ms"])
    return out


async def progress_until(handle: Any, pred: Any, timeout: float = 60.0) -> GameDayProgress:
    """Poll a game day's progress until pred holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        p: GameDayProgress = await handle.query("progress", result_type=GameDayProgress)
        if pred(p):
            return p
        if p.phase == Phase.DONE:  # it will not get there: say why it ended
            raise AssertionError(f"ended {p.outcome.value}: {p.reason} {p.preflight}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached after {timeout}s: {p.phase} {p.fault.state}")
        await asyncio.sleep(0.1)


async def approve_game_day(handle: Any, *approvers: str) -> GameDayProgress:
    """Approve a game day waiting for its approval, as each of `approvers` in turn."""
    from orchestrator.runs import Decision

    await progress_until(handle, lambda p: p.phase == Phase.WAITING_APPROVAL)
    for who in approvers:
        await handle.execute_update("approve", Decision(approver=who, comment="game day"))
    return await progress_until(handle, lambda p: p.phase != Phase.WAITING_APPROVAL)


async def child_until(
    client: Any, wid: str, run_id: str | None, pred: Any, timeout: float = 60.0
) -> RunProgress:
    """Poll a child switch's progress until pred holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            p: RunProgress = await client.get_workflow_handle(wid, run_id=run_id).query(
                "progress", result_type=RunProgress
            )
            if pred(p):
                return p
        except Exception:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"child {wid} did not get there within {timeout}s")
        await asyncio.sleep(0.1)
