"""Record workflow histories as replay fixtures (tests/workflows/histories/*.json).

    failover sandbox up && python -m tests.workflows.record_histories [--home .failover/sandbox]
    failover sandbox up && python -m tests.workflows.record_histories --gameday
    failover sandbox up && python -m tests.workflows.record_histories --disaster
    failover sandbox up && python -m tests.workflows.record_histories --guard
    failover sandbox up && python -m tests.workflows.record_histories --signed --version v5
    failover sandbox up && python -m tests.workflows.record_histories --evacuation
    failover sandbox up && python -m tests.workflows.record_histories --wide --version v2

Run it when a workflow change is *meant* to start a new history version; the old fixtures stay
(they prove old histories still replay). Each scenario resets the sandbox first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from orchestrator import switch
from orchestrator.runs import Decision, OperatorAction, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import DEFAULT_HOME, Sandbox
from tests.workflows.helpers import RUNBOOKS, drive, plan, sandbox_config, start, wait_for, worker

HISTORIES = Path(__file__).parent / "histories"
Scenario = Callable[[switch.Handle, SandboxControl], Awaitable[None]]


async def succeeded(h: switch.Handle, control: SandboxControl) -> None:
    await drive(h)


async def rolled_back(h: switch.Handle, control: SandboxControl) -> None:
    await drive(h)


async def rollback_failed_then_retried(h: switch.Handle, control: SandboxControl) -> None:
    await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
    control.add_fault(
        FaultRule(target="k8s:us-east-1:patch:configmaps", error="AccessDenied", count=None)
    )
    await switch.reject(h, Decision(approver="bob", comment="no"))
    await wait_for(h, lambda p: p.state == RunState.ROLLBACK_FAILED)
    control.clear_faults()
    await switch.operator(h, OperatorAction(action="retry", by="carol"))
    await h.result()


async def paused_then_skipped(h: switch.Handle, control: SandboxControl) -> None:
    await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
    await switch.approve(h, Decision(approver="bob"))
    await wait_for(h, lambda p: p.state == RunState.PAUSED)
    await switch.operator(h, OperatorAction(action="skip", by="carol", reason="known issue"))
    await h.result()


async def cancelled(h: switch.Handle, control: SandboxControl) -> None:
    await wait_for(h, lambda p: p.state == RunState.WAITING_APPROVAL)
    await h.cancel()
    await h.result()


PAUSE_TEXT = (
    (RUNBOOKS / "maintenance-drill.yaml")
    .read_text()
    .replace(
        'region: "${{ to_region }}"}\n    timeout: 30s\n  - id: settle',
        'region: "${{ to_region }}"}\n    timeout: 30s\n    on_failure: pause\n  - id: settle',
    )
)
SSM_WEST = FaultRule(target="aws:ssm:PutParameter", region="us-west-2", error="AccessDenied")

SCENARIOS: dict[str, tuple[Scenario, dict[str, object], FaultRule | None]] = {
    "succeeded": (succeeded, {}, None),
    "rolled-back": (rolled_back, {}, SSM_WEST),
    "rollback-failed-then-retried": (rollback_failed_then_retried, {}, None),
    "paused-then-skipped": (paused_then_skipped, {"text": PAUSE_TEXT}, SSM_WEST),
    "cancelled": (cancelled, {}, None),
    "dry-run": (succeeded, {"mode": "dry-run"}, None),
}


async def record(home: Path, version: str) -> None:
    box = Sandbox(home)
    HISTORIES.mkdir(exist_ok=True)
    for name, (scenario, options, fault) in SCENARIOS.items():
        env = box.reset()
        control = SandboxControl(env)
        if fault is not None:
            control.add_fault(fault)
        async with worker(sandbox_config(env)) as (client, queue):
            h = await start(client, queue, plan("maintenance-drill.yaml", **options))  # type: ignore[arg-type]
            try:
                await scenario(h, control)
            finally:
                with contextlib.suppress(Exception):
                    control.clear_faults()
            history = await h.fetch_history()
        out = HISTORIES / f"{version}-{name}.json"
        out.write_text(history.to_json())
        print(f"{out}: {len(history.events)} events")


async def record_gamedays(home: Path, version: str) -> None:
    """GameDay histories (succeeded, stopped mid-switch), and the stopped child switch's."""
    from orchestrator.gameday import client as gameday_client
    from orchestrator.gameday.models import Phase
    from tests.gameday.helpers import progress_until, shop_gameday

    box = Sandbox(home)
    for name in ("succeeded", "stopped", "stuck"):
        env = box.reset()
        control = SandboxControl(env)
        async with worker(sandbox_config(env)) as (client, queue):
            h = await gameday_client.start_now(client, shop_gameday(f"rec-{name}"), queue, version)
            if name == "stopped":
                await progress_until(h, lambda p: p.phase == Phase.SWITCHING)
                control.set_app_fault("us-west-2", 0.6, 0.0)
            if name == "stuck":
                await _stuck_then_retried(client, h, control)
            p = await h.result()
            control.set_app_fault("us-west-2", 0.0, 0.0)
            histories = {f"gameday-{version}-{name}": await h.fetch_history()}
            if p.switch is not None and (name, version) in (
                ("stopped", "v1"),
                ("stuck", "v3"),
            ):
                child = client.get_workflow_handle(p.switch.workflow_id, run_id=p.switch.run_id)
                histories[f"{version}-gameday-switch-{name}"] = await child.fetch_history()
        for stem, history in histories.items():
            out = HISTORIES / f"{stem}.json"
            out.write_text(history.to_json())
            print(f"{out}: {len(history.events)} events")


