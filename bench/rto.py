"""RTO against its lower bound: how much of a switch is the orchestrator's own cost.

    .venv/bin/python -m bench.rto [RUNBOOK] [--from us-east-1 --to us-west-2]
                                  [--time-scale 0.1] [--repeat 1] [--json FILE]

A switch can never be faster than the cloud operations along its longest dependency chain. The
lower bound is that chain's modelled duration: each step's modelled operations (the sandbox's
latency model, `orchestrator.sandbox.latency.STEP_OPERATIONS`) added up along the longest path of
the runbook's DAG that ends at a step the RTO waits for (the traffic steps when the runbook has
any: the report's RTO ends with the last of them; else every step). Everything above it is the
orchestrator's (and the sandbox's) own cost.

A sandbox of its own (free ports, a temporary home, `--time-scale`) and an in-process worker whose
clients are warmed before the run (a long-lived worker's). The runbook (default: the shop
runbook) is drilled from --from to --to with its approval gates pre-approved (answered at once);
between repeats the sandbox is reset to its seeded state. Printed: RTO (the report's
`rto_traffic_s`, else `rto_total_s`), the lower bound, their ratio, and per step on the critical
path its modelled and measured duration and the excess (measured minus modelled). `--repeat N`
reports medians (per step too). Targets (issue 17): shop drill RTO / bound <= 1.10 at time scale
0.1, <= 1.03 at 1.0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.runs import RunProgress, RunState, SwitchInput
from orchestrator.sandbox.latency import LatencyModel

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "runbooks" / "shop-region-switch.yaml"


@dataclass(frozen=True)
class Bound:
    """The longest chain of modelled durations: its steps (in order) and its total."""

    path: list[str]
    seconds: float


def lower_bound(
    deps: Mapping[str, Sequence[str]],
    cost: Mapping[str, float],
    ends: Sequence[str] | None = None,
) -> Bound:
    """The longest path of `cost`s through the DAG `deps` (step -> the steps it depends on)
    that ends at one of `ends` (default: any step). Of paths that cost the same, the one with
    more steps wins (each step costs the orchestrator something), then the first found in
    `deps`' order, so the result is deterministic.

    Args:
        deps: Every step and the steps it depends on.
        cost: Every step's modelled duration, in seconds.
        ends: The steps a path may end at (the steps the measured time waits for).

    Returns:
        The path (first step first) and its total cost.
    """
    best: dict[str, tuple[float, list[str]]] = {}

    def longer(a: tuple[float, list[str]], b: tuple[float, list[str]]) -> bool:
        return (round(a[0], 9), len(a[1])) > (round(b[0], 9), len(b[1]))

    def longest(sid: str) -> tuple[float, list[str]]:
        if sid not in best:
            before: tuple[float, list[str]] = (0.0, [])
            for d in deps.get(sid, ()):
                candidate = longest(d)
                if longer(candidate, before):
                    before = candidate
            best[sid] = (before[0] + cost[sid], [*before[1], sid])
        return best[sid]

    found: tuple[float, list[str]] = (0.0, [])
    for sid in ends if ends is not None else list(deps):
        candidate = longest(sid)
        if longer(candidate, found):
            found = candidate
    return Bound(path=found[1], seconds=found[0])


def modelled(inp: SwitchInput, model: LatencyModel) -> dict[str, float]:
    """Every step's modelled duration on a sandbox with `model` (`LatencyModel.step_seconds`)."""
    return {s.id: model.step_seconds(s.type, s.params) for s in inp.steps}


def rto_ends(inp: SwitchInput) -> list[str]:
    """The steps the report's RTO waits for: the traffic steps, else every step."""
    from activities import registry

    traffic = [s.id for s in inp.steps if (t := registry.get(s.type)) is not None and t.traffic]
    return traffic or [s.id for s in inp.steps]


def bound_of(inp: SwitchInput, model: LatencyModel) -> tuple[Bound, dict[str, float]]:
    """A resolved runbook's lower bound of RTO, and every step's modelled duration."""
    cost = modelled(inp, model)
    deps = {s.id: s.depends_on for s in inp.steps}
    return lower_bound(deps, cost, rto_ends(inp)), cost


def resolved(runbook: Path, frm: str, to: str) -> SwitchInput:
    """The runbook resolved for a drill from `frm` to `to`, its gates pre-approved."""
    from orchestrator.gameday.models import preapprove
    from orchestrator.runbook.loader import load_file
    from orchestrator.runbook.resolve import resolve

    inp = resolve(load_file(runbook), frm, to, requester="bench", mode="drill")
    return preapprove(inp, "bob")


