"""Guard benchmark: how fast an outage is detected and switched, and what watching costs.

    .venv/bin/python -m bench.guard [--json FILE] [--evaluations 40]

A sandbox of its own (free ports, a temporary home) and a worker in this process; the shop
runbook's `guard:` section as written (every 5 s; 3 of the last 4 evaluations failing for 10 s
confirm). Two measurements:
1. Overhead: the guard alone over N healthy evaluations (interval 0.25 s, nothing else running
   in this process): this process's CPU time per evaluation (the workflow tasks, the activity,
   the SDK), and the activity's own time.
2. Outage: us-east-1 taken down (`full`), the guard confirms it, starts the unplanned switch,
   the gate is approved at once: outage -> first failing evaluation -> confirmed (MTTD) ->
   switch approved -> traffic on the target (the switch's RTO), and the whole time from outage
   to traffic on the target.
Target (issue 13): detection within the confirmation window plus one interval; under 50 ms of
worker time per evaluation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator import switch
from orchestrator.config import from_sandbox
from orchestrator.guard import client as guard_client
from orchestrator.guard.models import GuardInput, GuardState, GuardStatus
from orchestrator.guard.resolve import resolve_guard
from orchestrator.runbook.loader import load_file
from orchestrator.runs import Decision
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import Sandbox, SandboxEnv

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "runbooks" / "shop-region-switch.yaml"


async def _until(client: Any, runbook: str, pred: Any, timeout: float = 300) -> GuardState:
    deadline = time.monotonic() + timeout
    while True:
        _, state, _ = await guard_client.status(client, runbook)
        if pred(state):
            return state
        if time.monotonic() > deadline:
            raise SystemExit(f"guard did not get there: {state.status}")
        await asyncio.sleep(0.1)


async def _bench(env: SandboxEnv, evaluations: int) -> dict[str, Any]:
    from orchestrator.client import connect
    from orchestrator.worker import build_worker, executor

    config = from_sandbox(env)
    client = await connect(config.temporal)
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    rb = load_file(RUNBOOK)
    out: dict[str, Any] = {}
    with executor() as pool:
        async with build_worker(client, config, pool, queue):
            # 1. overhead: a quick guard, only sleeping here meanwhile
            quick: GuardInput = resolve_guard(rb, "us-east-1", requester="bench").model_copy(
                update={"interval": timedelta(seconds=0.25), "runbook": "bench-overhead"}
            )
            await guard_client.start(client, quick, queue)
            await _until(client, "bench-overhead", lambda s: s.evaluations >= 3)
            cpu0, wall0 = time.process_time(), time.monotonic()
            _, s0, _ = await guard_client.status(client, "bench-overhead")
            await asyncio.sleep(evaluations * 0.3)
            _, s1, _ = await guard_client.status(client, "bench-overhead")
            cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
            n = s1.evaluations - s0.evaluations
            await guard_client.stop(client, "bench-overhead", "bench", "done")
            out["overhead"] = {
                "evaluations": n,
                "wall_s": round(wall, 2),
                "cpu_ms_per_evaluation": round(cpu * 1000 / max(n, 1), 1),
                "evaluations_per_s": round(n / wall, 2),
                "activity_ms": round((s1.last.elapsed_s if s1.last else 0) * 1000, 1),
            }
            # 2. an outage, the runbook's own settings
            inp = resolve_guard(rb, "us-east-1", requester="bench")
            await guard_client.start(client, inp, queue)
            await _until(client, rb.name, lambda s: s.evaluations >= 2)
            ctl = SandboxControl(env)
            down = time.time()
            ctl.set_outage("us-east-1", "full")
            state = await _until(client, rb.name, lambda s: s.status == GuardStatus.SWITCHING)
            ep = state.episode
            assert ep is not None and ep.switch is not None and ep.confirmed_at is not None
            h = switch.handle(client, ep.switch.workflow_id, ep.switch.run_id)
            while True:
                p = await switch.progress(h)
                if p.open_gates:
                    for gate in p.open_gates:
                        await switch.approve(h, Decision(approver="bob", gate=gate))
                    break
                await asyncio.sleep(0.05)
            done = await _until(client, rb.name, lambda s: s.status == GuardStatus.COOLDOWN)
            ctl.set_outage("us-east-1", None)
            await guard_client.stop(client, rb.name, "bench", "done")
    ep = done.history[-1]
    sw = ep.switch
    assert sw is not None and sw.rto_s is not None
    first = ep.first_failure_at.timestamp()
    confirmed = ep.confirmed_at.timestamp() if ep.confirmed_at else first
    traffic = sw.started_at.timestamp() + sw.rto_s
    out["outage"] = {
        "interval_s": inp.interval.total_seconds(),
        "confirm": f"{inp.confirm_failures} of {inp.confirm_of} for "
        f"{inp.confirm_for.total_seconds():g}s",
        "outage_to_first_failure_s": round(first - down, 2),
        "mttd_s": ep.mttd_s,
        "outage_to_confirmed_s": round(confirmed - down, 2),
        "time_to_decision_s": ep.decision_s,
        "switch_rto_s": sw.rto_s,
        "outage_to_traffic_on_target_s": round(traffic - down, 2),
        "switch_state": sw.state,
    }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--evaluations", type=int, default=40, help="healthy ones, for the overhead")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    box = Sandbox(home=home, free_ports=True, worker=False)
    try:
        result = asyncio.run(_bench(box.up(), args.evaluations))
    finally:
        box.down()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