async def _stuck_then_retried(client: Any, h: Any, control: SandboxControl) -> None:
    """The game day's switch fails, one of its undos is refused (ROLLBACK_FAILED), the game day
    removes its fault, then the operator retries once the refusal is lifted."""
    from orchestrator.gameday.models import GameDayProgress
    from tests.gameday.helpers import child_until, progress_until

    p: GameDayProgress = await progress_until(h, lambda p: p.switch is not None)
    assert p.switch is not None
    wid, rid = p.switch.workflow_id, p.switch.run_id
    await child_until(
        client, wid, rid, lambda c: c.step("aurora-switchover").state.value == "SUCCEEDED"
    )
    control.add_fault(FaultRule(target="aws:elbv2:ModifyListener", region="us-west-2",
                                error="AccessDenied", count=None))  # fmt: skip
    control.add_fault(FaultRule(target="k8s:us-east-1:patch:configmaps", error="AccessDenied",
                                count=None))  # fmt: skip
    await progress_until(h, lambda p: p.fault.state == "removed")
    control.clear_faults()
    await switch.operator(
        switch.handle(client, wid, rid), OperatorAction(action="retry", by="carol")
    )


async def record_disaster(home: Path, version: str) -> None:
    """The disaster game day (the source region down): its history, and its children's: the
    unplanned switch, the recovery of the region, the planned failback."""
    from orchestrator.gameday import client as gameday_client
    from tests.gameday.helpers import approve_game_day, shop_gameday

    env = Sandbox(home).reset()
    async with worker(sandbox_config(env)) as (client, queue):
        inp = shop_gameday("disaster")
        h = await gameday_client.start_now(client, inp, queue, version)
        if inp.approval is not None:  # (recorded before game days said who approves them)
            await approve_game_day(h, "bob")
        p = await h.result()
        histories = {f"gameday-{version}-disaster": await h.fetch_history()}
        for kind, child in (("unplanned", p.switch), ("recovery", p.recovery),
                            ("failback", p.failback)):  # fmt: skip
            if child is not None:
                c = client.get_workflow_handle(child.workflow_id, run_id=child.run_id)
                histories[f"{version}-disaster-{kind}"] = await c.fetch_history()
    for stem, history in histories.items():
        out = HISTORIES / f"{stem}.json"
        out.write_text(history.to_json())
        print(f"{out}: {len(history.events)} events")


