"""`failover worker`: run the workflows and step activities against the configured Temporal.

With `--metrics-port N` the worker serves Prometheus metrics on http://HOST:N/metrics: the
Temporal SDK's runtime metrics and the orchestrator's own (`orchestrator.metrics`), one endpoint.
With `--health-port N` it serves /healthz (liveness) and /readyz (polling its task queue) on
http://HOST:N (`orchestrator.health`), for Kubernetes probes.
With the standard OTEL_* variables set it also exports traces of workflows and activities
(`orchestrator.interceptors.tracing_from_env`).
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import structlog
import typer
from temporalio.client import Client, Interceptor
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime

from orchestrator import config as configuration
from orchestrator import health, metrics, switch
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import ConfigOption, LogFormat, load_config
from orchestrator.cli.output import fail, info, print_json
from orchestrator.client import UnreachableError, connect
from orchestrator.interceptors import (
    MetricsInterceptor,
    Tracing,
    TracingUnavailableError,
    tracing_from_env,
)
from orchestrator.logs import configure
from orchestrator.worker import build_worker, executor

log = structlog.get_logger("failover.worker")

#: The running switches whose open gates `failover_open_gates` counts.
RUNNING_SWITCHES = "WorkflowType = 'RegionSwitch' AND ExecutionStatus = 'Running'"
#: How often the open gates are counted, and the most runs asked each time.
GATE_POLL_SECONDS = 15.0
GATE_POLL_LIMIT = 200
_QUERY_TIMEOUT = 5.0


def worker(
    config: ConfigOption = None,
    task_queue: Annotated[str | None, typer.Option(help="Task queue (default: failover).")] = None,
    log_format: Annotated[
        LogFormat, typer.Option(help="console or json", case_sensitive=False)
    ] = LogFormat.console,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="Serve Prometheus metrics (Temporal SDK and failover_*) on this port, at "
            "/metrics.",
            min=1,
            max=65535,
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(help="Address the metrics endpoint listens on.")
    ] = "127.0.0.1",
    health_port: Annotated[
        int | None,
        typer.Option(
            help="Serve /healthz (the process is up) and /readyz (200 while the worker polls "
            "its task queue, else 503 and why) on this port.",
            min=1,
            max=65535,
        ),
    ] = None,
    health_host: Annotated[
        str, typer.Option(help="Address the health endpoint listens on.")
    ] = "127.0.0.1",
    tag: Annotated[
        str | None,
        typer.Option(
            hidden=True,
            help="A label on the command line (how the sandbox knows the processes it started).",
        ),
    ] = None,
) -> None:
    """Run a worker: region-switch workflows and step activities; stops cleanly on SIGTERM.

    Traces of workflows and activities are exported when OTEL_EXPORTER_OTLP_ENDPOINT or
    OTEL_TRACES_EXPORTER is set (the standard OTEL_* variables configure the exporter).
    """
    configure("json" if log_format == LogFormat.json else "console")
    cfg = load_config(config)
    queue = task_queue or cfg.temporal.task_queue
    runtime = None
    if metrics_port is not None:
        bind = metrics_address(metrics_host, metrics_port)
        try:
            runtime = metrics.prometheus_runtime(bind)
        except Exception as exc:  # the SDK reports a bind failure as a plain exception
            fail(f"cannot serve metrics on {bind}: {exc}", ExitCode.INVALID_INPUT)
        info(f"metrics on http://{bind}/metrics")
    readiness = server = None
    if health_port is not None:
        readiness = health.Readiness(f"connecting to Temporal at {cfg.temporal.address}")
        where = metrics_address(health_host, health_port)
        try:
            server = health.HealthServer(health_host, health_port, readiness).start()
        except OSError as exc:
            fail(f"cannot serve health on {where}: {exc.strerror or exc}", ExitCode.INVALID_INPUT)
        info(f"health on http://{where}{health.LIVENESS_PATH} and {health.READINESS_PATH}")
    try:
        tracing = tracing_from_env()
    except TracingUnavailableError as exc:
        fail(str(exc), ExitCode.INVALID_INPUT)
    if tracing is not None:
        info(f"traces exported ({', '.join(tracing.exporters)})")
    try:
        asyncio.run(_run(cfg, queue, runtime, tracing, readiness))
    except UnreachableError as exc:
        fail(str(exc), ExitCode.UNREACHABLE)
    except configuration.ConfigError as exc:  # a payload key that cannot be used
        fail(str(exc), ExitCode.INVALID_INPUT)
    finally:
        if server is not None:
            server.close()
        if tracing is not None:
            tracing.shutdown()  # flush the spans still buffered


def metrics_address(host: str, port: int) -> str:
    """host:port for the exporter ([host]:port for an IPv6 address)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def _run(
    cfg: configuration.Config,
    queue: str,
    runtime: Runtime | None,
    tracing: Tracing | None,
    readiness: health.Readiness | None,
) -> None:
    interceptors: list[Interceptor] = []
    if runtime is not None:
        interceptors.append(MetricsInterceptor())
    if tracing is not None:
        interceptors.append(tracing.interceptor)
    client = await connect(cfg.temporal, runtime=runtime, interceptors=interceptors)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gates = (
        asyncio.create_task(watch_open_gates(client, runtime.metric_meter))
        if runtime is not None
        else None
    )
    ready: asyncio.Task[None] | None = None
    try:
        with executor() as pool:
            async with build_worker(client, cfg, pool, task_queue=queue, warm=True) as running:
                if readiness is not None:
                    ready = asyncio.create_task(
                        health.watch_readiness(client, queue, lambda: running.is_running, readiness)
                    )
                info(f"worker on {cfg.temporal.address} ns={cfg.temporal.namespace} queue={queue}")
                await stop.wait()
                if ready is not None and readiness is not None:
                    ready.cancel()
                    readiness.set_not_ready("shutting down: finishing in-flight tasks")
                info("worker stopping: finishing in-flight tasks")
    finally:
        for task in (gates, ready):
            if task is not None:
                task.cancel()


