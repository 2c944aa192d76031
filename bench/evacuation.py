"""Evacuation benchmark: N services of real step types on the sandbox, their RTO against the
lower bound the latency model allows, against running them one after another, and what it costs.

    .venv/bin/python -m bench.evacuation [--services 50,100,200] [--max-parallel 25]
        [--time-scale 0.1] [--sequential-services N] [--seed 1] [--json FILE] [--quick]

A sandbox of its own (free ports, a temporary home, the latency model at `--time-scale`), with
its worker (`failover worker`, the product's, in its own process: its memory and CPU are
measured). The plan (`bench/evac_plan.py`): N services, each its own runbook of about 10 steps
over resources of its own (Route 53 weighted and failover records, a Deployment and a ConfigMap
per region, SSM parameters, an ALB or an Auto Scaling group per region), in 4 tiers, each service
depending on one or two of the tier before; `--max-parallel` services at once.

For each size, from a fresh sandbox (reset, every service's resources created, the worker
restarted and its clients warm), one evacuation us-east-1 -> us-west-2 (a drill); measured:
- RTO (the report's: first step of any service to the last service's traffic on the target)
  against its lower bound: the longest chain of modelled latencies through the plan's
  dependencies (service to service, step to step), or the services' own bounds / max_parallel
  when that is larger (`bound by` says which); the ideal schedule (no overhead at all);
- the worker's peak RSS (VmHWM: the process's peak) and its CPU time during the evacuation;
- the largest workflow history: the evacuation's and its largest switch's (events, bytes).
- the switches' tasks, from their histories: a workflow task's wait for a worker and its run,
  an activity's wait and its run by activity and step type (medians).
Then, on `--sequential-services` services (default: the largest size), from a fresh sandbox
each: the same plan with max_parallel 1 (the engine, service after service), and a plain
sequential Python script that makes the same boto3 and Kubernetes calls and waits for the same
conditions (`bench/evac_world.py`); the speed-up is script time / parallel RTO at that size. If
`--sequential-services` is smaller than the largest size, the script's time for the largest
size is extrapolated (x N / n, as printed: labelled "extrapolated").

The evacuation is started as `failover evacuate` starts it, holding leases on every resource its
services write (past 127, on lease shards: `orchestrator.lease_shards`; each row says how many
leases and shards). The evacuation's input (every service's
switch and switch back, 2.2 MB of JSON at 200 services) is compressed before it is stored
(`orchestrator.codec.CompressionCodec`): the sandbox's Temporal keeps the default 2 MB payload
limit, and each row says how large the input is as JSON and as stored.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter

from bench import evac_plan, evac_world
from orchestrator import leases
from orchestrator.codec import CompressionCodec
from orchestrator.evacuation.loader import load_file
from orchestrator.evacuation.resolve import resolve_evacuation, resources
from orchestrator.evacuation.runs import EvacState, EvacuationInput, EvacuationProgress
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import Sandbox, SandboxEnv, pid_alive

FROM, TO = evac_plan.REGIONS
#: Temporal's default limit of one payload (the dev server's and Temporal Cloud's).
TEMPORAL_PAYLOAD_LIMIT = 2 * 1024 * 1024
DEFAULT_SIZES = "50,100,200"
QUICK = {"services": "10", "time_scale": 0.02}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchSandbox(Sandbox):
    """The sandbox, with what the benchmark reads of its worker."""

    def worker_pid(self) -> int:
        env = self.load_env()
        assert env is not None and "worker" in env.components
        return env.components["worker"].pid

    def restart_worker(self) -> SandboxEnv:
        """A new worker process (a fresh peak RSS), once its clients are warm."""
        env = self.load_env()
        assert env is not None
        old = env.components.get("worker")
        if old is not None and pid_alive(old.pid):
            os.killpg(old.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while pid_alive(old.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        env = self.up()
        worker_log = Path(env.components["worker"].log)
        deadline = time.monotonic() + 60
        while "clients warmed" not in worker_log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker's clients were not warm after 60 s ({worker_log})")
            time.sleep(0.1)
        return env


# ------------------------------------------------------------------------- process figures
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy (every core, every process) since it booted:
    /proc/stat's first line, all but idle and iowait."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def component_cpu(env: SandboxEnv) -> dict[str, float]:
    """CPU seconds so far of each of the sandbox's processes (Temporal, the AWS server, each
    region's stand-ins, the notification sink, the worker), by component name."""
    out = {}
    for name, comp in env.components.items():
        try:
            out[name] = cpu_seconds(comp.pid)
        except OSError:  # (gone)
            continue
    return out