async def record_guard(home: Path, version: str) -> None:
    """A guard (evaluating every 0.3 s) that confirms an outage of us-east-1, starts the
    unplanned switch, sees it approved and succeed, cools down, is stopped."""
    from orchestrator.guard import client as guard_client
    from orchestrator.guard.models import GuardStatus
    from tests.guard.test_guard import _guard, _until

    env = Sandbox(home).reset()
    control = SandboxControl(env)
    async with worker(sandbox_config(env)) as (client, queue):
        await guard_client.start(client, _guard("shop-guarded"), queue)
        await _until(client, "shop-guarded", lambda s: s.evaluations >= 3)
        control.set_outage("us-east-1", "app")
        state = await _until(client, "shop-guarded", lambda s: s.status == GuardStatus.SWITCHING)
        assert state.episode is not None and state.episode.switch is not None
        sw = state.episode.switch
        await drive(switch.handle(client, sw.workflow_id, sw.run_id))
        await _until(client, "shop-guarded", lambda s: s.status == GuardStatus.COOLDOWN)
        control.set_outage("us-east-1", None)
        await guard_client.stop(client, "shop-guarded", "recorder", "done")
        h = guard_client.handle(client, "shop-guarded")
        await h.result()
        history = await h.fetch_history()
    out = HISTORIES / f"guard-{version}-switched.json"
    out.write_text(history.to_json())
    print(f"{out}: {len(history.events)} events")


async def record_signed(home: Path, version: str) -> None:
    """approval_auth: signed: a run whose two gates are approved by signed decisions (refused
    ones leave nothing in the history), a signed rejection, and a run whose requester is not
    proven (it does nothing)."""
    from orchestrator.approval_auth import RunContext, plan_digest
    from tests.signed import people, signed_plan, token

    who = people()
    env = Sandbox(home).reset()
    histories = {}
    async with worker(sandbox_config(env)) as (client, queue):
        for name in ("approved", "rejected", "unproven"):
            inp = signed_plan(who, signed_by="mallory" if name == "unproven" else "alice")
            h = await start(client, queue, inp)
            if name != "unproven":
                started, first_run = await switch.started_with(h)
                ctx = RunContext(h.id, first_run, plan_digest(started))
                await wait_for(h, lambda p: p.open_gates == ["first"])
                with contextlib.suppress(switch.RefusedError):  # refused: not in the history
                    await switch.approve(h, Decision(approver="ops-alice", gate="first",
                                                     signature=token(ctx, who["alice"], "first",
                                                                     approver="ops-alice")))  # fmt: skip
                await switch.approve(h, Decision(approver="bob", gate="first", comment="ok",
                                                 signature=token(ctx, who["bob"], "first",
                                                                 comment="ok")))  # fmt: skip
                await wait_for(h, lambda p: p.open_gates == ["second"])
                action = "approve" if name == "approved" else "reject"
                vote = Decision(approver="carol", gate="second", comment=name,
                                signature=token(ctx, who["carol"], "second", action, name))  # fmt: skip
                await (switch.approve if name == "approved" else switch.reject)(h, vote)
            await h.result()
            histories[f"{version}-signed-{name}"] = await h.fetch_history()
    for stem, history in histories.items():
        out = HISTORIES / f"{stem}.json"
        out.write_text(history.to_json())
        print(f"{out}: {len(history.events)} events")


