"""The sandbox's shop database replication: the replica region pulls the primary's orders with a
long poll (an answer waits for the next order instead of coming back empty), and takes an order
only once it is older than the replication lag."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv, http_json
from tests.sandbox.helpers import wait_for

PRIMARY, REPLICA = "us-east-1", "us-west-2"


def replicated(env: SandboxEnv, region: str) -> set[str]:
    return {o["id"] for o in http_json(f"{env.regions[region].app_url}/_orders")["replicated"]}


def order(env: SandboxEnv) -> str:
    taken = http_json(f"{env.regions[PRIMARY].app_url}/api/orders", "POST", {})
    assert taken["accepted"] is True
    return str(taken["id"])


def test_a_pull_waits_for_the_next_order_and_an_idle_one_comes_back_empty(
    fresh: SandboxEnv,
) -> None:
    url = f"{fresh.regions[PRIMARY].app_url}/_orders"
    now = time.time()
    began = time.monotonic()
    empty = http_json(f"{url}?after={now}&wait=0.3")
    assert empty["accepted"] == [] and time.monotonic() - began >= 0.3
    with ThreadPoolExecutor(1) as pool:
        pulled = pool.submit(http_json, f"{url}?after={time.time()}&wait=5", timeout=10)
        time.sleep(0.3)  # the pull is waiting on the primary
        assert not pulled.done()
        taken = order(fresh)
        got = pulled.result(timeout=5)
    assert [o["id"] for o in got["accepted"]] == [taken]
    # With orders already after `after`, a pull answers at once, whatever its wait.
    began = time.monotonic()
    assert [o["id"] for o in http_json(f"{url}?after={now}&wait=5")["accepted"]] == [taken]
    assert time.monotonic() - began < 4
    wait_for(lambda: taken in replicated(fresh, REPLICA))


def test_an_order_is_replicated_once_older_than_the_lag(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    control.set_replication_lag(REPLICA, 1.5)
    try:
        taken = order(fresh)
        at = time.monotonic()
        time.sleep(0.8)
        assert taken not in replicated(fresh, REPLICA)  # not yet 1.5 s old
        wait_for(lambda: taken in replicated(fresh, REPLICA), timeout=5)
        assert time.monotonic() - at >= 1.4  # (its own clock: a few ms either way)
    finally:
        control.set_replication_lag(REPLICA, 0.0)