def memory_mb(pid: int) -> dict[str, float]:
    """A process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


# ------------------------------------------------------------------------------------ runs
def generate(
    folder: Path, n: int, max_parallel: int, seed: int, name: str | None = None
) -> EvacuationInput:
    """The plan of n services written and loaded by the normal loaders, then resolved."""
    path = evac_plan.write(folder, evac_plan.layout(n, seed), max_parallel, name)
    return resolve_evacuation(load_file(path), FROM, TO, requester="bench")


async def start(client: Any, inp: EvacuationInput, queue: str, wid: str) -> Any:
    """Start the evacuation as `failover evacuate` does (its leases held, on shards past 127)."""
    from orchestrator.evacuation import client as evacuation

    return await evacuation.start(client, inp, queue, workflow_id_override=wid)


async def history_size(
    client: Any, wid: str, gaps: dict[str, list[float]] | None = None
) -> dict[str, Any]:
    """A workflow's history: its events and bytes; with `gaps`, its tasks' times added to it."""
    history = await client.get_workflow_handle(wid).fetch_history()
    if gaps is not None:
        task_gaps(history.events, gaps)
    return {
        "workflow_id": wid,
        "events": len(history.events),
        "bytes": sum(e.ByteSize() for e in history.events),
    }


def task_gaps(events: Any, gaps: dict[str, list[float]]) -> None:
    """Each task's time from its history (seconds, appended to `gaps`): a workflow task's wait
    for a worker (`workflow_task_dispatch`) and its run on the worker, an activity's wait for a
    worker (`activity_dispatch`) and its run (`activity_run:<type>`)."""
    at = {e.event_id: e for e in events}

    def since(e: Any, first_id: int) -> float:
        first = at.get(first_id)
        if first is None:
            return 0.0
        return (e.event_time.ToDatetime() - first.event_time.ToDatetime()).total_seconds()

    for e in events:
        kind = e.WhichOneof("attributes")
        if kind == "workflow_task_started_event_attributes":
            a = e.workflow_task_started_event_attributes
            gaps.setdefault("workflow_task_dispatch", []).append(since(e, a.scheduled_event_id))
        elif kind == "workflow_task_completed_event_attributes":
            a = e.workflow_task_completed_event_attributes
            gaps.setdefault("workflow_task_run", []).append(since(e, a.started_event_id))
        elif kind == "activity_task_started_event_attributes":
            a = e.activity_task_started_event_attributes
            gaps.setdefault("activity_dispatch", []).append(since(e, a.scheduled_event_id))
        elif kind == "activity_task_completed_event_attributes":
            a = e.activity_task_completed_event_attributes
            scheduled = at.get(a.scheduled_event_id)
            name = "?"
            if scheduled is not None:
                attrs = scheduled.activity_task_scheduled_event_attributes
                name = attrs.activity_type.name
                if name.startswith("step.") and attrs.input.payloads:  # and the step's type
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        name += ":" + json.loads(attrs.input.payloads[0].data)["step"]["type"]
            gaps.setdefault(f"activity_run:{name}", []).append(since(e, a.started_event_id))


async def evacuate(
    env: SandboxEnv, inp: EvacuationInput, worker_pid: int, route53_quota: float | None = None
) -> tuple[EvacuationProgress, dict[str, Any]]:
    """Run one evacuation on the sandbox's worker; its progress and the run's figures. With
    `route53_quota`, under that Route 53 API quota (requests a second), lifted at the end."""
    from orchestrator.client import connect
    from orchestrator.config import from_sandbox

    config = from_sandbox(env)
    client = await connect(config.temporal)
    wid = f"evacuation-{inp.plan}-{uuid.uuid4().hex[:6]}"
    control = SandboxControl(env)
    if route53_quota is not None:  # after the seeding (fresh()), which it must not slow down
        control.set_quota("route53", route53_quota)
    cpu0, mem0 = cpu_seconds(worker_pid), memory_mb(worker_pid)
    busy0 = machine_cpu_seconds()
    parts0 = component_cpu(env)
    t0 = time.monotonic()
    h = await start(client, inp, config.temporal.task_queue, wid)
    started_s = time.monotonic() - t0  # the leases checked and taken (shards listed)
    held = resources(inp, wid)
    try:
        p: EvacuationProgress = await h.result()
    finally:
        quota = None
        if route53_quota is not None:  # what it served and refused, then lifted
            quota = control.quotas().get("route53")
            control.set_quota("route53", 0)
    wall = time.monotonic() - t0
    cpu = cpu_seconds(worker_pid) - cpu0
    busy = machine_cpu_seconds() - busy0
    parts = {k: round(v - parts0.get(k, 0.0), 1) for k, v in component_cpu(env).items()}
    mem = memory_mb(worker_pid)
    if p.state != EvacState.SUCCEEDED:
        bad = [f"{s.name}: {s.state.value} {s.reason}" for s in p.services if s.reason][:3]
        raise SystemExit(f"{p.plan}: {p.state.value}: {p.reason} ({'; '.join(bad)})")
    parent = await history_size(client, wid)
    gaps: dict[str, list[float]] = {}
    children = await asyncio.gather(
        *(history_size(client, s.workflow_id, gaps) for s in p.services if s.workflow_id)
    )
    largest = max(children, key=lambda c: c["bytes"])
    figures = {
        "wall_s": round(wall, 2),
        "load_average_1m": round(os.getloadavg()[0], 1),
        "leases": len(held),
        "lease_shards": len(leases.shards(held)),
        "start_s": round(started_s, 2),
        "worker_cpu_s": round(cpu, 1),
        # The whole machine (worker, Temporal, the AWS and Kubernetes stand-ins, this script):
        # near 1.0, the sandbox's own work, not the plan, sets the pace.
        "machine_cpu_s": round(busy, 1),
        "machine_busy_share": round(busy / (wall * (os.cpu_count() or 1)), 2),
        # Where that went: each sandbox process (the worker's is `worker`), the rest `other`.
        "cpu_by_component_s": {**parts, "other": round(busy - sum(parts.values()), 1)},
        "worker_rss_before_mb": mem0.get("VmRSS"),
        "worker_peak_rss_mb": mem.get("VmHWM"),
        "history_evacuation": parent,
        "history_largest_switch": largest,
        # Route 53's API quota during the run, and the calls it let through and refused.
        "route53_quota": quota,
        # The switches' tasks, from their histories (medians, ms): where a step's time goes
        # besides its own calls and waits.
        "switch_tasks_ms_median": {
            k: round(statistics.median(v) * 1000, 1) for k, v in sorted(gaps.items()) if v
        },
    }
    return p, figures


async def estimated(env: SandboxEnv, inp: EvacuationInput) -> EvacuationInput:
    """The input with each service's expected duration from its past switches (as `failover
    evacuate` starts it)."""
    from orchestrator.client import connect
    from orchestrator.config import from_sandbox
    from orchestrator.evacuation.estimates import with_estimates

    client = await connect(from_sandbox(env).temporal)
    return await with_estimates(client, inp)


def measure(
    p: EvacuationProgress,
    bound: evac_plan.EvacuationBound,
    inp: EvacuationInput,
    model: LatencyModel,
) -> dict[str, Any]:
    """The RTO against its bounds, and the children's start and end lags."""
    from orchestrator.evacuation.report import build

    r = build(p, "bench")
    rto = r.rto_s or 0.0
    start_lag, end_lag = [], []
    held = ran = modelled = 0.0  # seconds: slots held, switches run, their modelled durations
    for s in p.services:
        c = s.result
        if c is not None and c.started_at and c.ended_at and s.started_at and s.ended_at:
            start_lag.append((c.started_at - s.started_at).total_seconds())
            end_lag.append((s.ended_at - c.ended_at).total_seconds())
            held += (s.ended_at - s.started_at).total_seconds()
            ran += (c.ended_at - c.started_at).total_seconds()
            modelled += bound.whole_s[s.name]
    size = len(inp.model_dump_json())
    steps = step_figures(p, inp, model)
    [payload] = pydantic_data_converter.payload_converter.to_payloads([inp])
    stored = CompressionCodec().encode_sync([payload])[0].ByteSize()  # as the client sends it
    return {
        "services": len(p.services),
        "steps": sum(len(s.switch.steps) for s in inp.services),
        "max_parallel": inp.max_parallel,
        "rto_s": round(rto, 2),
        "evacuation_s": r.rto_total_s,
        "lower_bound_s": round(bound.seconds, 2),
        "bound_by": bound.bound_by,
        "dependency_bound_s": round(bound.chain.seconds, 2),
        "slot_bound_s": round(bound.slots_s, 2),
        "ideal_schedule_s": round(bound.ideal_s, 2),
        "rto_over_bound": round(rto / bound.seconds, 3) if bound.seconds else None,
        "rto_over_ideal": round(rto / bound.ideal_s, 3) if bound.ideal_s else None,
        "chain": bound.services_on_chain,
        "critical_path_taken": [n.name for n in r.critical_path],
        "child_start_lag_ms_median": round(statistics.median(start_lag) * 1000),
        "child_end_lag_ms_median": round(statistics.median(end_lag) * 1000),
        # A slot-bound RTO grows with the time each service holds its slot: its switch's own
        # run against the model (steps' overheads), and the parent's start and end lags.
        "switch_over_model": round(ran / modelled, 3) if modelled else None,
        "slot_over_model": round(held / modelled, 3) if modelled else None,
        **steps,
        "input_bytes": size,
        "input_stored_bytes": stored,
        "input_over_2mb": stored > TEMPORAL_PAYLOAD_LIMIT,
    }


def step_figures(
    p: EvacuationProgress, inp: EvacuationInput, model: LatencyModel
) -> dict[str, Any]:
    """Where a switch's time over its model goes, step by step (medians, ms): each step type's
    run over its modelled duration, and the lag from what a step waits for (its dependencies'
    ends, else its switch's start) to its start."""
    over: dict[str, list[float]] = {}
    lag: list[float] = []
    switches = {s.name: s.switch for s in inp.services}
    for s in p.services:
        c = s.result
        if c is None or c.started_at is None:
            continue
        planned = {t.id: t for t in switches[s.name].steps}
        ended = {r.id: r.ended_at for r in c.steps if r.ended_at is not None}
        for r in c.steps:
            if r.started_at is None or r.ended_at is None or r.id not in planned:
                continue
            t = planned[r.id]
            took = (r.ended_at - r.started_at).total_seconds()
            over.setdefault(r.type, []).append(took - model.step_seconds(t.type, t.params))
            after = [ended[d] for d in t.depends_on if d in ended] or [c.started_at]
            lag.append((r.started_at - max(after)).total_seconds())
    ms = {k: round(statistics.median(v) * 1000) for k, v in sorted(over.items())}
    return {
        "step_over_model_ms_median": ms,
        "step_start_lag_ms_median": round(statistics.median(lag) * 1000) if lag else None,
    }


def fresh(box: BenchSandbox, world_of: dict[str, Any], services: list[Any], worker: bool) -> Any:
    """The sandbox reset, these services' resources created, the worker restarted (if asked)."""
    t0 = time.monotonic()
    env = box.reset()
    world = evac_world.World(env)
    world_of["world"] = world
    evac_world.seed(world, services, lambda m: log(f"  seeding {len(services)}: {m}"))
    if worker:
        env = box.restart_worker()
    log(f"  fresh sandbox in {time.monotonic() - t0:.1f}s")
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(x) for x in str(args.services).split(",")]
    seq_n = max(sizes) if args.sequential_services is None else args.sequential_services
    model = LatencyModel(time_scale=args.time_scale)
    folder = Path(tempfile.mkdtemp(prefix="bench-evacuation-"))
    os.environ["FAILOVER_REPORTS"] = str(folder / "reports")  # the worker writes reports there
    box = BenchSandbox(home=folder / "sandbox", latency=model, free_ports=True, worker=True)
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {"time_scale": args.time_scale, "max_parallel": args.max_parallel,
                              "seed": args.seed, "route53_quota": args.route53_quota,
                              "sizes": rows}  # fmt: skip
    holder: dict[str, Any] = {}
    log(f"sandbox in {folder / 'sandbox'} (time scale {args.time_scale:g})")
    box.up()
    try:
        for n in sizes:
            log(f"{n} services, max_parallel {args.max_parallel}")
            inp = generate(folder / "plans", n, args.max_parallel, args.seed)
            bound = evac_plan.evacuation_bound(inp, model)
            services = evac_plan.layout(n, args.seed)
            env = fresh(box, holder, services, worker=True)
            p, figures = asyncio.run(evacuate(env, inp, box.worker_pid(), args.route53_quota))
            row = measure(p, bound, inp, model) | figures | {"order": "plan", "estimated": 0}
            shown = ("services", "order", "rto_s", "lower_bound_s", "bound_by",
                     "rto_over_bound", "worker_peak_rss_mb", "machine_busy_share")  # fmt: skip
            log(json.dumps({k: row[k] for k in shown}))
            rows.append(row)
            if args.learn:  # again, each service's duration expected from the run above
                learned = asyncio.run(estimated(env, inp))
                known = sum(s.expected_s is not None for s in learned.services)
                log(f"{n} services again, the longest expected chain first ({known} estimates)")
                bound = evac_plan.evacuation_bound(learned, model)
                env = fresh(box, holder, services, worker=True)
                running = evacuate(env, learned, box.worker_pid(), args.route53_quota)
                p, figures = asyncio.run(running)
                row = measure(p, bound, learned, model) | figures
                row |= {"order": "longest expected chain first", "estimated": known}
                log(json.dumps({k: row[k] for k in shown}))
                rows.append(row)
        if seq_n:
            result["sequential"] = sequential(box, holder, folder, seq_n, args, model, rows)
    finally:
        box.down()
    return result


def sequential(
    box: BenchSandbox,
    holder: dict[str, Any],
    folder: Path,
    n: int,
    args: argparse.Namespace,
    model: LatencyModel,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The plan of n services run by the engine with max_parallel 1, and by the plain script."""
    services = evac_plan.layout(n, args.seed)
    log(f"{n} services, one after another: the engine (max_parallel 1)")
    inp = generate(folder / "plans", n, 1, args.seed, name=f"bench-{n}-serial")
    bound = evac_plan.evacuation_bound(inp, model)
    env = fresh(box, holder, services, worker=False)
    p, figures = asyncio.run(evacuate(env, inp, box.worker_pid()))
    engine = measure(p, bound, inp, model) | figures
    log(f"  engine: RTO {engine['rto_s']} s, evacuation {engine['evacuation_s']} s")
    log(f"{n} services, one after another: the plain script")
    fresh(box, holder, services, worker=False)
    script_s = evac_world.sequential(holder["world"], [s.switch for s in inp.services])
    log(f"  script: {script_s:.1f} s")
    largest = rows[-1] if rows else None
    out: dict[str, Any] = {
        "services": n,
        "engine_serial_rto_s": engine["rto_s"],
        "engine_serial_s": engine["evacuation_s"],
        "engine_serial_bound_s": engine["lower_bound_s"],
        "script_s": round(script_s, 2),
        "script_modelled_s": round(sum(model.step_seconds(t.type, t.params)
                                       for s in inp.services for t in s.switch.steps), 2),
    }  # fmt: skip
    if largest is not None:
        at_n = next((r for r in rows if r["services"] == n), None)
        if at_n is not None:
            out["parallel_rto_s"] = at_n["rto_s"]
            out["speedup_vs_script"] = round(script_s / at_n["rto_s"], 1)
            out["speedup_vs_engine_serial"] = round(engine["evacuation_s"] / at_n["rto_s"], 1)
        if largest["services"] != n:
            factor = largest["services"] / n
            out["extrapolated_to"] = largest["services"]
            out["script_s_extrapolated"] = round(script_s * factor, 1)
            out["engine_serial_s_extrapolated"] = round(engine["evacuation_s"] * factor, 1)
            out["speedup_vs_script_extrapolated"] = round(script_s * factor / largest["rto_s"], 1)
    return out


# ---------------------------------------------------------------------------------- output
def _share(row: dict[str, Any]) -> str:
    share = row.get("machine_busy_share")  # (not in results recorded before it was measured)
    return "-" if share is None else f"{share:.0%}"


def tables(result: dict[str, Any]) -> str:
    rows = result["sizes"]
    lines = [
        f"time scale {result['time_scale']:g}, max_parallel {result['max_parallel']}",
        "",
        "| services | start order | steps | RTO | lower bound (by) | RTO / bound | ideal schedule "
        "| RTO / ideal | worker peak RSS | worker CPU | machine busy | largest history | input |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        h = r["history_evacuation"]
        over = " (> 2 MB)" if r["input_over_2mb"] else ""
        lines.append(
            f"| {r['services']} | {r.get('order', 'plan')} | {r['steps']} | {r['rto_s']:.1f} s | "
            f"{r['lower_bound_s']:.1f} s ({r['bound_by']}) | {r['rto_over_bound']:.3f} | "
            f"{r['ideal_schedule_s']:.1f} s | {r['rto_over_ideal']:.3f} | "
            f"{r['worker_peak_rss_mb']:.0f} MB | {r['worker_cpu_s']:.0f} s | "
            f"{_share(r)} | {h['events']} events, {h['bytes'] / 1e6:.2f} MB | "
            f"{r['input_bytes'] / 1e6:.2f} MB ({r.get('input_stored_bytes', 0) / 1e6:.2f} MB "
            f"stored){over} |"
        )
    notes = [
        f"{r['services']} services: the evacuation held {r['leases']} leases "
        f"({r['lease_shards']} lease shards); its start took {r['start_s']:.2f} s (leases "
        "checked, then taken, its shards listed running)"
        for r in rows
        if "start_s" in r
    ]
    for r in rows:
        s = r["history_largest_switch"]
        notes.append(
            f"{r['services']} services: largest switch history {s['events']} events, "
            f"{s['bytes'] / 1e3:.0f} kB; child start lag {r['child_start_lag_ms_median']} ms, "
            f"end lag {r['child_end_lag_ms_median']} ms (medians); switches ran "
            f"{r.get('switch_over_model', 0):.3f}x their modelled durations, slots held "
            f"{r.get('slot_over_model', 0):.3f}x; chain {' -> '.join(r['chain'])}"
        )
        if r.get("step_over_model_ms_median"):  # (not in results recorded before)
            per_type = ", ".join(f"{k} +{v} ms" for k, v in r["step_over_model_ms_median"].items())
            notes.append(
                f"{r['services']} services, each step over its model (medians): {per_type}; "
                f"a step started {r['step_start_lag_ms_median']} ms after what it waits for"
            )
        q = r.get("route53_quota")
        if q:
            notes.append(
                f"{r['services']} services, under Route 53's API quota of {q['rate']:g} a second: "
                f"{q['served']} calls served, {q['throttled']} throttled (and retried)"
            )
        if r.get("switch_tasks_ms_median"):  # (not in results recorded before)
            tasks = ", ".join(f"{k} {v:g} ms" for k, v in r["switch_tasks_ms_median"].items())
            notes.append(f"{r['services']} services, the switches' tasks (medians): {tasks}")
    seq = result.get("sequential")
    if seq:
        lines += [
            "",
            "| services, one after another | engine (max_parallel 1) | plain script | "
            "parallel RTO | speed-up vs script |",
            "|---|---|---|---|---|",
            f"| {seq['services']} | {seq['engine_serial_s']:.1f} s | {seq['script_s']:.1f} s | "
            + (
                f"{seq['parallel_rto_s']:.1f} s | {seq['speedup_vs_script']}x |"
                if "parallel_rto_s" in seq
                else "not run at this size | extrapolated below |"
            ),
        ]
        if "extrapolated_to" in seq:
            notes.append(
                f"EXTRAPOLATED: at {seq['extrapolated_to']} services the script would take "
                f"{seq['script_s_extrapolated']:.0f} s and the engine one after another "
                f"{seq['engine_serial_s_extrapolated']:.0f} s (measured on {seq['services']}, "
                f"x {seq['extrapolated_to']}/{seq['services']}): "
                f"{seq['speedup_vs_script_extrapolated']}x the parallel RTO"
            )
    return "\n".join([*lines, "", *(f"- {n}" for n in notes)])


def byte_compile() -> None:
    """Bring the project's .pyc files up to date first. The worker's workflow sandbox imports
    the workflow modules again for every workflow it starts (each service's switch): where
    PYTHONDONTWRITEBYTECODE is set and a .pyc is stale, each of those imports compiles the
    source again (7% of the worker's CPU at 200 services), which a deployed worker (its image
    byte-compiled) does not pay."""
    root = Path(__file__).resolve().parents[1]
    for package in ("workflows", "orchestrator", "activities"):
        compileall.compile_dir(str(root / package), quiet=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--services", default=None, help=f"comma-separated sizes ({DEFAULT_SIZES})")
    ap.add_argument("--max-parallel", type=int, default=25)
    ap.add_argument("--time-scale", type=float, default=None, help="latency model (0.1)")
    ap.add_argument(
        "--sequential-services",
        type=int,
        default=None,
        help="services run one after another (default: the largest size; 0: none)",
    )
    ap.add_argument(
        "--learn",
        action="store_true",
        help="each size again, the services' durations expected from the first run (as "
        "`failover evacuate` takes them from past runs): the longest expected chain first",
    )
    ap.add_argument(
        "--route53-quota",
        type=float,
        default=None,
        help="Route 53's API quota on the sandbox during each parallel evacuation (not the "
        "runs one after another), requests a second (AWS's: 5; default: none)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--quick", action="store_true", help="10 services at time scale 0.02")
    args = ap.parse_args(argv)
    if args.services is None:
        args.services = QUICK["services"] if args.quick else DEFAULT_SIZES
    if args.time_scale is None:
        args.time_scale = QUICK["time_scale"] if args.quick else 0.1
    try:
        sizes = [int(x) for x in str(args.services).split(",")]
    except ValueError:
        ap.error(f"--services: comma-separated numbers, not {args.services!r}")
    if not sizes or min(sizes) < 1 or not 1 <= args.max_parallel <= 100:
        ap.error("--services: sizes >= 1; --max-parallel: 1 to 100")
    if args.time_scale <= 0:
        ap.error("--time-scale: > 0")
    if args.route53_quota is not None and args.route53_quota <= 0:
        ap.error("--route53-quota: > 0 requests a second (leave it out for none)")
    from orchestrator.logs import configure

    configure("json", level=30)
    byte_compile()
    result = run(args)
    print(tables(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