# ---------------------------------------------------------------------------- open gates
class GateGauges:
    """`failover_open_gates` and `failover_open_gate_age_seconds` per runbook.

    A runbook seen once keeps its series: it is set to 0 when its gates closed.
    """

    def __init__(self, meter: MetricMeter) -> None:
        self.count = metrics.gauge(meter, metrics.OPEN_GATES)
        self.age = metrics.gauge(meter, metrics.GATE_AGE)
        self.seen: set[str] = set()

    def set(self, per_runbook: dict[str, tuple[int, float]]) -> None:
        """Set both gauges for every runbook seen so far (0 where nothing is open now)."""
        self.seen |= per_runbook.keys()
        for runbook in sorted(self.seen):
            count, age = per_runbook.get(runbook, (0, 0.0))
            self.count.set(float(count), {"runbook": runbook})
            self.age.set(round(age, 3), {"runbook": runbook})


async def open_gates(
    client: Client, query: str = RUNNING_SWITCHES, limit: int = GATE_POLL_LIMIT
) -> dict[str, tuple[int, float]]:
    """Open gates of the running switches: runbook -> (how many, age of the oldest in seconds).

    At most `limit` runs are asked, each with a short timeout; a run that does not answer is
    logged and left out.
    """
    per: dict[str, tuple[int, float]] = {}
    now = datetime.now(UTC)
    async for wf in client.list_workflows(query, limit=limit):
        try:
            p = await asyncio.wait_for(
                switch.progress(switch.handle(client, wf.id, wf.run_id)), _QUERY_TIMEOUT
            )
        except Exception as exc:
            log.warning("open gates: run not read", workflow_id=wf.id, error=str(exc))
            continue
        count, oldest = per.get(p.runbook, (0, 0.0))
        for gate in p.open_gates:
            opened = next((s.started_at for s in p.steps if s.id == gate), None) or p.started_at
            oldest = max(oldest, (now - opened).total_seconds())
        per[p.runbook] = (count + len(p.open_gates), oldest)
    return per


async def watch_open_gates(
    client: Client,
    meter: MetricMeter,
    interval: float = GATE_POLL_SECONDS,
    query: str = RUNNING_SWITCHES,
) -> None:
    """Every `interval` seconds, set the open-gate gauges (until cancelled; errors are logged)."""
    gauges = GateGauges(meter)
    while True:
        try:
            gauges.set(await asyncio.wait_for(open_gates(client, query), timeout=interval))
        except Exception as exc:
            log.warning("open gates not counted", error=str(exc))
        await asyncio.sleep(interval)


class ConfigFormat(StrEnum):
    """`config show -o`: YAML for people (the file's own form), JSON for machines."""

    yaml = "yaml"
    json = "json"


def config_show(
    config: ConfigOption = None,
    output: Annotated[
        ConfigFormat, typer.Option("--output", "-o", help="yaml or json", case_sensitive=False)
    ] = ConfigFormat.yaml,
) -> None:
    """The effective configuration (the file or sandbox, with Temporal's environment
    configuration applied), every secret redacted: API keys, the TLS client key, AWS keys,
    encryption keys, notification URLs, routing keys and signing secrets, passwords in URLs."""
    shown = load_config(config).redacted()
    if output == ConfigFormat.json:
        print_json(shown)
        return
    import yaml

    typer.echo(yaml.safe_dump(shown, sort_keys=False), nl=False)
