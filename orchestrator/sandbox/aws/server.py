"""The sandbox's AWS server: moto (with its gaps filled) plus ARC and Global Accelerator.

One WSGI app serves every region: on a port of its own for each region (the region's endpoint, so
that a region can be taken down alone) and on a main port (the sandbox's own view, which stays up).
In front of moto it identifies each request from botocore's models, so it can inject faults (the
client gets a real error response in the service's protocol), record every mutating call, and
route the services moto lacks to `extensions`. Control endpoints live under `/_sandbox/` (faults,
calls, latency, lag, outages, quotas, reset, health).

A region down refuses connections on its endpoint (Route 53's API, served from us-east-1, goes
with it, and so does that region's ARC cluster endpoint); with a hang, its calls wait that long,
then fail (a blackholed region rather than a refusing one).

Run: python -m orchestrator.sandbox.aws.server --port 5000 --region-port us-east-1=5001 ...
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.core.base_backend import BackendDict, backend_lock
from moto.core.model_instances import reset_model_data
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from orchestrator.sandbox.aws import moto_gaps
from orchestrator.sandbox.aws.errors import SandboxError
from orchestrator.sandbox.aws.extensions import EXTENSION_SERVICES, Extensions
from orchestrator.sandbox.aws.listener import Listener
from orchestrator.sandbox.aws.protocol import AWSRequest, identify, render_error, render_result
from orchestrator.sandbox.aws.quota import Quotas
from orchestrator.sandbox.calls import CallLog
from orchestrator.sandbox.faults import FaultBook, FaultRule
from orchestrator.sandbox.latency import LatencyModel

StartResponse = Callable[..., Any]
_ARC_PREFIX = re.compile(r"^/_arc/[^/]+/\d+")


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, with its host -> backend lookup remembered: moto answers it by listing
    its own package's folder (a `stat` of each of some 150 entries) for every request, under
    one lock that every request thread takes."""

    def __init__(self, create_app: Callable[..., Any]) -> None:
        super().__init__(create_app)
        self._backend_of: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_of:
            self._backend_of[host] = super().get_backend_for_host(host)
        return self._backend_of[host]


def reset_moto() -> None:
    """Drop every moto backend, as `moto_api_backend.reset()` does, without first re-creating
    each one in place (moto re-initialises every loaded region backend, then drops them all: half
    a second of default VPCs and AMIs for nothing). The next request creates fresh ones."""
    with backend_lock:
        for backends in BackendDict._instances:  # type: ignore[misc]
            backends.clear()
        BackendDict._instances.clear()  # type: ignore[misc]
    reset_model_data()
    moto_api_backend.__init__(moto_api_backend.region_name, moto_api_backend.account_id)  # type: ignore[misc]


