"""One simulated region: its Kubernetes API stand-in and its "shop" app, in one process.

The shop app reads its cluster's state directly: it answers 503 when the region is down, refuses
writes while the `shop-flags` ConfigMap says writes are frozen or while the region's database
(the CNPG `Cluster`) is a replica, and can be given an error rate and latency (game-day faults).

Run: python -m orchestrator.sandbox.region --region us-east-1 --kube-port 6443 --app-port 8080
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import json
import random
import signal
import time
from typing import Any

from aiohttp import web

from orchestrator.runbook.durations import parse_duration
from orchestrator.sandbox.calls import CallLog
from orchestrator.sandbox.faults import FaultBook, FaultRule
from orchestrator.sandbox.k8s import seed as k8s_seed
from orchestrator.sandbox.k8s.api import KubeAPI
from orchestrator.sandbox.k8s.controller import Controller
from orchestrator.sandbox.k8s.resources import CHAOS_MESH, CNPG_CLUSTER, Registry
from orchestrator.sandbox.k8s.store import Store
from orchestrator.sandbox.latency import LatencyModel


class Region:
    """State of one region, shared by its Kubernetes API, its app and its control endpoints."""

    def __init__(
        self, name: str, active: bool, peer: str, latency: LatencyModel, history: int = 5000
    ) -> None:
        self.name, self.active, self.peer = name, active, peer
        self.history = history
        self.latency = latency
        self.faults = FaultBook()
        self.calls = CallLog("k8s")
        self.healthy = True
        self.error_rate = 0.0
        self.extra_latency_ms = 0.0
        #: When injected faults lift by themselves (time.time()), per kind: "region", "app".
        self.fault_until: dict[str, float] = {}
        self.stats = {"requests": 0, "errors": 0, "writes": 0, "writes_refused": 0}
        self._build()

    def _build(self) -> None:
        self.store = Store(Registry(), history=self.history)
        self.store.registry.register(CNPG_CLUSTER)
        for rt in CHAOS_MESH:
            self.store.registry.register(rt)
        k8s_seed.seed(self.store, self.name, self.active, self.peer)
        self.controller = Controller(self.store, self.latency)
        self.controller.settle()
        self.api = KubeAPI(self.name, self.store, self.faults, self.calls)

    def reset(self) -> None:
        """Back to the seeded state; faults, calls and app faults cleared."""
        watchers = self.store.watchers
        self._build()
        self.store.watchers = watchers
        self.faults.clear()
        self.calls.clear()
        self.healthy, self.error_rate, self.extra_latency_ms = True, 0.0, 0.0
        self.fault_until.clear()
        self.stats = dict.fromkeys(self.stats, 0)

    def _expire(self) -> None:
        """Lift injected faults whose time is up (the dead man's switch of game-day faults)."""
        now = time.time()
        if self.fault_until.get("region", now + 1) <= now:
            self.healthy = True
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
        for obj in self.store.list(rt, "shop", lambda o: True)[0]:
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
        return web.json_response({"region": self.name, "accepted": True}, status=201)

    async def app_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"region": self.name, **self.stats})

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
            result = self._admin(request.method, path, data, request.query.get("since"))
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if result is None:
            return web.json_response({"error": f"no such endpoint /_sandbox/{path}"}, status=404)
        return web.json_response(result)

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
                self._until("region", None if self.healthy else data)
            return {
                "region": self.name,
                "healthy": self.healthy,
                "until": self.fault_until.get("region"),
            }
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


async def serve(
    region: str,
    active: bool,
    peer: str,
    host: str,
    kube_port: int,
    app_port: int,
    latency: LatencyModel,
    history: int,
) -> None:
    state = Region(region, active, peer, latency, history)

    kube = web.Application(client_max_size=8 * 1024 * 1024)
    kube.router.add_route("*", "/_sandbox/{path:.*}", state.admin)

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
        }.get(request.path)
        if handler is None:
            return web.json_response(
                {"kind": "Status", "code": 404, "reason": "NotFound"}, status=404
            )
        return await handler(request)

    for path in ("/version", "/healthz", "/readyz", "/livez", "/api", "/apis"):
        kube.router.add_get(path, api_call)
    kube.router.add_route("*", "/api/{tail:.*}", api_dispatch)
    kube.router.add_route("*", "/apis/{tail:.*}", api_dispatch)

    app = web.Application()
    app.router.add_get("/health", state.health)
    app.router.add_get("/", state.handle_request)
    app.router.add_get("/api/request", state.handle_request)
    app.router.add_post("/api/orders", state.handle_write)
    app.router.add_get("/_stats", state.app_stats)

    runners = []
    for application, port in ((kube, kube_port), (app, app_port)):
        runner = web.AppRunner(application, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    print(
        f"region {region}: kube-apiserver on {host}:{kube_port}, app on {host}:{app_port}",
        flush=True,
    )

    async def control_loop() -> None:
        while True:
            with contextlib.suppress(Exception):
                state.controller.reconcile()
            await asyncio.sleep(state.controller.interval)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(control_loop())
    await stop.wait()
    task.cancel()
    for runner in runners:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--region", required=True)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--active", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kube-port", type=int, required=True)
    parser.add_argument("--app-port", type=int, required=True)
    parser.add_argument("--latency", default="{}")
    parser.add_argument("--watch-history", type=int, default=5000, help="events kept for watches")
    parser.add_argument("--tag", default="", help="marker to recognise the process (ignored)")
    args = parser.parse_args(argv)
    latency = LatencyModel.model_validate(json.loads(args.latency))
    asyncio.run(
        serve(
            args.region,
            args.active,
            args.peer,
            args.host,
            args.kube_port,
            args.app_port,
            latency,
            args.watch_history,
        )
    )


if __name__ == "__main__":
    main()
