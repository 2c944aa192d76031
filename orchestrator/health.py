"""Liveness and readiness of a worker over HTTP (`failover worker --health-port N`).

`/healthz` answers 200 while the process is up (a liveness probe: restart only a process that no
longer answers). `/readyz` answers 200 only while the worker is running and Temporal lists it
among the pollers of its task queue (workflow and activity tasks), else 503 with a one-line
reason: starting, Temporal not answering, not polling yet, shutting down. The server is the
standard library's, in a daemon thread; the asyncio side (`watch_readiness`) sets the state, the
HTTP thread only reads it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

log = structlog.get_logger("failover.health")

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
#: Seconds between readiness checks once ready, and while not ready yet.
CHECK_INTERVAL = 10.0
RETRY_INTERVAL = 1.0
#: Seconds one check may wait for Temporal.
CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Status:
    """Whether the worker takes work, and if not, why (one line)."""

    ready: bool
    reason: str


class Readiness:
    """The worker's readiness, set from the asyncio loop and read by the HTTP thread."""

    def __init__(self, reason: str = "starting") -> None:
        self._lock = threading.Lock()
        self._status = Status(False, reason)

    def set_ready(self) -> None:
        """The worker polls its task queue."""
        self._set(Status(True, "ready"))

    def set_not_ready(self, reason: str) -> None:
        """The worker takes no work now; `reason` is what /readyz says (one line)."""
        self._set(Status(False, " ".join(reason.split()) or "not ready"))

    def status(self) -> Status:
        """The current status."""
        with self._lock:
            return self._status

    def _set(self, status: Status) -> None:
        with self._lock:
            changed = status != self._status
            self._status = status
        if changed:
            log.info("readiness", ready=status.ready, reason=status.reason)


def respond(path: str, readiness: Readiness) -> tuple[int, str]:
    """The status code and one-line body for a GET of `path` (the query string is ignored).

    Args:
        path: The request's path, as the HTTP request line gives it.
        readiness: The worker's readiness.

    Returns:
        (200, "ok") for the liveness path; (200, "ready") or (503, "not ready: REASON") for the
        readiness path; 404 for anything else.
    """
    path = path.split("?", 1)[0]
    if path == LIVENESS_PATH:
        return 200, "ok"
    if path == READINESS_PATH:
        status = readiness.status()
        return (200, "ready") if status.ready else (503, f"not ready: {status.reason}")
    return 404, f"not found: {LIVENESS_PATH} or {READINESS_PATH}"


def _handler(readiness: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "failover-health"

        def _answer(self, body: bool) -> None:
            code, text = respond(self.path, readiness)
            data = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a probe every few seconds is no news

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class HealthServer:
    """The health endpoint on host:port, served from a daemon thread.

    Binding happens in the constructor, so a port that is taken raises `OSError` at once.
    """

    def __init__(self, host: str, port: int, readiness: Readiness) -> None:
        """Bind host:port (port 0: a free one).

        Args:
            host: The address to listen on (IPv4 or IPv6, with or without brackets).
            port: The port; 0 picks a free one (see `port`).
            readiness: What /readyz reports.

        Raises:
            OSError: The address cannot be bound (taken, or not an address of this host).
        """
        host = host.strip("[]")
        cls = _Server6 if ":" in host else _Server
        self._server = cls((host, port), _handler(readiness))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        """Serve requests in a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


async def polling(client: Client, task_queue: str, identity: str) -> str | None:
    """Whether Temporal lists `identity` among the pollers of the task queue's workflow and
    activity tasks (Temporal keeps a poller listed for a few minutes after its last poll).

    Returns:
        None when it polls both kinds of task, else the reason (one line).
    """
    missing = []
    for kind, name in (
        (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, "workflow"),
        (TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, "activity"),
    ):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=kind,
            ),
            timeout=timedelta(seconds=CHECK_TIMEOUT),
        )
        if not any(p.identity == identity for p in resp.pollers):
            missing.append(name)
    if missing:
        return f"not polling {' and '.join(missing)} tasks of task queue {task_queue} yet"
    return None


async def watch_readiness(
    client: Client,
    task_queue: str,
    running: Callable[[], bool],
    readiness: Readiness,
    *,
    identity: str | None = None,
    interval: float = CHECK_INTERVAL,
    retry: float = RETRY_INTERVAL,
) -> None:
    """Keep `readiness` up to date until cancelled: ready while `running()` and Temporal lists
    this worker as a poller of `task_queue`; checked every `interval` seconds, every `retry`
    seconds while not ready.

    Args:
        client: The worker's client (its identity is the worker's).
        task_queue: The worker's task queue.
        running: Whether the worker runs (`Worker.is_running`).
        readiness: What /readyz reports.
        identity: The worker's identity (default: the client's).
        interval: Seconds between checks while ready.
        retry: Seconds between checks while not ready.
    """
    who = identity or client.identity
    address = client.service_client.config.target_host
    while True:
        if not running():
            readiness.set_not_ready("the worker is not running (starting, or stopped)")
        else:
            try:
                reason = await asyncio.wait_for(polling(client, task_queue, who), CHECK_TIMEOUT + 1)
            except TimeoutError:
                reason = f"Temporal at {address} did not answer within {CHECK_TIMEOUT:g} s"
            except Exception as exc:  # any RPC failure: not ready, and say why
                reason = f"Temporal at {address} did not answer: {exc}"
            if reason is None:
                readiness.set_ready()
            else:
                readiness.set_not_ready(reason)
        await asyncio.sleep(interval if readiness.status().ready else retry)
