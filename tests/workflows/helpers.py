"""Running switches in tests: an in-process worker on a private task queue, plans, observers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from temporalio.client import Client

from orchestrator import switch
from orchestrator.client import connect
from orchestrator.config import Config, from_sandbox
from orchestrator.runbook.loader import load_file, load_text
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import Decision, Mode, RunProgress, RunState, SwitchInput
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.worker import build_worker, executor
from tests.sandbox.helpers import aws, kube

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "runbooks"


def plan(
    runbook: str | Path,
    frm: str = "us-east-1",
    to: str = "us-west-2",
    requester: str = "alice",
    mode: Mode = "drill",
    text: str | None = None,
    **params: Any,
) -> SwitchInput:
    """A resolved runbook (a file under runbooks/, or YAML text)."""
    rb = load_text(text) if text is not None else load_file(RUNBOOKS / runbook)
    return resolve(rb, frm, to, requester=requester, mode=mode, params=params)


@asynccontextmanager
async def worker(config: Config, cache: int = 1000) -> AsyncIterator[tuple[Client, str]]:
    """A worker in this process on a fresh task queue; yields (client, task_queue).

    cache=0: the workflow is evicted after every activation and replayed for the next one.
    """
    client = await connect(config.temporal)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with executor() as pool:
        async with build_worker(client, config, pool, queue, max_cached_workflows=cache):
            yield client, queue


async def start(client: Client, queue: str, inp: SwitchInput) -> switch.Handle:
    """Start a switch under a unique id (tests must not collide on `switch-<runbook>`)."""
    wid = f"test-{inp.runbook}-{uuid.uuid4().hex[:8]}"
    return await switch.start(client, inp, queue, workflow_id_override=wid)


async def wait_for(
    h: switch.Handle, pred: Callable[[RunProgress], bool], timeout: float = 30.0
) -> RunProgress:
    """Poll the progress query until pred holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        p = await switch.progress(h)
        if pred(p):
            return p
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached after {timeout}s: state {p.state}, {p.steps}")
        await asyncio.sleep(0.1)


async def drive(h: switch.Handle, approver: str = "bob", timeout: float = 60.0) -> RunProgress:
    """Approve every gate that opens (as `approver`) until the run ends; returns its result."""
    result = asyncio.ensure_future(h.result())
    deadline = asyncio.get_running_loop().time() + timeout
    while not result.done():
        if asyncio.get_running_loop().time() > deadline:
            result.cancel()
            raise AssertionError(f"run did not end within {timeout}s")
        p = await switch.progress(h)
        if p.state == RunState.WAITING_APPROVAL:
            for gate in p.open_gates:
                with contextlib.suppress(switch.RefusedError):  # closed meanwhile
                    await switch.approve(h, Decision(approver=approver, gate=gate))
        await asyncio.wait([result], timeout=0.1)
    return result.result()


SCENARIO_TIMEOUT = 240.0


def run(coro: Any, timeout: float = SCENARIO_TIMEOUT) -> Any:
    """Run a test scenario coroutine; a hang fails the test instead of hanging the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sandbox_config(env: SandboxEnv) -> Config:
    return from_sandbox(env)


# ------------------------------------------------------------------- observed sandbox state
def observe(env: SandboxEnv) -> dict[str, Any]:
    """What the maintenance drill touches, read independently of the step types."""
    from kubernetes import client as k8s

    out: dict[str, Any] = {}
    for region in env.regions:
        cm = k8s.CoreV1Api(kube(env, region)).read_namespaced_config_map("shop-flags", "shop")
        out[f"{region}:configmap"] = dict(cm.data or {})
        ssm = aws(env, "ssm", region)
        params = ssm.get_parameters_by_path(Path="/shop/flags", Recursive=True)["Parameters"]
        out[f"{region}:ssm"] = {p["Name"]: p["Value"] for p in params}
    return out


# ------------------------------------------------------------------- worker processes
class WorkerProcess:
    """`failover worker` as its own process, on a task queue of the test."""

    def __init__(self, home: str, queue: str, log: Path) -> None:
        self.home, self.queue, self.log = home, queue, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = dict(os.environ, FAILOVER_SANDBOX_HOME=self.home, PYTHONPATH=str(ROOT))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "worker", "--task-queue", self.queue,
                 "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye to Temporal."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn_worker(
    env: SandboxEnv, workers: list[WorkerProcess], queue: str, tmp: Path
) -> WorkerProcess:
    w = WorkerProcess(env.home, queue, tmp / f"worker-{len(workers)}.log").start()
    workers.append(w)
    return w
