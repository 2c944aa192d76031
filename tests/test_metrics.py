"""Metrics and traces: the Prometheus endpoint of a worker, scraped over a real socket during and
after drills on the sandbox; `failover worker --metrics-port` with OTLP traces as its own process;
the Grafana dashboard against the metrics that exist."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from orchestrator import metrics, report, switch
from orchestrator.cli.worker import RUNNING_SWITCHES, GateGauges, metrics_address, open_gates
from orchestrator.client import connect
from orchestrator.interceptors import (
    MetricsInterceptor,
    TracingUnavailableError,
    rto_seconds,
    tracing_from_env,
    tracing_wanted,
    traffic_step_types,
)
from orchestrator.runs import Decision, RunProgress, RunState, StepKind, StepRecord, StepState
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.worker import build_worker, executor
from tests.workflows.helpers import ROOT, drive, plan, run, sandbox_config, start, wait_for

DASHBOARD = ROOT / "deploy" / "grafana" / "failover-dashboard.json"
Sample = tuple[str, dict[str, str], float]


# ------------------------------------------------------------------------------ helpers
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition."""
    out: list[Sample] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        assert m is not None, f"not a Prometheus sample: {line!r}"
        out.append((m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])))
    return out


def scrape(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        return parse(resp.read().decode())


def pick(samples: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [s for s in samples if s[0] == name and all(s[1].get(k) == v for k, v in labels.items())]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = pick(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0][2]


def dashboard_metric_names() -> set[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert exprs, "the dashboard has no queries"
    names: set[str] = set()
    for expr in exprs:
        names |= set(re.findall(r"\b((?:failover|temporal)_[a-z0-9_]+)\b", expr))
    return names


HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def base_name(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# -------------------------------------------------------------------- in-process worker
@pytest.mark.slow
def test_a_drill_and_a_rejected_one_show_in_the_metrics(fresh: SandboxEnv) -> None:
    port = free_port()
    runtime = metrics.prometheus_runtime(f"127.0.0.1:{port}")
    config = sandbox_config(fresh)
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    seen: dict[str, Any] = {}

    async def scenario() -> tuple[RunProgress, RunProgress]:
        client = await connect(
            config.temporal, runtime=runtime, interceptors=[MetricsInterceptor()]
        )
        gauges = GateGauges(runtime.metric_meter)
        with executor() as pool:
            # No workflow cache: every activation replays the history first, so a metric
            # recorded again on replay would show as a second run.
            async with build_worker(client, config, pool, queue, max_cached_workflows=0):
                h = await start(client, queue, plan("maintenance-drill.yaml"))
                mine = f"{RUNNING_SWITCHES} AND WorkflowId = '{h.id}'"
                await wait_for(h, lambda p: p.open_gates == ["approve"])
                await asyncio.sleep(1.0)  # the gate has waited a while
                per: dict[str, tuple[int, float]] = {}
                for _ in range(50):  # the visibility store lists the run soon after its start
                    per = await open_gates(client, mine)
                    if per:
                        break
                    await asyncio.sleep(0.1)
                gauges.set(per)
                seen["during"] = await asyncio.to_thread(scrape, port)
                ok = await drive(h)
                gauges.set(await open_gates(client, mine))
                seen["after"] = await asyncio.to_thread(scrape, port)
                # The way back, rejected at its gate: rolled back, its two changes undone.
                back = await start(client, queue, plan("maintenance-drill.yaml", frm="us-west-2", to="us-east-1"))  # fmt: skip
                await wait_for(back, lambda p: p.open_gates == ["approve"])
                await switch.reject(back, Decision(approver="bob", comment="not now"))
                rejected = await back.result()
                # The SDK counts a completion once the server took it: maybe just after the
                # client saw the result.
                for _ in range(100):
                    seen["end"] = await asyncio.to_thread(scrape, port)
                    done = pick(seen["end"], "temporal_workflow_completed", task_queue=queue,
                                workflow_type="RegionSwitch")  # fmt: skip
                    if done and done[0][2] >= 2:
                        break
                    await asyncio.sleep(0.1)
                return ok, rejected

    ok, rejected = run(scenario())
    assert ok.state == RunState.SUCCEEDED, ok.reason
    assert rejected.state == RunState.ROLLED_BACK, rejected.reason
    during, after, end = seen["during"], seen["after"], seen["end"]
    q = {"task_queue": queue}
    run_labels = {"runbook": "maintenance-drill", "mode": "drill", "kind": "planned", **q}

    # While the gate is open: the steps before it are measured, the run is not counted yet.
    assert not pick(during, "failover_runs_total", **q)
    assert value(during, "failover_open_gates", runbook="maintenance-drill") == 1.0
    assert 1.0 <= value(during, "failover_open_gate_age_seconds", runbook="maintenance-drill") < 60
    assert value(during, "failover_step_duration_seconds_count", step_type="http_check",
                 activity_type="step.check", outcome="succeeded", **q) == 1  # fmt: skip
    assert value(during, "failover_step_duration_seconds_count", step_type="ssm_parameter",
                 activity_type="step.apply", outcome="succeeded", **q) == 1  # fmt: skip

    # After it: one run, its RTO as its report measures it, every step activity by type.
    assert value(after, "failover_runs_total", outcome="SUCCEEDED", **run_labels) == 1
    assert value(after, "failover_open_gates", runbook="maintenance-drill") == 0.0
    assert value(after, "failover_open_gate_age_seconds", runbook="maintenance-drill") == 0.0
    rep = report.build(ok, "x")
    assert rep.rto_total_s is not None and rep.rto_total_s > 1.0  # the gate waited >= 1 s
    rto_labels = {**run_labels, "outcome": "SUCCEEDED", "workflow_type": "RegionSwitch"}
    assert value(after, "failover_run_rto_seconds_count", **rto_labels) == 1
    assert abs(value(after, "failover_run_rto_seconds_sum", **rto_labels) - rep.rto_total_s) < 0.01
    assert value(after, "failover_run_rto_seconds_bucket", le="1", **rto_labels) == 0
    assert value(after, "failover_run_rto_seconds_bucket", le="+Inf", **rto_labels) == 1
    assert not pick(after, "failover_run_rpo_seconds_count", **q)  # this runbook measures no lag
    expected = {
        ("k8s_configmap_flag", "step.prepare"): 2,
        ("k8s_configmap_flag", "step.apply"): 2,
        ("ssm_parameter", "step.prepare"): 2,
        ("ssm_parameter", "step.apply"): 2,
        ("http_check", "step.check"): 2,
    }
    for (step_type, activity), count in expected.items():
        labels = {"step_type": step_type, "activity_type": activity, "outcome": "succeeded", **q}
        assert value(after, "failover_step_duration_seconds_count", **labels) == count, labels
        total = value(after, "failover_step_duration_seconds_sum", **labels)
        assert 0 < total < rep.rto_total_s, (labels, total)
    measured = {(s[1]["step_type"], s[1]["activity_type"])
                for s in pick(after, "failover_step_duration_seconds_count", **q)}  # fmt: skip
    assert measured == set(expected), "approval and wait steps are no activities"
    assert not pick(after, "failover_undos_total", **q)

    # The rejected run: counted with its outcome, its two applied steps undone.
    assert value(end, "failover_runs_total", outcome="SUCCEEDED", **run_labels) == 1
    assert value(end, "failover_runs_total", outcome="ROLLED_BACK", **run_labels) == 1
    assert value(end, "failover_undos_total", state="UNDONE", **run_labels) == 2
    assert value(end, "failover_step_duration_seconds_count", step_type="k8s_configmap_flag",
                 activity_type="step.undo", outcome="succeeded", **q) == 1  # fmt: skip

    # The Temporal SDK's own metrics, on the same endpoint, in seconds.
    names = {s[0] for s in end}
    for sdk in ("temporal_workflow_completed", "temporal_activity_execution_latency_count",
                "temporal_workflow_task_execution_latency_count"):  # fmt: skip
        assert pick(end, sdk, **q), (
            f"{sdk} not served: {sorted(n for n in names if n.startswith('temporal_'))}"
        )
    assert value(end, "temporal_workflow_completed", workflow_type="RegionSwitch", **q) == 2
    latency = pick(end, "temporal_activity_execution_latency_sum", **q)
    assert latency and all(0 < s[2] < 120 for s in latency), latency  # seconds, not ms
    # Every metric the dashboard queries is served.
    for name in dashboard_metric_names():
        if name.startswith("temporal_"):
            assert name in names, f"the dashboard queries {name}, which the SDK does not serve"


def test_the_rto_is_the_reports_also_with_traffic_steps() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    traffic = sorted(traffic_step_types())
    assert "route53_weights" in traffic or traffic, traffic

    def rec(sid: str, stype: str, end_s: float) -> StepRecord:
        return StepRecord(id=sid, type=stype, kind=StepKind.MUTATE, state=StepState.SUCCEEDED,
                          started_at=t0, ended_at=t0 + timedelta(seconds=end_s))  # fmt: skip

    steps = [rec("dns", traffic[0], 42.5), rec("scale-down", "ssm_parameter", 90.0)]
    p = RunProgress(runbook="r", from_region="a", to_region="b", mode="drill", requester="x",
                    state=RunState.SUCCEEDED, started_at=t0, ended_at=t0 + timedelta(seconds=100),
                    steps=steps)  # fmt: skip
    assert rto_seconds(p, traffic_step_types()) == 42.5
    assert rto_seconds(p, traffic_step_types()) == report.build(p, "w").objectives["rto"].measured_s
    failed = p.model_copy(update={"state": RunState.ROLLED_BACK})
    assert rto_seconds(failed, traffic_step_types()) == 100.0
    assert rto_seconds(failed, traffic_step_types()) == report.build(failed, "w").rto_total_s


# ----------------------------------------------------------------------- as its own process
class OtlpSink:
    """An OTLP/HTTP trace receiver on a free loopback port: the spans' names and resources."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[tuple[str, dict[str, str]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                for rs in req.resource_spans:
                    res = {a.key: a.value.string_value for a in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        sink.spans.extend((span.name, res) for span in ss.spans)
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    @contextmanager
    def running(self) -> Iterator[OtlpSink]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def _wait_for_endpoint(port: int, proc: subprocess.Popen[bytes], log: Path) -> list[Sample]:
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"worker exited: {log.read_text()[-3000:]}"
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"no metrics endpoint: {log.read_text()[-3000:]}") from None
            time.sleep(0.2)


@pytest.mark.slow
def test_failover_worker_serves_metrics_exports_traces_and_stops_on_sigterm(
    fresh: SandboxEnv, tmp_path: Path
) -> None:
    port, queue, log = free_port(), f"metrics-{uuid.uuid4().hex[:6]}", tmp_path / "worker.log"
    with OtlpSink().running() as sink:
        env = dict(
            os.environ,
            FAILOVER_SANDBOX_HOME=fresh.home,
            PYTHONPATH=str(ROOT),
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink.port}",
            OTEL_BSP_SCHEDULE_DELAY="200",
        )
        env.pop("OTEL_TRACES_EXPORTER", None)
        env.pop("OTEL_SERVICE_NAME", None)
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "worker", "--task-queue", queue,
                 "--metrics-port", str(port), "--log-format", "json"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        try:
            _wait_for_endpoint(port, proc, log)  # served from the start, before Temporal

            async def scenario() -> RunProgress:
                client = await connect(sandbox_config(fresh).temporal)
                h = await start(client, queue, plan("maintenance-drill.yaml"))
                await wait_for(h, lambda p: p.open_gates == ["approve"])
                # The worker counts open gates every 15 s: its gauge shows this one.
                deadline = time.monotonic() + 45
                while True:
                    found = pick(await asyncio.to_thread(scrape, port), "failover_open_gates",
                                 runbook="maintenance-drill")  # fmt: skip
                    if found and found[0][2] >= 1:
                        break
                    assert time.monotonic() < deadline, f"open gate not counted: {found}"
                    await asyncio.sleep(0.5)
                result: RunProgress = await drive(h)
                return result

            assert run(scenario()).state == RunState.SUCCEEDED
            samples = scrape(port)
            assert value(samples, "failover_runs_total", task_queue=queue, runbook="maintenance-drill",
                         outcome="SUCCEEDED", mode="drill") == 1  # fmt: skip
            assert pick(samples, "failover_step_duration_seconds_count", task_queue=queue,
                        step_type="http_check")  # fmt: skip
            assert pick(samples, "temporal_activity_execution_latency_count", task_queue=queue)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
        assert code == 0, log.read_text()[-3000:]
        try:
            scrape(port)
            raise AssertionError("the metrics endpoint still answers after the worker stopped")
        except (urllib.error.URLError, ConnectionError):
            pass
        names = {name for name, _ in sink.spans}
    assert "RunWorkflow:RegionSwitch" in names, names
    assert {"RunActivity:step.prepare", "RunActivity:step.apply", "RunActivity:step.check"} <= names
    assert {res.get("service.name") for _, res in sink.spans} == {"failover-orchestrator"}
    text = log.read_text()
    assert f"metrics on http://127.0.0.1:{port}/metrics" in text


def test_a_taken_metrics_port_is_refused_with_its_address(tmp_path: Path, env: SandboxEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "worker", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            env=dict(os.environ, FAILOVER_SANDBOX_HOME=env.home, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------- tracing
def test_tracing_follows_the_standard_variables() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_TRACES_EXPORTER": "none",
                               "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"})  # fmt: skip
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing_wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert tracing_from_env({}) is None
    console = tracing_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert console is not None and console.exporters == ["console"]
    console.shutdown()
    with pytest.raises(TracingUnavailableError, match="grpc is not supported"):
        tracing_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317",
                          "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})  # fmt: skip
    with pytest.raises(TracingUnavailableError, match="zipkin is not supported"):
        tracing_from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_metrics_address_brackets_ipv6() -> None:
    assert metrics_address("127.0.0.1", 9464) == "127.0.0.1:9464"
    assert metrics_address("::1", 9464) == "[::1]:9464"


# ----------------------------------------------------------------------------- definitions
def test_every_metric_is_named_failover_and_documented_once() -> None:
    names = [m.name for m in metrics.ALL]
    assert len(names) == len(set(names))
    for m in metrics.ALL:
        assert m.name.startswith("failover_"), m.name
        assert m.description and m.attributes and m.unit in ("s", "1"), m
        assert m.name.endswith("_total") == (m.kind == "counter"), m.name
        assert (m.buckets is not None) == (m.kind == "histogram"), m.name
        if m.unit == "s":
            assert m.name.endswith("_seconds"), m.name
    assert set(metrics.bucket_overrides()) == {m.name for m in metrics.ALL if m.kind == "histogram"}
    assert metrics.GUARD_STATES == {"healthy": 0, "suspect": 1, "confirmed": 2, "switching": 3,
                                    "cooldown": 4, "flapping": 5, "stopped": 6}  # fmt: skip


def test_the_dashboard_parses_and_queries_only_metrics_that_exist() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["title"] and doc["uid"] and isinstance(doc["panels"], list)
    known = {m.name for m in metrics.ALL}
    names = dashboard_metric_names()
    ours = {n for n in names if n.startswith("failover_")}
    for name in ours:
        spec = next((m for m in metrics.ALL if m.name == base_name(name)), None)
        assert spec is not None and (name == spec.name or spec.kind == "histogram"), (
            f"the dashboard queries {name}, which is not in orchestrator/metrics.py"
        )
    wanted = {"failover_runs_total", "failover_run_rto_seconds", "failover_run_rpo_seconds",
              "failover_step_duration_seconds", "failover_open_gates",
              "failover_open_gate_age_seconds", "failover_guard_state",
              "failover_notifications_total"}  # fmt: skip
    assert wanted <= {base_name(n) for n in ours} <= known
    assert any(n.startswith("temporal_") for n in names)
    titles = " ".join(p["title"] for p in doc["panels"]).lower()
    for word in ("runs", "rto", "rpo", "step", "gates", "guard", "notifications", "latency"):
        assert word in titles, word
