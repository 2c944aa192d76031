"""One simulated region: its Kubernetes API stand-in and its "shop" app, in one process, and the
region's control endpoints (`/_sandbox/...`) on a port of their own.

The shop app reads its cluster's state directly: it answers 503 when the region is down, refuses
writes while the `shop-flags` ConfigMap says writes are frozen or while the region's database
(the CNPG `Cluster`) is a replica, and can be given an error rate and latency (game-day faults).

The Kubernetes API answers on two ports: the plain HTTP one (kube-apiserver's old insecure
port: no authentication, what the sandbox's kubeconfig uses) and, given a certificate, a secure
one (HTTPS) that authenticates every request as an API server does (`orchestrator.sandbox.k8s.auth`:
static, ServiceAccount and EKS tokens; configured at `/_sandbox/auth`). The region's EKS cluster
(DescribeCluster on the sandbox's AWS server) has the secure port as its endpoint.

A region down is one of two outages: `app` (its app answers 503, so its health check fails) or
`full` (its Kubernetes API and its app stop listening: connections are refused; with a hang, they
are accepted and answered by nothing for that long, then dropped). The control endpoints keep
answering, so the region can be brought back.

Run: python -m orchestrator.sandbox.region --region us-east-1 --kube-port 6443 --app-port 8080 \
        --control-port 8090 [--kube-tls-port 6444 --tls-cert kube-tls.crt --tls-key kube-tls.key]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import random
import signal
import ssl
import time
from typing import Any

from aiohttp import web

from orchestrator.runbook.durations import parse_duration
from orchestrator.sandbox.calls import CallLog
from orchestrator.sandbox.faults import FaultBook, FaultRule
from orchestrator.sandbox.k8s import seed as k8s_seed
from orchestrator.sandbox.k8s.api import KubeAPI
from orchestrator.sandbox.k8s.auth import Authenticator
from orchestrator.sandbox.k8s.controller import Controller
from orchestrator.sandbox.k8s.resources import CHAOS_MESH, CNPG_CLUSTER, Registry
from orchestrator.sandbox.k8s.store import Store
from orchestrator.sandbox.latency import LatencyModel

REPLICATION_INTERVAL = 0.1  # seconds at least between two pulls of the peer's orders
#: How long a pull waits for an order when the source has none new (a long poll: an idle sandbox
#: pulls once a second, not ten times, and an order still arrives at once).
REPLICATION_WAIT = 1.0
IDLE_RESYNC = 1.0  # seconds between two reconciles when no change is in progress


class Region:
    """State of one region, shared by its Kubernetes API, its app and its control endpoints."""

    def __init__(
        self,
        name: str,
        active: bool,
        peer: str,
        latency: LatencyModel,
        history: int = 5000,
        regions: tuple[str, ...] = (),
    ) -> None:
        self.name, self.active, self.peer = name, active, peer
        #: Every region of the sandbox (this one and its peer at least), in its order.
        self.regions = tuple(dict.fromkeys((*regions, name, peer)))
        self.history = history
        self.latency = latency
        self.faults = FaultBook()
        self.calls = CallLog("k8s")
        self.healthy = True
        self.outage: str | None = None  # None | "app" | "full"
        self._lift: asyncio.TimerHandle | None = None  # brings an expiring outage to an end
        self.hang = 0.0  # with a full outage: seconds a connection waits before it is dropped
        self.sites: Sites | None = None
        self.error_rate = 0.0
        self.extra_latency_ms = 0.0
        #: When injected faults lift by themselves (time.time()), per kind: "region", "app".
        self.fault_until: dict[str, float] = {}
        self.stats = {"requests": 0, "errors": 0, "writes": 0, "writes_refused": 0}
        #: The shop's orders: those this region accepted as the primary, and those it received
        #: from the peer while a replica (replication pulls the peer's, `replication_lag` late).
        self.accepted: list[dict[str, Any]] = []
        self.replicated: dict[str, dict[str, Any]] = {}
        self.replication_lag = 0.0
        #: Set (and replaced) when an order is accepted: wakes the replicas' long polls.
        self._arrival = asyncio.Event()
        self.peer_app = ""
        #: Every other region's app (replication pulls from the one the database follows).
        self.apps: dict[str, str] = {}
        #: Who the secure port lets in: configuration, not state (a reset keeps it).
        self.auth = Authenticator()
        self._build()

    def _build(self) -> None:
        self.store = Store(Registry(), history=self.history)
        self.store.registry.register(CNPG_CLUSTER)
        for rt in CHAOS_MESH:
            self.store.registry.register(rt)
        k8s_seed.seed(self.store, self.name, self.active, self.peer, self.regions)
        self.controller = Controller(self.store, self.latency)
        self.controller.settle()
        self.api = KubeAPI(
            self.name, self.store, self.faults, self.calls, self.controller.for_request
        )

    def reset(self) -> None:
        """Back to the seeded state; faults, calls and app faults cleared."""
        watchers = self.store.watchers
        self._build()
        self.store.watchers = watchers
        self.faults.clear()
        self.calls.clear()
        self.healthy, self.error_rate, self.extra_latency_ms = True, 0.0, 0.0
        self.outage, self.hang = None, 0.0
        self.accepted.clear()
        self.replicated.clear()
        self.replication_lag = 0.0
        self.fault_until.clear()
        self.stats = dict.fromkeys(self.stats, 0)

    def _expire(self) -> None:
        """Lift injected faults whose time is up (the dead man's switch of game-day faults)."""
        now = time.time()
        if self.fault_until.get("region", now + 1) <= now:
            self.healthy = True
            if self.outage == "app":
                self.outage = None
            del self.fault_until["region"]
        if self.fault_until.get("app", now + 1) <= now:
            self.error_rate, self.extra_latency_ms = 0.0, 0.0
            del self.fault_until["app"]

    def _until(self, kind: str, data: Any) -> None:
        expires = (data or {}).get("expires_in")
        if expires is None:
            self.fault_until.pop(kind, None)
        else:
            self.fault_until[kind] = time.time() + float(expires)

    # ------------------------------------------------------------------------------ app
    def _flag(self, key: str) -> str:
        cm = self.store.find(self.store.registry.by_kind("ConfigMap"), "shop", "shop-flags")  # type: ignore[arg-type]
        return ((cm or {}).get("data") or {}).get(key, "")

    def _db_primary(self) -> bool:
        db = self.store.find(CNPG_CLUSTER, "shop", "shop-db")
        status = (db or {}).get("status") or {}
        return (
            status.get("replicaCluster") is False
            and status.get("phase") == "Cluster in healthy state"
        )

    def _http_chaos(self, path: str) -> tuple[str, float, bool]:
        """The injected HTTPChaos objects (namespace shop) matching a path: (name, delay, abort)."""
        rt = self.store.registry.by_kind("HTTPChaos")
        if rt is None:
            return "", 0.0, False
        for obj in sorted(self.store.live(rt, "shop"), key=lambda o: o["metadata"]["name"]):
            conditions = {c.get("type"): c.get("status")
                          for c in (obj.get("status") or {}).get("conditions") or []}  # fmt: skip
            spec = obj.get("spec") or {}
            if conditions.get("AllInjected") != "True":
                continue
            if not fnmatch.fnmatchcase(path, spec.get("path") or "*"):
                continue
            delay = parse_duration(spec["delay"]).total_seconds() if spec.get("delay") else 0.0
            return obj["metadata"]["name"], delay, bool(spec.get("abort"))
        return "", 0.0, False

    async def _serve_fault(self, path: str = "/") -> web.Response | None:
        self._expire()
        self.stats["requests"] += 1
        if self.extra_latency_ms:
            await asyncio.sleep(self.extra_latency_ms / 1000)
        chaos, delay, abort = self._http_chaos(path)
        if delay:
            await asyncio.sleep(delay)
        if abort:
            self.stats["errors"] += 1
            return web.json_response(
                {"error": f"aborted by HTTPChaos {chaos}", "region": self.name}, status=503
            )
        if not self.healthy:
            self.stats["errors"] += 1
            return web.json_response({"error": "region down", "region": self.name}, status=503)
        if self.error_rate and random.random() < self.error_rate:
            self.stats["errors"] += 1
            return web.json_response({"error": "injected error", "region": self.name}, status=500)
        return None

    async def health(self, request: web.Request) -> web.Response:
        self._expire()
        if not self.healthy:
            return web.json_response({"status": "down", "region": self.name}, status=503)
        return web.json_response({"status": "ok", "region": self.name})

    async def handle_request(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        failed = await self._serve_fault(request.path)
        if failed is not None:
            return failed
        return web.json_response(
            {
                "region": self.name,
                "ok": True,
                "maintenance": self._flag("maintenance") == "true",
                "elapsed_ms": round((time.monotonic() - started) * 1000, 2),
            }
        )

    async def handle_write(self, request: web.Request) -> web.Response:
        failed = await self._serve_fault(request.path)
        if failed is not None:
            return failed
        self.stats["writes"] += 1
        if self._flag("writes-frozen") == "true":
            self.stats["writes_refused"] += 1
            return web.json_response({"error": "writes frozen", "region": self.name}, status=503)
        if not self._db_primary():
            self.stats["writes_refused"] += 1
            return web.json_response(
                {"error": "database is a read-only replica here", "region": self.name}, status=503
            )
        order = {"id": f"{self.name}-{len(self.accepted) + 1}", "at": time.time()}
        self.accepted.append(order)
        arrived, self._arrival = self._arrival, asyncio.Event()
        arrived.set()
        return web.json_response({"region": self.name, "accepted": True, **order}, status=201)

    async def app_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"region": self.name, **self.stats})

    async def orders(self, request: web.Request) -> web.Response:
        """The orders this region accepted (as the primary) and those it replicated; with
        ?after=AT, only the accepted ones after that time (what a replica pulls); with ?wait=S,
        when there are none yet, the answer waits up to S seconds (at most 5) for one."""
        after = float(request.query.get("after", "-1"))
        wait = min(float(request.query.get("wait", "0")), 5.0)
        if wait > 0 and not any(o["at"] > after for o in self.accepted):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrival.wait(), timeout=wait)
        return web.json_response(
            {
                "region": self.name,
                "accepted": [o for o in self.accepted if o["at"] > after],
                "replicated": sorted(self.replicated.values(), key=lambda o: o["at"]),
            }
        )

    def _source_app(self) -> str:
        """The app of the region whose database this one's follows (the CNPG `Cluster`'s
        spec.replica.primary, `shop-db-<region>`), else the peer's."""
        db = self.store.find(CNPG_CLUSTER, "shop", "shop-db")
        primary = str((((db or {}).get("spec") or {}).get("replica") or {}).get("primary") or "")
        region = primary.removeprefix(f"{k8s_seed.DB_CLUSTER}-")
        return self.apps.get(region) or self.peer_app

    async def replicate(self) -> None:
        """While this region's database is a replica, pull the orders of the region it follows
        (the peer's with two regions) that are older than the replication lag. A primary that
        does not answer replicates nothing: what it took last is lost if it never comes back
        before a promotion here."""
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=REPLICATION_WAIT + 1)
        pause = REPLICATION_INTERVAL
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                await asyncio.sleep(pause)
                pause = REPLICATION_INTERVAL
                source = self._source_app()
                if not source or self._db_primary():
                    continue
                last = max((o["at"] for o in self.replicated.values()), default=-1.0)
                params = {"after": last, "wait": REPLICATION_WAIT}
                with contextlib.suppress(Exception):
                    async with http.get(f"{source}/_orders", params=params) as r:
                        data = await r.json()
                    if self._db_primary() or self._source_app() != source:
                        continue  # promoted, or following another, while the answer came
                    horizon = time.time() - self.replication_lag
                    pending = []
                    for order in data.get("accepted", []):
                        if order["at"] <= horizon:
                            self.replicated[order["id"]] = order
                        else:
                            pending.append(order["at"])
                    if pending:  # the next pull when the first of them is old enough (a
                        # second at most: the lag may be changed meanwhile)
                        pause = min(max(pause, min(pending) - horizon), REPLICATION_WAIT)

    # ---------------------------------------------------------------------------- control
    async def admin(self, request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        data: Any = {}
        if request.can_read_body:
            raw = await request.read()
            try:
                data = json.loads(raw) if raw else {}
            except ValueError as exc:
                return web.json_response({"error": f"bad JSON: {exc}"}, status=400)
        try:
            if path == "outage" and request.method in ("PUT", "POST"):
                expires = data.get("expires_in")
                await self.set_outage(data.get("outage"), float(data.get("hang", 0)),
                                      None if expires is None else float(expires))  # fmt: skip
            if path == "reset" and request.method == "POST":
                await self.set_outage(None)
            result = self._admin(request.method, path, data, request.query.get("since"))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if result is None:
            return web.json_response({"error": f"no such endpoint /_sandbox/{path}"}, status=404)
        return web.json_response(result)

    def _region_state(self) -> dict[str, Any]:
        return {
            "region": self.name,
            "healthy": self.healthy,
            "outage": self.outage,
            "hang": self.hang,
            "until": self.fault_until.get("region"),
        }

    async def set_outage(
        self, outage: str | None, hang: float = 0.0, expires_in: float | None = None
    ) -> None:
        """`app`: the app answers 503; `full`: the Kubernetes API and the app stop listening (or,
        with a hang, hold every connection that long, then drop it); None: all back up. With
        `expires_in`, the region comes back by itself after that many seconds (the dead man's
        switch of a game day's outage)."""
        if outage not in (None, "app", "full"):
            raise ValueError("outage must be app, full or null")
        if hang < 0:
            raise ValueError("hang must be 0 or more seconds")
        if expires_in is not None and expires_in <= 0:
            raise ValueError("expires_in must be more than 0 seconds")
        self.outage, self.hang = outage, (hang if outage == "full" else 0.0)
        self.healthy = outage is None
        self.fault_until.pop("region", None)
        if self._lift is not None:
            self._lift.cancel()
            self._lift = None
        if outage is not None and expires_in is not None:
            self.fault_until["region"] = time.time() + expires_in
            self._lift = asyncio.get_running_loop().call_later(
                expires_in, lambda: asyncio.ensure_future(self.set_outage(None))
            )
        if self.sites is not None:
            if outage == "full" and hang <= 0:
                await self.sites.stop()
            else:
                await self.sites.start()

    @web.middleware
    async def blackhole(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """A fully down region with a hang: the connection waits, then is dropped unanswered."""
        if self.outage == "full" and self.hang > 0:
            await asyncio.sleep(self.hang)
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable()
        response: web.StreamResponse = await handler(request)
        return response

    def _admin(self, method: str, path: str, data: Any, since: str | None) -> Any:
        self._expire()
        if path == "health":
            return {"ok": True, "region": self.name, "resourceVersion": self.store.rv}
        if path == "faults":
            if method == "POST":
                return self.faults.add(FaultRule.model_validate(data)).model_dump()
            if method == "DELETE":
                return {"cleared": self.faults.clear((data or {}).get("id"))}
            return [r.model_dump() for r in self.faults.list()]
        if path == "calls":
            if method == "DELETE":
                self.calls.clear()
                return {"cleared": True}
            return [c.model_dump() for c in self.calls.list(float(since) if since else None)]
        if path == "region":
            if method in ("PUT", "POST"):
                self.healthy = bool(data["healthy"])
                if self.outage in (None, "app"):
                    self.outage = None if self.healthy else "app"
                self._until("region", None if self.healthy else data)
            return self._region_state()
        if path == "outage":
            return self._region_state()
        if path == "auth":
            if method in ("PUT", "POST"):
                self.auth.configure(data or {})
            return self.auth.describe()
        if path == "app":
            if method in ("PUT", "POST"):
                rate = float(data.get("error_rate", self.error_rate))
                if not 0 <= rate <= 1:
                    raise ValueError("error_rate must be between 0 and 1")
                self.error_rate = rate
                self.extra_latency_ms = float(data.get("latency_ms", self.extra_latency_ms))
                faulty = self.error_rate > 0 or self.extra_latency_ms > 0
                self._until("app", data if faulty else None)
            return {
                "error_rate": self.error_rate,
                "latency_ms": self.extra_latency_ms,
                "until": self.fault_until.get("app"),
            }
        if path == "replication":
            if method in ("PUT", "POST"):
                self.replication_lag = float(data.get("lag", self.replication_lag))
            return {"lag": self.replication_lag, "replicated": len(self.replicated),
                    "accepted": len(self.accepted)}  # fmt: skip
        if path == "latency":
            if method in ("PUT", "POST"):
                merged = LatencyModel.model_validate(self.latency.model_dump() | data)
                for key, value in merged.model_dump().items():
                    setattr(self.latency, key, value)
            return self.latency.model_dump()
        if path == "reset" and method == "POST":
            self.reset()
            return {"reset": True}
        return None


class Sites:
    """The region's listeners that an outage takes down (its Kubernetes API, both ports, and its
    app); a port with a TLS context serves HTTPS."""

    def __init__(
        self,
        host: str,
        runners: dict[int, web.AppRunner],
        tls: dict[int, ssl.SSLContext] | None = None,
    ) -> None:
        self.host, self.runners, self.tls = host, runners, tls or {}
        self.sites: dict[int, web.TCPSite] = {}

    async def start(self) -> None:
        for port, runner in self.runners.items():
            if port not in self.sites:
                site = web.TCPSite(
                    runner, self.host, port, reuse_address=True, ssl_context=self.tls.get(port)
                )
                await site.start()
                self.sites[port] = site

    async def stop(self) -> None:
        for port in list(self.sites):
            await self.sites.pop(port).stop()


async def serve(
    region: str,
    active: bool,
    peer: str,
    host: str,
    kube_port: int,
    app_port: int,
    control_port: int,
    latency: LatencyModel,
    history: int,
    peer_app: str = "",
    kube_tls_port: int = 0,
    tls_cert: str = "",
    tls_key: str = "",
    apps: dict[str, str] | None = None,
) -> None:
    apps = dict(apps or {})
    state = Region(region, active, peer, latency, history, (region, *apps))
    state.peer_app = peer_app
    state.apps = apps

    control = web.Application()
    control.router.add_route("*", "/_sandbox/{path:.*}", state.admin)
    kube = web.Application(
        client_max_size=8 * 1024 * 1024, middlewares=[state.blackhole, state.auth.middleware]
    )
    kube.router.add_route("*", "/_sandbox/{path:.*}", state.admin)  # (older clients)

    # reset() rebuilds the API object: route through whichever is current.
    async def api_dispatch(request: web.Request) -> web.StreamResponse:
        return await state.api.dispatch(request)

    async def api_call(request: web.Request) -> web.StreamResponse:
        handler = {
            "/version": state.api.version,
            "/healthz": state.api.ok,
            "/readyz": state.api.ok,
            "/livez": state.api.ok,
            "/api": state.api.api_versions,
            "/apis": state.api.api_groups,
        }.get(request.path.rstrip("/") or "/")
        if handler is None:
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound"}, status=404
            )
        return await handler(request)

    for path in ("/version", "/healthz", "/readyz", "/livez", "/api", "/apis"):
        kube.router.add_get(path, api_call)
        kube.router.add_get(path + "/", api_call)  # as kube-apiserver (the client asks /version/)
    kube.router.add_route("*", "/api/{tail:.*}", api_dispatch)
    kube.router.add_route("*", "/apis/{tail:.*}", api_dispatch)

    app = web.Application(middlewares=[state.blackhole])
    app.router.add_get("/health", state.health)
    app.router.add_get("/", state.handle_request)
    app.router.add_get("/api/request", state.handle_request)
    app.router.add_post("/api/orders", state.handle_write)
    app.router.add_get("/_stats", state.app_stats)
    app.router.add_get("/_orders", state.orders)

    runners: dict[int, web.AppRunner] = {}
    for application, port in ((kube, kube_port), (app, app_port), (control, control_port)):
        runner = web.AppRunner(application, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        runners[port] = runner
    await web.TCPSite(runners.pop(control_port), host, control_port).start()
    tls: dict[int, ssl.SSLContext] = {}
    if kube_tls_port:  # the secure port: the same API, over TLS, authenticated
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
        tls[kube_tls_port] = context
        runners[kube_tls_port] = runners[kube_port]
    state.sites = Sites(host, runners, tls)
    await state.sites.start()
    secure = f" (secure port {host}:{kube_tls_port})" if kube_tls_port else ""
    print(
        f"region {region}: kube-apiserver on {host}:{kube_port}{secure}, app on {host}:{app_port}, "
        f"control on {host}:{control_port}",
        flush=True,
    )

    busy = asyncio.Event()
    state.controller.on_busy = busy.set  # (the API's requests reconcile on this loop too)

    async def control_loop() -> None:
        """Tick while a change is in progress; otherwise wait for a write to start one (and
        tick now and then all the same, as a real controller resyncs)."""
        while True:
            with contextlib.suppress(Exception):
                state.controller.reconcile()
            if state.controller.busy:
                await asyncio.sleep(state.controller.interval)
                continue
            busy.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(busy.wait(), timeout=IDLE_RESYNC)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(control_loop())
    replication = asyncio.create_task(state.replicate())
    await stop.wait()
    task.cancel()
    replication.cancel()
    await state.sites.stop()
    for runner in set(runners.values()):
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--region", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--active", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kube-port", type=int, required=True)
    parser.add_argument("--app-port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--peer-app", default="", help="the peer region's app (replication)")
    parser.add_argument(
        "--region-app",
        action="append",
        default=[],
        metavar="REGION=URL",
        help="every other region's app, in the sandbox's order (replication "
        "follows the region the database names as its primary)",
    )
    parser.add_argument("--kube-tls-port", type=int, default=0, help="the secure port (HTTPS)")
    parser.add_argument("--tls-cert", default="", help="its certificate (PEM)")
    parser.add_argument("--tls-key", default="", help="its private key (PEM)")
    parser.add_argument("--latency", default="{}")
    parser.add_argument("--watch-history", type=int, default=5000, help="events kept for watches")
    parser.add_argument("--tag", default="", help="marker to recognise the process (ignored)")
    args = parser.parse_args(argv)
    latency = LatencyModel.model_validate(json.loads(args.latency))
    apps = dict(item.split("=", 1) for item in args.region_app)
    asyncio.run(
        serve(
            args.region,
            args.active,
            args.peer,
            args.host,
            args.kube_port,
            args.app_port,
            args.control_port,
            latency,
            args.watch_history,
            args.peer_app,
            args.kube_tls_port,
            args.tls_cert,
            args.tls_key,
            apps,
        )
    )


if __name__ == "__main__":
    main()
