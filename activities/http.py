"""HTTP checks: N requests to an endpoint, with status, body, latency and success-rate rules."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Literal

from pydantic import Field, model_validator

from activities.base import Check, State, StepContext, StepParams, StepType
from activities.errors import StepError


class HttpCheckParams(StepParams):
    url: str | None = Field(default=None, description="Full URL (or use endpoint + path).")
    endpoint: str | None = Field(
        default=None, description="A named endpoint of the configuration, resolved per region."
    )
    path: str = Field(default="/", description="Appended to the endpoint's URL.")
    region: str | None = Field(
        default=None, description="Region of the endpoint (default: step's)."
    )
    method: Literal["GET", "POST", "HEAD"] = "GET"
    requests: int = Field(default=5, ge=1, le=1000)
    expect_status: list[int] = Field(default_factory=lambda: [200])
    body_contains: str | None = None
    min_success_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    max_latency_ms: float | None = Field(default=None, gt=0, description="Bound on p95 latency.")
    request_timeout: float = Field(default=5.0, gt=0)

    @model_validator(mode="after")
    def _target(self) -> HttpCheckParams:
        if (self.url is None) == (self.endpoint is None):
            raise ValueError("give exactly one of url or endpoint")
        return self


class HttpCheck(StepType[HttpCheckParams]):
    """Sends N requests and checks status, body, p95 latency and success rate (polled until met)."""

    name = "http_check"
    poll_interval = 0.5

    def describe(self, params: HttpCheckParams) -> str:
        target = params.url or f"{params.endpoint}{params.path}"
        return (
            f"{params.requests}x {params.method} {target}: status in {params.expect_status}, "
            f"success >= {params.min_success_rate:.0%}"
        )

    def target(self, ctx: StepContext, params: HttpCheckParams) -> str:
        if params.url:
            return params.url
        assert params.endpoint is not None
        base = ctx.clients.endpoint(params.endpoint, ctx.region_for(params))
        return base.rstrip("/") + "/" + params.path.lstrip("/")

    def verify(self, ctx: StepContext, params: HttpCheckParams, snapshot: State) -> Check:
        url = self.target(ctx, params)
        opener = ctx.clients.http()
        good = 0
        latencies: list[float] = []
        last = ""
        for _ in range(params.requests):
            started = time.monotonic()
            status, body = _request(opener, url, params)
            latencies.append((time.monotonic() - started) * 1000)
            ok = status in params.expect_status and (
                params.body_contains is None or params.body_contains in body
            )
            good += ok
            if not ok:
                last = f"got {status or 'no answer'}" + (f": {body[:80]}" if body else "")
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
        rate = good / params.requests
        observed = {"success_rate": rate, "p95_ms": round(p95, 1), "url": url}
        if rate < params.min_success_rate:
            return Check(
                ok=False,
                detail=f"{url}: success {rate:.0%} < {params.min_success_rate:.0%} ({last})",
                observed=observed,
            )
        if params.max_latency_ms is not None and p95 > params.max_latency_ms:
            return Check(
                ok=False,
                detail=f"{url}: p95 {p95:.0f} ms > {params.max_latency_ms:.0f} ms",
                observed=observed,
            )
        return Check(
            ok=True, detail=f"{url}: success {rate:.0%}, p95 {p95:.0f} ms", observed=observed
        )


def _request(
    opener: urllib.request.OpenerDirector, url: str, params: HttpCheckParams
) -> tuple[int, str]:
    return send(opener, url, params.method, params.request_timeout)


def send(
    opener: urllib.request.OpenerDirector,
    url: str,
    method: str = "GET",
    timeout: float = 5.0,
    body: bytes | None = None,
    limit: int = 4096,
) -> tuple[int, str]:
    """One request; (status, the first `limit` bytes of the body), status 0 when nothing
    answered."""
    data = body if body is not None else (b"{}" if method in ("POST", "PUT") else None)
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read(limit).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(limit).decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


class WriteDivergenceParams(StepParams):
    endpoint: str = Field(default="app", description="The application's named endpoint.")
    path: str = Field(
        default="/_orders", description="Reports the writes it took and those it replicated."
    )
    failed_region: str = Field(description="The region that failed (e.g. ${{ from_region }}).")
    kept_region: str = Field(description="The region that took over (e.g. ${{ to_region }}).")
    request_timeout: float = Field(default=5.0, gt=0)


class WriteDivergence(StepType[WriteDivergenceParams]):
    """Read-only: the writes a failed region accepted that never reached the region that took
    over (lost in an unplanned failover), from the application's own account of them: GET PATH
    answers {"accepted": [{"id", "at"}], "replicated": [{"id", "at"}]}. Reports how many were
    lost and the window they span (the RPO measured)."""

    name = "write_divergence"

    def describe(self, params: WriteDivergenceParams) -> str:
        return f"writes {params.failed_region} accepted that never reached {params.kept_region}"

    def regions_used(self, params: WriteDivergenceParams, step_region: str | None) -> set[str]:
        return {params.failed_region, params.kept_region}

    def _writes(self, ctx: StepContext, p: WriteDivergenceParams, region: str) -> dict[str, Any]:
        base = ctx.clients.endpoint(p.endpoint, region)
        status, body = send(ctx.clients.http(), base.rstrip("/") + p.path, "GET",
                            p.request_timeout, limit=64 * 1024 * 1024)  # fmt: skip
        if status != 200:
            raise StepError(
                "ServiceUnavailable", f"{region} {p.path}: HTTP {status or 'no answer'}"
            )
        data: dict[str, Any] = json.loads(body or "{}")
        return data

    def verify(self, ctx: StepContext, params: WriteDivergenceParams, snapshot: State) -> Check:
        failed = self._writes(ctx, params, params.failed_region).get("accepted", [])
        kept = self._writes(ctx, params, params.kept_region).get("replicated", [])
        received = {w["id"] for w in kept}
        lost = [w for w in failed if w["id"] not in received]
        # The data lost spans from the last write the kept region has to the last one lost.
        last_kept = max((w["at"] for w in failed if w["id"] in received), default=None)
        if lost:
            first = min(w["at"] for w in lost) if last_kept is None else last_kept
            window = round(max(w["at"] for w in lost) - first, 3)
        else:
            window = 0.0
        detail = (
            f"{len(lost)} write(s) {params.failed_region} accepted never reached "
            f"{params.kept_region}: its last {window:g}s of writes are lost"
            if lost
            else f"no write lost: {params.kept_region} has all {len(failed)} of "
            f"{params.failed_region}'s"
        )
        return Check(ok=True, detail=detail,
                     observed={"lost_writes": len(lost), "lost_writes_rpo_s": window})  # fmt: skip
