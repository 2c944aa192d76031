"""Commands that need a worker say at once, in one line, when none polls the run's task queue
(exit 5), instead of waiting for a query or an Update to time out; an ended run needs none; a
run whose worker polls but does not answer in time is named, never "Timeout expired"."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from temporalio.service import RPCError

from orchestrator import switch
from orchestrator.cli.temporal import answered
from orchestrator.client import connect
from orchestrator.gameday import client as gameday_client
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.gameday.helpers import shop_gameday
from tests.workflows.helpers import plan, sandbox_config


@dataclass
class Unpolled:
    """A switch and a game day started on a task queue no worker polls."""

    queue: str
    switch_id: str
    gameday_id: str


@pytest.fixture
def unpolled(env: SandboxEnv) -> Iterator[Unpolled]:
    """Started on `nobody-...`; both terminated at the end (they would wait for ever)."""
    queue = f"nobody-{uuid.uuid4().hex[:6]}"

    async def start() -> Unpolled:
        client = await connect(sandbox_config(env).temporal)
        h = await switch.start(client, plan("maintenance-drill.yaml"), queue,
                               workflow_id_override=f"test-unpolled-{uuid.uuid4().hex[:6]}")  # fmt: skip
        g = await gameday_client.start_now(client, shop_gameday(f"gd-{uuid.uuid4().hex[:6]}"),
                                           queue, "unpolled")  # fmt: skip
        return Unpolled(queue, h.id, g.id)

    async def terminate(*wids: str) -> None:
        client = await connect(sandbox_config(env).temporal)
        for wid in wids:
            with contextlib.suppress(RPCError):  # ended already
                await client.get_workflow_handle(wid).terminate("test cleanup")

    started = asyncio.run(start())
    yield started
    asyncio.run(terminate(started.switch_id, started.gameday_id))


def _said_at_once(env: SandboxEnv, u: Unpolled, *args: str) -> str:
    t0 = time.monotonic()
    r = failover(env, *args)
    took = time.monotonic() - t0
    assert r.returncode == 5, (args, r.stdout, r.stderr)
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, (args, r.stderr)
    assert f"no worker polls its task queue '{u.queue}'" in line, (args, line)
    assert "'failover worker'" in line and "'failover sandbox up'" in line, line
    # Said after the poller check (2.5 s at most, plus the command's own start on a loaded
    # machine), never after waiting for a worker: an Update or `watch` would wait for ever.
    assert took < 15, (args, took)
    return line


@pytest.mark.slow
def test_switch_commands_say_at_once_that_no_worker_polls(
    env: SandboxEnv, unpolled: Unpolled
) -> None:
    wid = unpolled.switch_id
    for args in (
        ("status", wid),
        ("approve", wid, "--as", "bob", "--gate", "approve"),
        ("reject", wid, "--as", "bob", "--reason", "no"),
        ("abort", wid, "--reason", "no"),
        ("resolve", wid, "--action", "retry"),
        ("report", wid),
        ("watch", wid),  # the sandbox's hosted worker polls its own queue, not this one
        ("watch", wid, "-o", "json"),
    ):
        line = _said_at_once(env, unpolled, *args)
        assert f"run {wid} is running" in line
    listed = failover(env, "list", "--state", "WAITING_APPROVAL", "--runbook",
                      "maintenance-drill", "-o", "json")  # fmt: skip
    assert listed.returncode == 0, listed.stderr  # the run's state is unknown: left out, said
    assert wid not in listed.stdout and f"left out: run {wid} is running" in listed.stderr


def test_game_day_commands_say_at_once_that_no_worker_polls(
    env: SandboxEnv, unpolled: Unpolled
) -> None:
    gid = unpolled.gameday_id
    for args in (
        ("gameday", "status", gid),
        ("gameday", "approve", gid, "--as", "bob"),
        ("gameday", "reject", gid, "--as", "bob"),
        ("gameday", "report", gid),
    ):
        line = _said_at_once(env, unpolled, *args)
        assert f"game day {gid} is running" in line


def test_an_ended_run_is_read_without_a_worker(env: SandboxEnv, unpolled: Unpolled) -> None:
    async def end() -> None:
        client = await connect(sandbox_config(env).temporal)
        await client.get_workflow_handle(unpolled.switch_id).terminate("ended for the test")

    asyncio.run(end())
    r = failover(env, "status", unpolled.switch_id)  # no worker asked: its outcome answers
    assert r.returncode == 2 and "ended as TERMINATED" in r.stderr, r.stderr
    assert "no worker" not in r.stderr


@dataclass
class _Run:
    id: str


def test_a_run_that_does_not_answer_in_time_is_named() -> None:
    async def never() -> str:
        await asyncio.sleep(60)
        return "late"

    async def ask() -> str:
        return await answered(cast(Any, _Run("switch-shop")), never(), "failover-q", timeout=0.2)

    t0 = time.monotonic()
    with pytest.raises(switch.NoAnswerError) as caught:
        asyncio.run(ask())
    assert time.monotonic() - t0 < 2
    message = str(caught.value)
    assert message.startswith("run switch-shop did not answer: no answer within 0.2s")
    assert "task queue 'failover-q'" in message and "\n" not in message
    assert "Timeout expired" not in message
