"""`failover worker --health-port`: /healthz and /readyz, answered over a real socket; readiness
against the sandbox's Temporal (a worker in this process, then `failover worker` as its own
process, stopped with SIGTERM); a taken port refused in one line."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from orchestrator import health
from orchestrator.client import connect
from orchestrator.health import HealthServer, Readiness, polling, respond, watch_readiness
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.worker import build_worker, executor
from tests.workflows.helpers import ROOT, run, sandbox_config


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- the handler
def test_respond_says_live_always_and_ready_only_when_ready() -> None:
    r = Readiness("connecting to Temporal at t:7233")
    assert respond("/healthz", r) == (200, "ok")
    assert respond("/readyz", r) == (503, "not ready: connecting to Temporal at t:7233")
    r.set_ready()
    assert respond("/readyz?verbose=1", r) == (200, "ready")
    r.set_not_ready("Temporal did not answer:\n  deadline exceeded\n")
    assert respond("/readyz", r) == (503, "not ready: Temporal did not answer: deadline exceeded")
    assert respond("/metrics", r)[0] == 404
    assert respond("/", r)[0] == 404


def test_the_server_answers_probes_over_a_socket_and_releases_its_port() -> None:
    r = Readiness("starting")
    server = HealthServer("127.0.0.1", 0, r).start()
    port = server.port
    try:
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/readyz") == (503, "not ready: starting\n")
        assert get(port, "/readyz", "HEAD") == (503, "")
        r.set_ready()
        assert get(port, "/readyz") == (200, "ready\n")
        assert get(port, "/nope")[0] == 404
    finally:
        server.close()
    with pytest.raises(ConnectionRefusedError):
        get(port, "/healthz")
    # A restarted worker binds the same port again (its old connections in TIME_WAIT or not).
    HealthServer("127.0.0.1", port, r).close()


def test_a_taken_port_raises_at_once() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            HealthServer("127.0.0.1", taken.getsockname()[1], Readiness())


# ------------------------------------------------------------------ readiness vs Temporal
def test_ready_only_while_temporal_lists_the_worker_as_a_poller(env: SandboxEnv) -> None:
    config = sandbox_config(env)
    queue = f"health-{uuid.uuid4().hex[:8]}"
    seen: list[health.Status] = []

    async def scenario() -> None:
        client = await connect(config.temporal)
        # Nobody polls this queue: not ready, and the reason names it.
        reason = await polling(client, queue, client.identity)
        assert reason == f"not polling workflow and activity tasks of task queue {queue} yet"
        r = Readiness()
        with executor() as pool:
            w = build_worker(client, config, pool, queue)
            watcher = asyncio.create_task(
                watch_readiness(client, queue, lambda: w.is_running, r, interval=0.2, retry=0.1)
            )
            await asyncio.sleep(0.3)
            seen.append(r.status())  # not started yet
            async with w:
                deadline = time.monotonic() + 10
                while not r.status().ready:
                    assert time.monotonic() < deadline, r.status()
                    await asyncio.sleep(0.1)
                seen.append(r.status())
                # Another identity on the same queue is not this worker.
                assert "not polling" in (await polling(client, queue, "someone-else") or "")
            await asyncio.sleep(0.5)
            seen.append(r.status())  # shut down
            watcher.cancel()

    run(scenario(), timeout=30)
    assert seen == [
        health.Status(False, "the worker is not running (starting, or stopped)"),
        health.Status(True, "ready"),
        health.Status(False, "the worker is not running (starting, or stopped)"),
    ]


def test_unreachable_temporal_is_not_ready_with_its_address() -> None:
    async def scenario() -> health.Status:
        from temporalio.client import Client

        # A client that connects lazily, to a port where nothing listens.
        client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)
        r = Readiness()
        task = asyncio.create_task(watch_readiness(client, "q", lambda: True, r, retry=0.1))
        deadline = time.monotonic() + 10
        while r.status().reason == "starting":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        task.cancel()
        return r.status()

    status = run(scenario(), timeout=20)
    assert not status.ready
    assert status.reason.startswith("Temporal at 127.0.0.1:"), status
    assert "\n" not in status.reason


# ----------------------------------------------------------------- failover worker process
def test_failover_worker_serves_health_and_readiness_and_stops_on_sigterm(
    env: SandboxEnv, tmp_path: Path
) -> None:
    port, queue, log = free_port(), f"health-{uuid.uuid4().hex[:6]}", tmp_path / "worker.log"
    penv = dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, PYTHONPATH=str(ROOT))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "worker", "--task-queue", queue,
             "--health-port", str(port), "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=penv,
        )  # fmt: skip
    answers: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"worker exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"not ready: {answers[-3:]} {log.read_text()[-3000:]}"
            )
            try:
                assert get(port, "/healthz") == (200, "ok\n")
                answers.append(get(port, "/readyz"))
            except OSError:
                time.sleep(0.1)  # not listening yet
                continue
            if answers[-1][0] == 200:
                break
            time.sleep(0.1)
        assert answers[-1] == (200, "ready\n")
        for code, body in answers[:-1]:  # before that: 503 and why, one line
            assert code == 503 and body.startswith("not ready: ") and body.count("\n") == 1, body
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, log.read_text()[-3000:]
    with pytest.raises(ConnectionRefusedError):
        get(port, "/healthz")
    text = log.read_text()
    assert f"health on http://127.0.0.1:{port}/healthz and /readyz" in text


def test_a_taken_health_port_is_refused_with_its_address(env: SandboxEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "worker", "--health-port", str(port)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            env=dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert lines == [f"error: cannot serve health on 127.0.0.1:{port}: Address already in use"]