class SandboxAWS:
    """The WSGI application; state lives here (one instance per server process)."""

    def __init__(self, latency: LatencyModel | None = None) -> None:
        moto_gaps.install()
        self.latency = latency or LatencyModel()
        moto_gaps.STATE.latency = self.latency
        self.base_url = "http://127.0.0.1"
        #: Each region's endpoint (its own listener), by region and by port.
        self.region_urls: dict[str, str] = {}
        self.port_regions: dict[str, str] = {}
        self.listeners = Listeners(self)
        #: Regions down: region -> seconds its calls hang before failing (0: refused at once).
        self.outages: dict[str, float] = {}
        #: Timers that end an expiring outage (a game day's dead man's switch), by region.
        self.lifts: dict[str, threading.Timer] = {}
        self.faults = FaultBook()
        #: API request quotas per account (none unless set: `PUT /_sandbox/quota`).
        self.quotas = Quotas()
        self.calls = CallLog("aws")
        self.ext = Extensions(self.latency, self.url_of)
        moto_gaps.STATE.routing_control_state = self.ext.routing_control_state
        self.moto = _Dispatcher(create_backend_app)

    def url_of(self, region: str | None = None) -> str:
        """A region's endpoint (the main one for a region without a listener of its own)."""
        return self.region_urls.get(region or "", self.base_url)

    # ------------------------------------------------------------------------------ WSGI
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path.startswith("/_sandbox/"):
            return self._admin(environ, start_response)
        down = self.port_regions.get(str(environ.get("SERVER_PORT")))
        if down in self.outages:  # a hanging region (a refusing one has no listener)
            time.sleep(self.outages[down])
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [f"region {down} is down".encode()]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        raw_path = environ.get("REQUEST_URI", environ.get("RAW_URI", path)).split("?")[0]
        m = _ARC_PREFIX.match(raw_path)
        if m:  # an ARC cluster endpoint: the path prefix only picks the endpoint
            raw_path = raw_path[m.end() :] or "/"
            environ["PATH_INFO"] = raw_path
        headers = {
            k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        headers["content-type"] = environ.get("CONTENT_TYPE", "")
        req = identify(
            environ["REQUEST_METHOD"], raw_path, environ.get("QUERY_STRING", ""), headers, body
        )
        if req is None:
            return self.moto(environ, start_response)
        if req.service == "rds":
            moto_gaps.tick()
        if not self.quotas.take(req.service, req.access_key_id or ""):
            code = "ThrottlingException" if "json" in req.protocol else "Throttling"
            return self._refuse(req, code, "Rate exceeded", start_response)

        fault = self.faults.take(req.key, req.region, "before")
        if fault is not None:
            time.sleep(fault.delay)
            if fault.error.lower() != "none":
                return self._fail(req, fault, start_response)

        status, out_headers, out_body = self._dispatch(req, environ)
        if req.mutating:  # served (landed, if it succeeded): recorded now, whatever comes next
            self.calls.record(req.region, f"{req.service}:{req.operation}", req.params, status,
                              access_key_id=req.access_key_id)  # fmt: skip
        late = self.faults.take(req.key, req.region, "after")
        if late is not None:
            time.sleep(late.delay)  # the answer is late (a client may give up first) ...
            if late.error.lower() != "none":  # ... or an error, although the change landed
                return self._fail(req, late, start_response, record=False)
        start_response(_status_line(status), list(out_headers.items()))
        return [out_body]

    def _dispatch(
        self, req: AWSRequest, environ: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        if req.service in EXTENSION_SERVICES:
            try:
                return render_result(req, self.ext.handle(req.service, req.operation, req.params))
            except SandboxError as exc:
                return render_error(req, exc.code, exc.message, exc)
        captured: dict[str, Any] = {}

        def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split()[0])
            captured["headers"] = dict(headers)

        chunks = self.moto(environ, _start)
        body = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close:
            close()
        return captured["status"], captured["headers"], body

    def _fail(
        self, req: AWSRequest, fault: FaultRule, start_response: StartResponse, record: bool = True
    ) -> Iterable[bytes]:
        message = fault.message or f"Injected by the sandbox (fault {fault.id})"
        return self._refuse(req, fault.error, message, start_response, record)

    def _refuse(
        self, req: AWSRequest, code: str, message: str, start_response: StartResponse,
        record: bool = True,
    ) -> Iterable[bytes]:  # fmt: skip
        """Answer `code` in the service's protocol; a mutating call refused so is recorded in
        the call log with that code (unless `record` is False: a late fault's, recorded
        already)."""
        status, headers, body = render_error(req, code, message)
        if record and req.mutating:
            self.calls.record(
                req.region, f"{req.service}:{req.operation}", req.params, status, code,
                req.access_key_id,
            )  # fmt: skip
        start_response(_status_line(status), list(headers.items()))
        return [body]

    # ----------------------------------------------------------------------------- admin
    def _admin(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ["PATH_INFO"][len("/_sandbox/") :].strip("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            data = json.loads(raw) if raw else {}
            result = self._admin_route(method, path, data, environ.get("QUERY_STRING", ""))
            status = 200
        except (ValueError, KeyError, TypeError) as exc:
            result, status = {"error": str(exc)}, 400
        except LookupError as exc:
            result, status = {"error": str(exc)}, 404
        payload = json.dumps(result, default=str).encode()
        start_response(_status_line(status), [("Content-Type", "application/json")])
        return [payload]

    def _admin_route(self, method: str, path: str, data: Any, query: str) -> Any:
        if path == "health":
            return {"ok": True, "service": "aws"}
        if path == "faults":
            if method == "POST":
                return self.faults.add(FaultRule.model_validate(data)).model_dump()
            if method == "DELETE":
                return {"cleared": self.faults.clear(data.get("id"))}
            return [r.model_dump() for r in self.faults.list()]
        if path == "calls":
            if method == "DELETE":
                self.calls.clear()
                return {"cleared": True}
            since = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("since")
            return [c.model_dump() for c in self.calls.list(float(since) if since else None)]
        if path == "latency":
            if method in ("PUT", "POST"):
                for key, value in (
                    LatencyModel.model_validate(self.latency.model_dump() | data)
                    .model_dump()
                    .items()
                ):
                    setattr(self.latency, key, value)
            return self.latency.model_dump()
        if path == "lag":
            if method in ("PUT", "POST"):
                with moto_gaps.STATE.lock:
                    moto_gaps.STATE.lag_seconds.update({k: float(v) for k, v in data.items()})
            return dict(moto_gaps.STATE.lag_seconds)
        if path == "outage":
            if method in ("PUT", "POST"):
                expires = data.get("expires_in")
                self.set_outage(str(data["region"]), bool(data["down"]), float(data.get("hang", 0)),
                                None if expires is None else float(expires))  # fmt: skip
            return {"down": dict(self.outages), "endpoints": dict(self.region_urls)}
        if path == "quota":
            if method in ("PUT", "POST"):
                burst = data.get("burst")
                self.quotas.set(str(data["service"]), float(data["rate"]),
                                None if burst is None else float(burst))  # fmt: skip
            return self.quotas.state()
        if path == "reset":
            self.quotas.clear()
            reset_moto()
            moto_gaps.reset()
            self.ext.reset()
            self.faults.clear()
            self.calls.clear()
            for region in list(self.outages):
                self.set_outage(region, False)
            return {"reset": True}
        raise LookupError(f"no such sandbox endpoint: {method} /_sandbox/{path}")

    def set_outage(
        self, region: str, down: bool, hang: float = 0.0, expires_in: float | None = None
    ) -> None:
        """Take a region's endpoint down (refusing connections, or hanging `hang` seconds then
        failing every call), or bring it back; with `expires_in`, it comes back by itself."""
        if region not in self.region_urls:
            raise LookupError(f"no AWS endpoint for region {region!r}")
        if hang < 0:
            raise ValueError(f"hang must be 0 or more seconds (got {hang:g})")
        if expires_in is not None and expires_in <= 0:
            raise ValueError("expires_in must be more than 0 seconds")
        timer = self.lifts.pop(region, None)
        if timer is not None:
            timer.cancel()
        if down and expires_in is not None:
            timer = threading.Timer(expires_in, self.set_outage, args=(region, False))
            timer.daemon = True
            timer.start()
            self.lifts[region] = timer
        if down:
            self.outages[region] = hang
            moto_gaps.STATE.down_regions.add(region)
            if hang <= 0:
                self.listeners.stop(region)
            else:  # held, then failed: the endpoint accepts connections (again)
                self.listeners.start(region)
        else:
            self.outages.pop(region, None)
            moto_gaps.STATE.down_regions.discard(region)
            self.listeners.start(region)


class Listeners:
    """The per-region listeners of the app (started, stopped and restarted on their ports)."""

    def __init__(self, app: SandboxAWS) -> None:
        self.app = app
        self.host = "127.0.0.1"
        self.ports: dict[str, int] = {}
        self.servers: dict[str, Listener] = {}
        self.lock = threading.Lock()

    def start(self, region: str) -> None:
        with self.lock:
            if region not in self.servers:
                port = self.ports[region]
                self.servers[region] = Listener(self.app, self.host, port, f"aws-{region}")

    def stop(self, region: str) -> None:
        with self.lock:
            server = self.servers.pop(region, None)
        if server is not None:
            server.stop()


def _status_line(status: int) -> str:
    from http import HTTPStatus

    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def _publisher(stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        try:
            moto_gaps.publish_lag_metrics()
        except Exception:  # a metric hiccup must never take the server down
            continue


def start_dns(host: str, port: int) -> None:
    """Serve Route 53's data plane (the hosted zones' answers) on host:port, UDP and TCP, with
    health checks evaluated in the background as Route 53's checkers do."""
    from orchestrator.sandbox.aws.dns import DnsServer, HealthCache, Route53Answers

    health = HealthCache(
        lambda: moto_gaps.route53_backend().health_checks,
        lambda hc: moto_gaps.probe(hc)[0],
    )
    health.start()
    DnsServer(Route53Answers(moto_gaps.route53_backend, health.healthy), host, port).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--region-port", action="append", default=[], metavar="REGION=PORT",
        help="a region's own endpoint (repeatable)",
    )  # fmt: skip
    parser.add_argument("--dns-port", type=int, default=0, help="DNS (UDP and TCP); 0: none")
    parser.add_argument(
        "--kube-endpoint", action="append", default=[], metavar="REGION=URL",
        help="where a region's EKS clusters are served (its Kubernetes stand-in's secure port)",
    )  # fmt: skip
    parser.add_argument("--kube-ca", default="", help="their CA certificate (PEM file)")
    parser.add_argument("--latency", default="{}", help="LatencyModel as JSON")
    parser.add_argument("--metrics-interval", type=float, default=2.0)
    parser.add_argument("--tag", default="", help="marker to recognise the process (ignored)")
    args = parser.parse_args(argv)
    app = SandboxAWS(LatencyModel.model_validate(json.loads(args.latency)))
    ca = base64.b64encode(Path(args.kube_ca).read_bytes()).decode() if args.kube_ca else ""
    for spec in args.kube_endpoint:
        region, url = spec.split("=", 1)
        moto_gaps.STATE.kube_endpoints[region] = (url, ca)
    server = Listener(app, args.host, args.port, "aws-main")
    app.base_url = f"http://{args.host}:{server.port}"
    app.listeners.host = args.host
    for spec in args.region_port:
        region, port = spec.split("=", 1)
        app.listeners.ports[region] = int(port)
        app.region_urls[region] = f"http://{args.host}:{port}"
        app.port_regions[port] = region
        app.listeners.start(region)
    if args.dns_port:
        start_dns(args.host, args.dns_port)
    stop = threading.Event()
    threading.Thread(target=_publisher, args=(stop, args.metrics_interval), daemon=True).start()
    print(f"aws sandbox listening on {app.base_url}", flush=True)
    try:
        server.wait()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