async def record_evacuation(home: Path, version: str) -> None:
    """An evacuation of two services (the second depends on the first and has a gate of its
    own) behind the evacuation's gate, approved by bob: each service's switch is a child. From
    v2, a third service and one place at a time, with expected durations: the third, expected
    longest, starts first (`rules.start_order`). From v3, two lease keys a search attribute
    (not 127): the evacuation holds two of its six, starts two lease shards for the rest and waits
    for word that they are listed (its shard ids carry its run id). From v4, the evacuation's own
    notices (started, its gate, its result). Each version also records alpha's and beta's
    switches."""
    from orchestrator import lease_shards
    from orchestrator.evacuation import client as evacuation
    from tests.evacuation.helpers import drive as drive_evacuation
    from tests.evacuation.helpers import resolved, seed_flags, service_runbook, write_plan

    env = Sandbox(home).reset()
    estimated = int(version.lstrip("v")) >= 2
    names = ["alpha", "beta", "gamma"] if estimated else ["alpha", "beta"]
    seed_flags(env, names)
    folder = Path(tempfile.mkdtemp())
    services = [{"name": "alpha", "runbook": "alpha"},
                {"name": "beta", "runbook": "beta", "depends_on": ["alpha"]}]  # fmt: skip
    top = {"max_parallel": 1} if estimated else {}
    # From v4 beta's own gate is carol's, not bob's: it waits for her (a quiet switch that told
    # people of its gate, then of its success)
    carol = int(version.lstrip("v")) >= 4
    path = write_plan(folder, services + [{"name": "gamma", "runbook": "gamma"}][:len(names) - 2],
                      {n: service_runbook(n, gate=n == "beta",
                                          approvers=["carol"] if carol and n == "beta" else None)
                       for n in names}, name="replay-evac",
                      approval={"scope": "evacuation", "approvers": ["bob"]}, **top)  # fmt: skip
    if int(version.lstrip("v")) >= 3:
        lease_shards.MAX_KEYS = 2  # (this process only: the client splits the keys)
    inp = resolved(path)
    if estimated:
        took = {"alpha": 10.0, "beta": 5.0, "gamma": 50.0}
        inp = inp.model_copy(update={"services": [
            s.model_copy(update={"expected_s": took[s.name]}) for s in inp.services]})  # fmt: skip
    stem = f"evacuation-{version}-succeeded"  # the replay test replays it under this id
    async with worker(sandbox_config(env)) as (client, queue):
        h = await evacuation.start(client, inp, queue, workflow_id_override=stem)
        await drive_evacuation(client, h, approver="bob", services={"beta": "carol"})
        history = await h.fetch_history()
        # and its services' switches (children: their FailoverEvacuation search attribute is
        # set; from v4 they tell only what needs people: beta's gate, then its success)
        children = {n: await client.get_workflow_handle(f"{stem}.{n}").fetch_history()
                    for n in ("alpha", "beta")}  # fmt: skip
    for name, events in {stem: history, **{
            f"evacuation-{version}-switch-{n}": c for n, c in children.items()}}.items():  # fmt: skip
        out = HISTORIES / f"{name}.json"
        out.write_text(events.to_json())
        print(f"{out}: {len(events.events)} events")


#: A runbook of WIDE noop steps, all ready at once: more than one batch of starts
#: (`workflows.region_switch.START_BATCH`), and (from v3) more than IN_FLIGHT: each step takes a
#: second, so the first batches are still running when the bound is reached.
WIDE = 60


async def record_wide(home: Path, version: str) -> None:
    """A run of WIDE independent steps (max_parallel WIDE)."""
    slow = ", params: {duration: 1s}" if int(version.lstrip("v")) >= 3 else ""
    steps = "".join(f"  - {{id: s{i}, type: noop{slow}}}\n" for i in range(WIDE))
    text = ("apiVersion: failover.dev/v1\nkind: Runbook\nname: wide\n"
            f"regions: [us-east-1, us-west-2]\nmax_parallel: {WIDE}\nsteps:\n{steps}")  # fmt: skip
    env = Sandbox(home).reset()
    async with worker(sandbox_config(env)) as (client, queue):
        h = await start(client, queue, plan("", text=text))
        await h.result()
        history = await h.fetch_history()
    out = HISTORIES / f"wide-{version}-succeeded.json"
    out.write_text(history.to_json())
    print(f"{out}: {len(history.events)} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--version", default="v1", help="prefix of the fixture files")
    parser.add_argument("--gameday", action="store_true", help="record game-day histories only")
    parser.add_argument("--disaster", action="store_true", help="record the disaster game day's")
    parser.add_argument("--guard", action="store_true", help="record a guard's")
    parser.add_argument("--signed", action="store_true", help="record signed approvals'")
    parser.add_argument("--evacuation", action="store_true", help="record an evacuation's")
    parser.add_argument("--wide", action="store_true", help="record a run of many ready steps'")
    args = parser.parse_args()
    recorder = (
        record_wide if args.wide
        else record_evacuation if args.evacuation
        else record_signed if args.signed
        else record_guard if args.guard
        else record_disaster if args.disaster
        else record_gamedays if args.gameday
        else record
    )  # fmt: skip
    asyncio.run(recorder(args.home, args.version))


if __name__ == "__main__":
    main()
