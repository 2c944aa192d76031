"""Shared fixtures: one sandbox per test session, on free ports, in a temporary home."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import Sandbox, SandboxEnv, SandboxError
from tests.workflows.helpers import ROOT, WorkerProcess

WATCH_HISTORY = 1000  # events a region keeps for watches (small, so compaction is testable)
ARTIFACTS = Path(os.environ.get("FAILOVER_TEST_ARTIFACTS", "test-artifacts"))


# Hypothesis's per-example deadline (200 ms) is a timing assertion, and timing on 2 shared cores
# is noise: a gate once failed a pure-logic property at 354 ms (0.19 ms when re-run).
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` go first (a stable sort: the rest keep their order). pytest-xdist
    hands tests out in this order: a 40 s test handed out last would end the run 40 s after
    the others."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI or `timeout` kill) interrupts like Ctrl-C, so the session's teardown still
    stops every process the tests started. Full garbage collections wait for the end of a test
    (`pytest_runtest_logfinish`)."""
    signal.signal(signal.SIGTERM, _interrupt)
    gc.set_threshold(*gc.get_threshold()[:2], NO_AUTOMATIC_FULL_COLLECTION)


#: A test process holds about half a million objects (botocore's service models above all). In
#: a whole gate (4 processes on 2 cores) each process ran 26-39 full collections, of up to 2.0 s
#: each, and a collection stops every thread: inside a workflow activation, the SDK's deadlock
#: detector fails the workflow task at 2 s (it did once, and the stuck run's leases then failed
#: six more tests). So full collections run between tests only, one every FULL_COLLECTION_EVERY
#: tests (about as often as they ran by themselves), and what the first test left alive
#: (modules, session fixtures, clients' models) is frozen out of them. The younger generations
#: run as usual.
NO_AUTOMATIC_FULL_COLLECTION = 1_000_000_000
FULL_COLLECTION_EVERY = 8
_finished = 0


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """After a test and its teardown: the full collection, when due (see above)."""
    global _finished
    _finished += 1
    if _finished == 1:
        gc.collect()
        gc.freeze()
    elif _finished % FULL_COLLECTION_EVERY == 0:
        gc.collect()


THREE_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")


def _running(home: Path, **options: Any) -> Iterator[Sandbox]:
    """A sandbox on free loopback ports in `home`, up until the session ends (no worker: tests
    bring their own, on task queues of their own)."""
    box = Sandbox(
        home=home, latency=LatencyModel(time_scale=0.01), free_ports=True, worker=False, **options
    )
    try:
        try:
            box.up()
        except SandboxError as first:
            # Once, on a loaded machine, a session sandbox did not come up (its Temporal did not
            # list its search attributes for 30 s), and every test of that worker process
            # errored: a second start, from nothing, before giving up.
            box.down()
            warnings.warn(f"the sandbox did not come up ({first}); starting it again", stacklevel=1)
            box.up()
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A running sandbox (Temporal, AWS, two regions) on free loopback ports; stopped at the end."""
    yield from _running(tmp_path_factory.mktemp("sandbox"), watch_history=WATCH_HISTORY)


@pytest.fixture(scope="module")
def three_regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox of THREE_REGIONS for the tests of one module in one worker process; stopped
    after the last of them (not at the session's end: an idle sandbox still costs CPU, about
    a fifth of a core for three regions, and the few modules that need it run early)."""
    yield from _running(tmp_path_factory.mktemp("three"), regions=THREE_REGIONS)


@pytest.fixture
def env(sandbox: Sandbox) -> SandboxEnv:
    """The sandbox's current connection file (re-read: a reset re-seeds new resource ids)."""
    loaded = sandbox.load_env()
    assert loaded is not None
    return loaded


@pytest.fixture
def control(env: SandboxEnv) -> Iterator[SandboxControl]:
    """Control of the session sandbox; faults and region health are cleaned up after each test."""
    ctl = SandboxControl(env)
    yield ctl
    ctl.clear_faults()
    for region in env.regions:
        ctl.set_outage(region, None)
        ctl.set_app_fault(region, 0.0, 0.0)


@pytest.fixture
def fresh(sandbox: Sandbox) -> SandboxEnv:
    """The session sandbox reset to its seeded state (for tests that change shared resources)."""
    return sandbox.reset()


@pytest.fixture
def worker_process(env: SandboxEnv, tmp_path: Path) -> Iterator[None]:
    """`failover worker` (the real entry point) in its own process on the sandbox's task queue,
    polling when the test starts; stopped at the end."""
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "worker"],
        env=dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, PYTHONPATH=str(ROOT)),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while b"worker on" not in (tmp_path / "worker.log").read_bytes():  # it polls
        assert proc.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)
    yield
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture
def workers(env: SandboxEnv, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Worker processes a test starts; every one is stopped at the end."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()
