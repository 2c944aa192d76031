"""Evacuation benchmark: an evacuation's RTO next to the lower bound its plan allows.

    .venv/bin/python -m bench.evacuation [--services 10,40] [--max-parallel 4] [--work 1s]
                                         [--seed 1] [--json FILE]

A local Temporal dev server (in memory) and an in-process worker. For each size N, a plan of N
services, all running one `noop` runbook (no cloud call: what is measured is the orchestration)
for a seeded random time between 0.5 and 1.5 x `--work`, laid out in levels of about sqrt(N)
services where each service depends on one or two of the level before; `max_parallel` as given.

Measured (from the children's own progress, as the report computes them):
- RTO: the first step of any service to the last service done;
- the lower bound: max(the longest dependency chain of the services' own switch durations,
  the sum of those durations / max_parallel): no scheduler can do better with these switches;
- the ideal schedule: those switches scheduled as the workflow does (plan order, max_parallel)
  with no overhead at all; RTO / ideal is what the orchestration costs;
- the child start lag (the parent starts a switch -> the switch runs) and end lag (the switch
  ended -> the parent knows: its report and last notifications are written first), medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from orchestrator import search_attributes
from orchestrator.config import Config
from orchestrator.evacuation import client as evacuation
from orchestrator.evacuation.loader import load_file
from orchestrator.evacuation.report import build
from orchestrator.evacuation.resolve import resolve_evacuation
from orchestrator.evacuation.rules import predecessors
from orchestrator.evacuation.runs import EvacState, EvacuationProgress
from orchestrator.logs import configure
from orchestrator.runbook import graph
from orchestrator.worker import build_worker, executor

RUNBOOK = {
    "apiVersion": "failover.dev/v1",
    "kind": "Runbook",
    "name": "bench-noop",
    "regions": ["us-east-1", "us-west-2"],
    "parameters": {"work": {"default": "1s"}},
    "steps": [{"id": "work", "type": "noop", "params": {"duration": "${{ params.work }}"}}],
}


def layout(n: int, work_s: float, seed: int) -> list[dict[str, Any]]:
    """N services in levels of about sqrt(N); each depends on one or two of the level before."""
    rng = random.Random(seed)
    width = max(1, round(math.sqrt(n)))
    services: list[dict[str, Any]] = []
    for i in range(n):
        level = i // width
        before = [s["name"] for s in services if s["level"] == level - 1]
        deps = sorted(rng.sample(before, min(len(before), rng.choice((1, 2))))) if before else []
        work = round(work_s * rng.uniform(0.5, 1.5), 2)
        services.append({"name": f"s{i:03d}", "level": level, "depends_on": deps, "work": work})
    return services


def write(folder: Path, services: list[dict[str, Any]], max_parallel: int) -> Path:
    (folder / "bench-noop.yaml").write_text(yaml.safe_dump(RUNBOOK, sort_keys=False))
    plan = {
        "apiVersion": "failover.dev/v1",
        "kind": "Evacuation",
        "name": f"bench-{len(services)}",
        "max_parallel": max_parallel,
        "services": [
            {"name": s["name"], "runbook": "bench-noop.yaml", "depends_on": s["depends_on"],
             "params": {"work": f"{s['work']}s"}}
            for s in services
        ],
    }  # fmt: skip
    path = folder / f"bench-{len(services)}.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def ideal(took: dict[str, float], preds: dict[str, list[str]], max_parallel: int) -> float:
    """The same switches scheduled with no overhead at all: each service starts the moment its
    predecessors have ended and a place is free (in plan order, as the workflow picks)."""
    order = list(took)
    ended: dict[str, float] = {}
    running: dict[str, float] = {}  # name -> end time
    now = 0.0
    while len(ended) < len(order):
        for name in order:
            if name in ended or name in running or len(running) >= max_parallel:
                continue
            if all(p in ended for p in preds[name]):
                running[name] = now + took[name]
        name, now = min(running.items(), key=lambda kv: kv[1])
        ended[name] = running.pop(name)
    return max(ended.values())


def measure(p: EvacuationProgress, max_parallel: int) -> dict[str, Any]:
    if p.state != EvacState.SUCCEEDED:
        raise SystemExit(f"{p.plan}: {p.state.value}: {p.reason}")
    r = build(p, "bench")
    took, start_lag, end_lag = {}, [], []
    for s in p.services:
        c = s.result
        assert c is not None and c.ended_at is not None and s.started_at and s.ended_at
        took[s.name] = (c.ended_at - c.started_at).total_seconds()
        start_lag.append((c.started_at - s.started_at).total_seconds())
        end_lag.append((s.ended_at - c.ended_at).total_seconds())
    preds = predecessors(p.services)
    _, chain_s = graph.critical_path(preds, took)
    slots_s = sum(took.values()) / max_parallel
    best = ideal(took, preds, max_parallel)
    rto = r.rto_s or 0.0
    return {
        "services": len(p.services),
        "max_parallel": max_parallel,
        "rto_s": rto,
        "evacuation_s": r.rto_total_s,
        "lower_bound_s": round(max(chain_s, slots_s), 2),
        "bound_by": "dependencies" if chain_s >= slots_s else "slots",
        "ideal_schedule_s": round(best, 2),
        "rto_over_bound": round(rto / max(chain_s, slots_s), 2),
        "rto_over_ideal": round(rto / best, 2),
        "critical_path_taken": len(r.critical_path),
        "switch_s_median": round(statistics.median(took.values()), 2),
        "child_start_lag_ms_median": round(statistics.median(start_lag) * 1000),
        "child_end_lag_ms_median": round(statistics.median(end_lag) * 1000),
    }


async def run(
    sizes: list[int], max_parallel: int, work_s: float, seed: int
) -> list[dict[str, Any]]:
    temporal = str(Path(sys.executable).parent / "temporal")
    if not Path(temporal).exists():
        temporal = shutil.which("temporal") or temporal
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_log_level="error",
    )
    rows = []
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        queue = "bench"
        folder = Path(tempfile.mkdtemp(prefix="bench-evacuation-"))
        os.environ["FAILOVER_REPORTS"] = str(folder / "reports")  # the runs write their reports
        with executor() as pool:
            async with build_worker(env.client, Config(), pool, queue):
                for n in sizes:
                    path = write(folder, layout(n, work_s, seed), max_parallel)
                    inp = resolve_evacuation(load_file(path), "us-east-1", "us-west-2",
                                             requester="bench")  # fmt: skip
                    wid = f"evacuation-bench-{n}-{uuid.uuid4().hex[:6]}"
                    h = await evacuation.start(env.client, inp, queue, workflow_id_override=wid)
                    row = measure(await h.result(), max_parallel)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--services", default="10,40", help="comma-separated sizes")
    ap.add_argument("--max-parallel", type=int, default=4)
    ap.add_argument("--work", type=float, default=1.0, help="seconds of work per service (mean)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    configure("json", level=logging.WARNING)
    sizes = [int(x) for x in args.services.split(",")]
    rows = asyncio.run(run(sizes, args.max_parallel, args.work, args.seed))
    print(
        "| services | max_parallel | RTO | lower bound (by) | ideal schedule | RTO / bound | "
        "RTO / ideal | child start lag | child end lag |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lags = f"{r['child_start_lag_ms_median']} ms | {r['child_end_lag_ms_median']} ms"
        print(
            f"| {r['services']} | {r['max_parallel']} | {r['rto_s']:.1f} s | "
            f"{r['lower_bound_s']:.1f} s ({r['bound_by']}) | {r['ideal_schedule_s']:.1f} s | "
            f"{r['rto_over_bound']} | {r['rto_over_ideal']} | {lags} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