async def drill(env: Any, inp: SwitchInput) -> RunProgress:
    """Run one switch on the sandbox with an in-process worker whose clients are warm."""
    from activities.clients import Clients
    from orchestrator import switch
    from orchestrator.client import connect
    from orchestrator.config import from_sandbox
    from orchestrator.worker import build_worker, executor, warm_clients

    config = from_sandbox(env)
    client = await connect(config.temporal)
    queue = f"bench-rto-{uuid.uuid4().hex[:6]}"
    # A long-lived worker has built its clients before a switch comes (warm=True, in the
    # background): build them before the run, so the run does not wait for them.
    clients = Clients(config)
    await asyncio.to_thread(warm_clients, clients)
    with executor() as pool:
        async with build_worker(client, config, pool, queue, clients=clients):
            h = await switch.start(client, inp, queue)
            out: RunProgress = await h.result()
            return out


def measure(p: RunProgress, cost: Mapping[str, float], bound: Bound) -> dict[str, Any]:
    """One run's RTO and every step's measured duration and excess over its modelled one."""
    from orchestrator.report import build

    if p.state != RunState.SUCCEEDED:
        raise SystemExit(f"the drill ended {p.state.value}: {p.reason}")
    report = build(p, workflow_id="bench-rto")
    rto = report.rto_traffic_s if report.rto_traffic_s is not None else report.rto_total_s
    if rto is None:
        raise SystemExit("the drill's report has no RTO")
    steps: list[dict[str, Any]] = []
    for s in p.steps:
        took = (s.ended_at - s.started_at).total_seconds() if s.started_at and s.ended_at else 0.0
        model = float(cost.get(s.id, 0.0))
        steps.append(
            {
                "id": s.id,
                "modelled_s": round(model, 3),
                "measured_s": round(took, 3),
                "excess_s": round(took - model, 3),
                "critical": s.id in bound.path,
            }
        )
    # What the critical steps' own durations leave of the RTO: the run's start (its first
    # workflow task, the source region's reachability check) and any wait between two steps.
    between = rto - sum(float(s["measured_s"]) for s in steps if s["critical"])
    return {"rto_s": rto, "between_s": round(between, 3), "steps": steps}


def summarize(runs: list[dict[str, Any]], bound: Bound, time_scale: float) -> dict[str, Any]:
    """Medians over the runs: RTO, and per step measured and excess."""
    rto = statistics.median(float(r["rto_s"]) for r in runs)
    steps = []
    for i, first in enumerate(runs[0]["steps"]):
        measured = statistics.median(float(r["steps"][i]["measured_s"]) for r in runs)
        steps.append(
            first
            | {
                "measured_s": round(measured, 3),
                "excess_s": round(measured - first["modelled_s"], 3),
            }
        )
    return {
        "rto_s": round(rto, 3),
        "between_s": round(statistics.median(float(r["between_s"]) for r in runs), 3),
        "lower_bound_s": round(bound.seconds, 3),
        "ratio": round(rto / bound.seconds, 3) if bound.seconds else None,
        "time_scale": time_scale,
        "repeat": len(runs),
        "critical_path": bound.path,
        "rto_runs_s": [r["rto_s"] for r in runs],
        "steps": steps,
    }


def table(result: dict[str, Any]) -> str:
    """The result as Markdown: the totals, then the critical path's steps."""
    ratio = result["ratio"]
    lines = [
        f"time scale {result['time_scale']:g}, median of {result['repeat']} run(s)",
        "",
        "| RTO | lower bound | ratio |",
        "|---|---|---|",
        f"| {result['rto_s']:.2f} s | {result['lower_bound_s']:.2f} s | "
        f"{'-' if ratio is None else f'{ratio:.3f}'} |",
        "",
        "| critical step | modelled | measured | excess |",
        "|---|---|---|---|",
    ]
    on_path = {s["id"]: s for s in result["steps"] if s["critical"]}
    for sid in result["critical_path"]:
        s = on_path[sid]
        lines.append(
            f"| {sid} | {s['modelled_s']:.2f} s | {s['measured_s']:.2f} s | "
            f"{s['excess_s']:+.2f} s |"
        )
    between = result["between_s"]
    lines.append(f"| (run start, between steps) | 0.00 s | {between:.2f} s | {between:+.2f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runbook", nargs="?", type=Path, default=RUNBOOK)
    ap.add_argument("--from", dest="frm", default="us-east-1")
    ap.add_argument("--to", default="us-west-2")
    ap.add_argument("--time-scale", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args(argv)

    from orchestrator.logs import configure
    from orchestrator.sandbox.manager import Sandbox

    configure("json", level=30)  # warnings only: log I/O is not what is measured
    model = LatencyModel(time_scale=args.time_scale)
    inp = resolved(args.runbook, args.frm, args.to)
    bound, cost = bound_of(inp, model)
    home = Path(tempfile.mkdtemp(prefix="bench-rto-"))
    box = Sandbox(home=home, latency=model, free_ports=True, worker=False)
    runs: list[dict[str, Any]] = []
    try:
        env = box.up()
        for i in range(args.repeat):
            if i:
                env = box.reset()
            run = measure(asyncio.run(drill(env, inp)), cost, bound)
            print(json.dumps({"run": i + 1, "rto_s": run["rto_s"]}), file=sys.stderr, flush=True)
            runs.append(run)
    finally:
        box.down()
    result = summarize(runs, bound, args.time_scale)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
