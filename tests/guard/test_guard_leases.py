"""The guard's switch holds leases, as a switch started by hand does: while it runs, a drill of the
same runbook and an evacuation of a plan holding the runbook are refused with its details; and a
guard that confirms an outage while another run holds what its switch would write does not switch
and says why. On the sandbox, with a worker in this process and real outages (`region down`).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import yaml

from orchestrator import leases, switch
from orchestrator import search_attributes as sa
from orchestrator.evacuation import client as evacuation
from orchestrator.evacuation.loader import load_file
from orchestrator.evacuation.resolve import resolve_evacuation
from orchestrator.guard import client as guard_client
from orchestrator.guard.models import GuardInput, GuardState, GuardStatus
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import Decision, RunState
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv
from tests.guard.test_guard import FAST, _stop, _switch_started, _switches, _until
from tests.workflows.helpers import RUNBOOKS, run, sandbox_config, wait_for, worker


def _runbook(name: str) -> str:
    """The shop runbook (its guard evaluating every 0.3 s) under a name of this test's own."""
    text = (RUNBOOKS / "shop-region-switch.yaml").read_text()
    for old, new in {**FAST, "name: shop-region-switch": f"name: {name}"}.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def _guard(text: str) -> GuardInput:
    from orchestrator.guard.resolve import resolve_guard

    return resolve_guard(load_text(text), "us-east-1", requester="guard-owner")


def _plan(folder: Path, text: str, name: str) -> Path:
    """An evacuation plan of one service: the runbook."""
    (folder / "shop.yaml").write_text(text)
    plan = {"apiVersion": "failover.dev/v1", "kind": "Evacuation", "name": name,
            "services": [{"name": "shop", "runbook": "shop.yaml"}]}  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


async def _refusal(coro: object) -> str:
    try:
        await coro  # type: ignore[misc]
    except leases.LeaseConflictError as exc:
        return str(exc)
    raise AssertionError("not refused")


def test_a_guard_started_switch_holds_its_leases_a_drill_and_an_evacuation_are_refused(
    fresh: SandboxEnv, control: SandboxControl, tmp_path: Path
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    text = _runbook(name)
    plan = _plan(tmp_path, text, f"evac-{name}")

    async def scenario() -> tuple[str, str, list[str], RunState]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            await guard_client.start(client, _guard(text), queue)
            await _until(client, name, lambda s: s.evaluations >= 3)
            control.set_outage("us-east-1", "app")
            state = await _until(client, name, _switch_started)
            control.set_outage("us-east-1", None)
            ep = state.episode
            assert ep is not None and ep.switch is not None and ep.switch.run_id is not None
            h = switch.handle(client, ep.switch.workflow_id, ep.switch.run_id)
            await wait_for(h, lambda p: p.open_gates == ["approve"])
            held = (await h.describe()).typed_search_attributes.get(sa.RESOURCES) or []
            # A drill of the same runbook (under an id of its own: the lease decides, not the
            # switch's id) and an evacuation of the runbook, while the guard's switch runs.
            drill = resolve(load_text(text), "us-east-1", "us-west-2", mode="drill",
                            requester="alice")  # fmt: skip
            wid = f"switch-{name}-by-hand-{uuid.uuid4().hex[:6]}"
            by_hand = await _refusal(switch.start(client, drill, queue, workflow_id_override=wid))
            evac = resolve_evacuation(load_file(plan), "us-east-1", "us-west-2", mode="drill",
                                      requester="alice")  # fmt: skip
            evacuated = await _refusal(evacuation.start(client, evac, queue))
            # Nothing of theirs started.
            ids = [wf.id async for wf in client.list_workflows(f"FailoverRunbook = '{name}'")]
            assert wid not in ids and f"evacuation-evac-{name}" not in ids, ids
            await switch.reject(h, Decision(approver="bob", comment="test over"))
            result = await h.result()
            await _stop(client, name)
            return by_hand, evacuated, list(held), result.state

    by_hand, evacuated, held, ended = run(scenario())
    # It holds what its switch writes: every resource of its mutating steps, and its runbook.
    names = leases.resources(_guard(text).switches["us-east-1"], f"switch-{name}")
    assert len(names) > 3 and f"runbook:{name}" in names
    assert sorted(held) == sorted(leases.keyed(names))
    holder = f"held by RegionSwitch switch-{name} (run "
    for refusal in (by_hand, evacuated):
        assert holder in refusal and "requested by guard-owner" in refusal, refusal
        assert any(n in refusal for n in names if not n.startswith("runbook:")), refusal
    assert by_hand.startswith(f"the drill of runbook '{name}' would write what another run holds")
    assert ended == RunState.ROLLED_BACK


def test_a_guard_does_not_switch_while_another_run_holds_what_its_switch_writes(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    text = _runbook(name)

    async def scenario() -> tuple[GuardState, list[str], str]:
        async with worker(sandbox_config(fresh)) as (client, queue):
            # A drill of the runbook by hand, waiting at its gate: it holds the resources.
            drill = resolve(load_text(text), "us-east-1", "us-west-2", mode="drill",
                            requester="alice")  # fmt: skip
            wid = f"switch-{name}-by-hand"
            h = await switch.start(client, drill, queue, workflow_id_override=wid)
            await wait_for(h, lambda p: p.open_gates == ["approve"])
            await guard_client.start(client, _guard(text), queue)
            await _until(client, name, lambda s: s.evaluations >= 3)
            control.set_outage("us-east-1", "app")
            state = await _until(
                client, name, lambda s: s.episode is not None and s.episode.outcome is not None
            )
            control.set_outage("us-east-1", None)
            switches = [wf.id for wf in await _switches(client, name)]
            told = [json.dumps(n.get("body", "")) for n in control.notifications()
                    if n.get("event") == "guard_decision" and name in json.dumps(n.get("body", ""))]  # fmt: skip
            await switch.reject(h, Decision(approver="bob", comment="test over"))
            await h.result()
            await _stop(client, name)
            return state, switches, " ".join(told)

    state, switches, told = run(scenario())
    assert switches == [f"switch-{name}-by-hand"], "the guard started no switch"
    ep = state.episode
    assert ep is not None and ep.outcome == "switch failed"
    assert state.status == GuardStatus.CONFIRMED
    assert ep.switch is not None and ep.switch.state == "NOT STARTED"
    assert "another run holds what the switch would write" in ep.decision
    assert f"held by RegionSwitch switch-{name}-by-hand" in ep.decision
    assert "requested by alice" in ep.decision and "a person decides" in ep.decision
    assert f"switch-{name}-by-hand" in told, told
