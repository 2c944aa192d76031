"""Evacuations in tests: small runbooks and plans written to a temporary directory, an
evacuation started under a unique id, and a driver that approves what waits for people."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.client import Client

from orchestrator import switch
from orchestrator.evacuation import client as evacuation
from orchestrator.evacuation.loader import load_file
from orchestrator.evacuation.resolve import resolve_evacuation
from orchestrator.evacuation.runs import EvacState, EvacuationInput, EvacuationProgress
from orchestrator.runs import Decision, Mode, RunState
from orchestrator.sandbox.manager import SandboxEnv
from tests.sandbox.helpers import aws

REGIONS = ["us-east-1", "us-west-2"]


def service_runbook(
    name: str,
    flag_region: str | None = "us-west-2",
    gate: bool = False,
    duration: str = "100ms",
    approvers: list[str] | None = None,
) -> dict[str, Any]:
    """A runbook that sets its flag `/evac/NAME` (in `flag_region`; None: no flag) to the target
    region, then works for `duration` (behind a gate if asked)."""
    steps: list[dict[str, Any]] = []
    if flag_region is not None:
        steps.append({"id": "flag", "type": "ssm_parameter",
                      "params": {"name": f"/evac/{name}", "value": "${{ to_region }}",
                                 "region": flag_region}})  # fmt: skip
    if gate:
        steps.append({"id": "approve", "type": "approval",
                      "depends_on": [s["id"] for s in steps], "params": {"expires": "5m"}})  # fmt: skip
    steps.append({"id": "work", "type": "noop", "depends_on": [s["id"] for s in steps],
                  "params": {"duration": duration}})  # fmt: skip
    return {
        "apiVersion": "failover.dev/v1",
        "kind": "Runbook",
        "name": name,
        "regions": REGIONS,
        "approvers": approvers or ["bob", "carol"],
        "steps": steps,
    }


def write_plan(
    folder: Path,
    services: list[dict[str, Any]],
    runbooks: dict[str, dict[str, Any]],
    name: str = "test-plan",
    **top: Any,
) -> Path:
    """The runbooks as files, and a plan naming them (services as given; `runbook:` is the
    runbook's name: its file is `NAME.yaml` beside the plan)."""
    for rb_name, rb in runbooks.items():
        (folder / f"{rb_name}.yaml").write_text(yaml.safe_dump(rb, sort_keys=False))
    plan = {"apiVersion": "failover.dev/v1", "kind": "Evacuation", "name": name, **top,
            "services": [{**s, "runbook": f"{s['runbook']}.yaml"} for s in services]}  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def resolved(
    path: Path,
    frm: str = "us-east-1",
    to: str | None = "us-west-2",
    mode: Mode = "drill",
    requester: str = "alice",
) -> EvacuationInput:
    return resolve_evacuation(load_file(path), frm, to, mode=mode, requester=requester)


async def start(client: Client, queue: str, inp: EvacuationInput) -> evacuation.Handle:
    """Start an evacuation under a unique id (tests must not collide on `evacuation-<plan>`)."""
    wid = f"evacuation-{inp.plan}-{uuid.uuid4().hex[:8]}"
    return await evacuation.start(client, inp, queue, workflow_id_override=wid)


async def drive(
    client: Client,
    h: evacuation.Handle,
    approver: str = "bob",
    timeout: float = 60.0,
    services: dict[str, str] | None = None,
) -> EvacuationProgress:
    """Approve the evacuation's gates and its services' gates left to people (as `approver`, or
    as `services[NAME]` for a service's own gates) until the evacuation ends; its result."""
    result = asyncio.ensure_future(h.result())
    deadline = asyncio.get_running_loop().time() + timeout
    while not result.done():
        if asyncio.get_running_loop().time() > deadline:
            result.cancel()
            raise AssertionError(f"evacuation did not end within {timeout}s")
        p = await evacuation.progress(h)
        for gate in p.open_gates:
            with contextlib.suppress(switch.RefusedError):
                await evacuation.approve(h, Decision(approver=approver, gate=gate))
        for name, child in (await evacuation.live(client, p)).items():
            if child.state == RunState.WAITING_APPROVAL:
                for gate in child.open_gates:
                    with contextlib.suppress(switch.RefusedError):
                        who = (services or {}).get(name, approver)
                        await evacuation.service_decision(
                            client, h, name, Decision(approver=who, gate=gate)
                        )
        await asyncio.wait([result], timeout=0.1)
    return result.result()


async def until(h: evacuation.Handle, pred: Any, timeout: float = 30.0) -> EvacuationProgress:
    """Poll the evacuation's progress until pred holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        p = await evacuation.progress(h)
        if pred(p):
            return p
        if asyncio.get_running_loop().time() > deadline:
            states = {s.name: s.state.value for s in p.services}
            raise AssertionError(f"not reached after {timeout}s: {p.state} {states}")
        await asyncio.sleep(0.05)


def flags(env: SandboxEnv, names: list[str]) -> dict[str, str | None]:
    """Each service's flag `/evac/NAME`, in whichever region holds it."""
    out: dict[str, str | None] = {}
    for name in names:
        out[name] = None
        for region in REGIONS:
            ssm = aws(env, "ssm", region)
            got = ssm.get_parameters(Names=[f"/evac/{name}"])["Parameters"]
            if got:
                out[name] = got[0]["Value"]
    return out


def seed_flags(env: SandboxEnv, names: list[str], region: str = "us-west-2",
               value: str = "us-east-1") -> None:  # fmt: skip
    """Each service's flag as before an evacuation from us-east-1."""
    ssm = aws(env, "ssm", region)
    for name in names:
        ssm.put_parameter(Name=f"/evac/{name}", Value=value, Type="String", Overwrite=True)


FINAL = (EvacState.SUCCEEDED, EvacState.PARTIAL, EvacState.ROLLED_BACK, EvacState.ROLLBACK_FAILED)
