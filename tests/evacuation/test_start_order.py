"""Which of the services ready at once starts first: plan order by tier, or, with durations
expected from past switches, the longest expected chain first (and where those come from)."""

from __future__ import annotations

import uuid
from pathlib import Path

from orchestrator.evacuation import estimates
from orchestrator.evacuation.rules import start_order
from orchestrator.evacuation.runs import EvacState, ServicePlan
from orchestrator.runs import SwitchInput
from orchestrator.sandbox.manager import SandboxEnv
from tests.evacuation.helpers import drive, resolved, service_runbook, start, write_plan
from tests.workflows.helpers import run, sandbox_config, worker


def _svc(
    name: str, tier: int = 1, after: tuple[str, ...] = (), took: float | None = None
) -> ServicePlan:
    sw = SwitchInput(runbook=name, from_region="us-east-1", to_region="us-west-2",
                     requester="alice", steps=[])  # fmt: skip
    return ServicePlan(name=name, runbook=name, tier=tier, depends_on=list(after), switch=sw,
                       expected_s=took)  # fmt: skip


def test_without_estimates_it_is_plan_order_by_tier() -> None:
    services = [_svc("c", 2), _svc("a"), _svc("d", 2), _svc("b")]
    assert start_order(services) == ["a", "b", "c", "d"]


def test_with_estimates_the_longest_chain_starts_first_within_its_tier() -> None:
    services = [
        _svc("short", took=5),
        _svc("long", took=60),
        _svc("feeds-long-chain", took=10),  # short itself, but 55 s wait for it in its tier
        _svc("next", after=("feeds-long-chain",), took=55),
        _svc("unknown"),  # the mean of the others: 46
        _svc("later", tier=2, took=100),
    ]
    assert start_order(services) == ["feeds-long-chain", "long", "next", "unknown", "short",
                                      "later"]  # fmt: skip


def test_equal_chains_keep_plan_order() -> None:
    services = [_svc("x", took=7), _svc("y", took=7), _svc("z", took=9)]
    assert start_order(services) == ["z", "x", "y"]


def test_past_switches_give_the_estimates_and_the_order_taken(
    env: SandboxEnv, tmp_path: Path
) -> None:
    """A first evacuation leaves each service's switch in Temporal's visibility; the second,
    given the estimates, starts the service that took longest first (one place at a time)."""
    tag = uuid.uuid4().hex[:6]  # runbooks of their own: no other test's switches count
    quick, slow, new = f"quick-{tag}", f"slow-{tag}", f"new-{tag}"
    rbs = {quick: service_runbook(quick, flag_region=None, duration="100ms"),
           slow: service_runbook(slow, flag_region=None, duration="3000ms"),
           new: service_runbook(new, flag_region=None, duration="100ms")}  # fmt: skip
    first = write_plan(tmp_path, [{"name": quick, "runbook": quick},
                                  {"name": slow, "runbook": slow}], rbs,
                       name=f"learn-{tag}", max_parallel=2)  # fmt: skip
    second = write_plan(tmp_path, [{"name": n, "runbook": n} for n in (quick, new, slow)], rbs,
                        name=f"ordered-{tag}", max_parallel=1)  # fmt: skip

    async def scenario() -> tuple[dict[str, float | None], list[str], EvacState]:
        async with worker(sandbox_config(env)) as (client, queue):
            done = await drive(client, await start(client, queue, resolved(first)))
            assert done.state == EvacState.SUCCEEDED, done.reason
            inp = await estimates.with_estimates(client, resolved(second))
            took = {s.name: s.expected_s for s in inp.services}
            p = await drive(client, await start(client, queue, inp))
            began = sorted(p.services, key=lambda s: s.started_at or p.started_at)
            return took, [s.name for s in began], p.state

    took, began, state = run(scenario())
    assert state == EvacState.SUCCEEDED
    assert took[new] is None  # never switched
    assert took[quick] is not None and took[slow] is not None
    # (the quick one's 100 ms took 2.6 s once on a loaded machine: only their order is sure)
    assert took[slow] >= 3.0 and took[slow] > took[quick]
    # plan order would have been quick, new, slow; new, never switched, counts the mean of the
    # two others, more than quick's
    assert began == [slow, new, quick]
