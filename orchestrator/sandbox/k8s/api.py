"""The HTTP face of the Kubernetes API stand-in (aiohttp), for the real client and kubectl.

Discovery (/version, /api, /apis, resource lists), CRUD with the verbs' real status codes,
list + watch (resume from a resourceVersion, timeoutSeconds, 410 Expired), the /scale and /status
subresources, three patch types, dryRun=All, Table output for kubectl, `Status` error bodies.
Faults (`k8s:<region>:<verb>:<resource>`) fire before or after the write is committed; every
mutating request is recorded in the call log.

SelfSubjectAccessReview (authorization.k8s.io/v1) answers whether the caller may do something:
allowed, unless a fault rule denies that verb on that resource (error `Forbidden` or
`AccessDenied`, `k8s:<region>:<verb>:<resource>`, any `when`): the same rule that makes the call
itself answer 403, so a review and the call agree, as RBAC makes them agree. A review does not
use up the rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from orchestrator.sandbox.calls import CallLog
from orchestrator.sandbox.faults import FaultBook, FaultRule
from orchestrator.sandbox.k8s.patch import json_patch, merge_patch
from orchestrator.sandbox.k8s.resources import ALL_VERBS, ResourceType
from orchestrator.sandbox.k8s.selectors import SelectorError, field_selector, label_selector
from orchestrator.sandbox.k8s.selectors import selector_string as _selector_string
from orchestrator.sandbox.k8s.store import (
    MERGE,
    ApiError,
    Event,
    Store,
    Watcher,
    conflict,
    invalid,
)

FAULT_STATUS = {
    "throttling": (429, "TooManyRequests"),
    "toomanyrequests": (429, "TooManyRequests"),
    "serviceunavailable": (503, "ServiceUnavailable"),
    "accessdenied": (403, "Forbidden"),
    "forbidden": (403, "Forbidden"),
    "conflict": (409, "Conflict"),
    "timeout": (504, "Timeout"),
    "gatewaytimeout": (504, "Timeout"),
    "internalerror": (500, "InternalError"),
    "notfound": (404, "NotFound"),
}
MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
#: The API group of access reviews, and the fault errors that deny a verb (RBAC's 403).
AUTHZ_GROUP = "authorization.k8s.io"
DENYING = {"forbidden", "accessdenied", "403"}


def fault_error(rule: FaultRule) -> ApiError:
    code, reason = FAULT_STATUS.get(rule.error.lower(), (0, ""))
    if not code:
        try:
            code, reason = int(rule.error), "InternalError"
        except ValueError:
            code, reason = 500, rule.error
    return ApiError(code, reason, rule.message or f"injected by the sandbox (fault {rule.id})")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _error(err: ApiError) -> web.Response:
    headers = {"Retry-After": "1"} if err.code == 429 else None
    return _json(err.status(), err.code, headers)


class KubeAPI:
    """Routes of one simulated cluster."""

    def __init__(
        self,
        region: str,
        store: Store,
        faults: FaultBook,
        calls: CallLog,
        reconcile: Callable[[bool], None] | None = None,
    ) -> None:
        self.region, self.store, self.faults, self.calls = region, store, faults, calls
        self.started = datetime.now(UTC)
        #: The controller's reconcile, run before each request is served (False) and after each
        #: write (True), as the AWS side completes its transitions on every request: a change is
        #: seen by the controller when it is made, and a status is read as it stands at that
        #: moment, so a rollout is ready its modelled time after the write, not up to one tick of
        #: the controller's loop later (`Controller.for_request`).
        self.reconcile = reconcile

    def _reconcile(self, wrote: bool = False) -> None:
        if self.reconcile is not None:
            with contextlib.suppress(Exception):  # as the controller's own loop
                self.reconcile(wrote)

    # -------------------------------------------------------------------------- discovery
    async def ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def version(self, request: web.Request) -> web.Response:
        return _json(
            {
                "major": "1",
                "minor": "36",
                "gitVersion": "v1.36.0-failover-sandbox",
                "platform": "linux/amd64",
                "goVersion": "go1.23",
                "compiler": "gc",
                "buildDate": "2026-01-01T00:00:00Z",
                "gitCommit": "sandbox",
                "gitTreeState": "clean",
            }
        )

    async def api_versions(self, request: web.Request) -> web.Response:
        return _json(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}
                ],
            }
        )

    async def api_groups(self, request: web.Request) -> web.Response:
        groups = []
        for name, versions in self.store.registry.groups().items():
            gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
            groups.append({"name": name, "versions": gvs, "preferredVersion": gvs[0]})
        authz = [{"groupVersion": f"{AUTHZ_GROUP}/v1", "version": "v1"}]
        groups.append({"name": AUTHZ_GROUP, "versions": authz, "preferredVersion": authz[0]})
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    def _resource_list(self, group: str, version: str) -> web.Response:
        if (group, version) == (AUTHZ_GROUP, "v1"):
            return _json(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": f"{AUTHZ_GROUP}/v1",
                    "resources": [
                        {
                            "name": "selfsubjectaccessreviews",
                            "singularName": "selfsubjectaccessreview",
                            "namespaced": False,
                            "kind": "SelfSubjectAccessReview",
                            "verbs": ["create"],
                        }
                    ],
                }
            )
        types = self.store.registry.in_group_version(group, version)
        if not types:
            return _error(
                ApiError(404, "NotFound", "the server could not find the requested resource")
            )
        resources = []
        for rt in types:
            verbs = ["get", "list", "watch"] if rt.read_only else ALL_VERBS
            resources.append(
                {
                    "name": rt.plural,
                    "singularName": rt.singular,
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": verbs,
                    "shortNames": list(rt.short_names),
                }
            )
            if rt.status:
                resources.append(
                    {
                        "name": f"{rt.plural}/status",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            if rt.scale:
                resources.append(
                    {
                        "name": f"{rt.plural}/scale",
                        "singularName": "",
                        "namespaced": rt.namespaced,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    }
                )
        gv = f"{group}/{version}" if group else version
        return _json(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": resources,
            }
        )

    # --------------------------------------------------------------------------- dispatch
    def _parse(
        self, path: str
    ) -> tuple[str, str, list[str]] | None:  # (group, version, rest segments)
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api" and len(parts) >= 2:
            return "", parts[1], parts[2:]
        if parts[0] == "apis" and len(parts) >= 3:
            return parts[1], parts[2], parts[3:]
        return None

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        parsed = self._parse(request.path)
        if parsed is None:
            return _error(
                ApiError(404, "NotFound", "the server could not find the requested resource")
            )
        group, version, rest = parsed
        if not rest:
            return self._resource_list(group, version)
        if (group, version, rest) == (AUTHZ_GROUP, "v1", ["selfsubjectaccessreviews"]):
            return await self.access_review(request)
        ns: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        rt = self.store.registry.find(group, version, rest[0])
        if rt is None:
            return _error(
                ApiError(404, "NotFound", "the server could not find the requested resource")
            )
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if (
            sub not in (None, "status", "scale")
            or (sub == "status" and not rt.status)
            or (sub == "scale" and not rt.scale)
        ):
            return _error(
                ApiError(404, "NotFound", "the server could not find the requested resource")
            )
        verb = self._verb(request, name)
        resource = f"{rt.plural}/{sub}" if sub else rt.plural
        if rt.read_only and verb in MUTATING:
            return _error(ApiError(405, "MethodNotAllowed", f"{rt.plural} are read-only here"))
        if verb == "watch":
            return await self.watch(request, rt, ns)
        key = f"k8s:{self.region}:{verb}:{resource}"
        dry_run = "All" in request.query.getall("dryRun", [])
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    return _error(
                        ApiError(
                            415 if "protobuf" in request.content_type else 400,
                            "UnsupportedMediaType"
                            if "protobuf" in request.content_type
                            else "BadRequest",
                            "the body of the request was in an unknown format "
                            f"({request.content_type}); this server accepts JSON",
                        )
                    )
        fault = self.faults.take(key, self.region, "before")
        if fault is not None:
            await asyncio.sleep(fault.delay)
            if fault.error.lower() != "none":
                self._record(
                    verb,
                    resource,
                    ns,
                    name,
                    body,
                    request,
                    dry_run,
                    fault_error(fault).code,
                    fault.error,
                )
                return _error(fault_error(fault))
        self._reconcile()
        try:
            status, result = self._handle(request, verb, rt, ns or "", name, sub, body, dry_run)
            if verb in MUTATING and not dry_run:
                self._reconcile(wrote=True)
        except ApiError as err:
            self._record(verb, resource, ns, name, body, request, dry_run, err.code, None)
            return _error(err)
        except (SelectorError, ValueError, TypeError) as exc:
            self._record(verb, resource, ns, name, body, request, dry_run, 400, None)
            return _error(ApiError(400, "BadRequest", str(exc)))
        self._record(verb, resource, ns, name, body, request, dry_run, status, None)
        late = self.faults.take(key, self.region, "after")
        if late is not None:
            await asyncio.sleep(late.delay)
            if late.error.lower() != "none":
                return _error(fault_error(late))
        if (
            isinstance(result, dict)
            and "application/json;as=Table" in request.headers.get("Accept", "")
            and verb in ("get", "list")
        ):
            return _json(self._table(rt, result))
        return _json(result, status)

    # ----------------------------------------------------------------------- access review
    def denied_by(self, verb: str, resource: str) -> FaultRule | None:
        """The fault rule that denies `verb` on `resource` (plural, or plural/subresource) in
        this cluster, if any (read without using it up)."""
        key = f"k8s:{self.region}:{verb}:{resource}"
        for rule in self.faults.list():
            if rule.error.lower() in DENYING and rule.matches(key, self.region):
                return rule
        return None

    async def access_review(self, request: web.Request) -> web.Response:
        """POST selfsubjectaccessreviews: may the caller do this? (201 with the answer)."""
        if request.method != "POST":
            return _error(ApiError(405, "MethodNotAllowed", "access reviews are only created"))
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        spec = body.get("spec") if isinstance(body, dict) else None
        attrs = spec.get("resourceAttributes") if isinstance(spec, dict) else None
        other = spec.get("nonResourceAttributes") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or (attrs is None and other is None):
            return _error(
                ApiError(
                    422,
                    "Invalid",
                    "SelfSubjectAccessReview is invalid: spec: exactly one of "
                    "nonResourceAttributes or resourceAttributes must be specified",
                )
            )
        fault = self.faults.take(f"k8s:{self.region}:create:selfsubjectaccessreviews",
                                 self.region, "before")  # fmt: skip
        if fault is not None:
            await asyncio.sleep(fault.delay)
            if fault.error.lower() != "none":
                return _error(fault_error(fault))
        rule = None
        if isinstance(attrs, dict):
            resource = str(attrs.get("resource") or "")
            if attrs.get("subresource"):
                resource += f"/{attrs['subresource']}"
            rule = self.denied_by(str(attrs.get("verb") or ""), resource)
        status: dict[str, Any] = {"allowed": rule is None}
        if rule is None:
            status["reason"] = "allowed by the sandbox"
        else:
            status["denied"] = True
            status["reason"] = rule.message or f"denied by the sandbox (fault rule {rule.id})"
        return _json(
            {
                "kind": "SelfSubjectAccessReview",
                "apiVersion": f"{AUTHZ_GROUP}/v1",
                "metadata": {"creationTimestamp": None},
                "spec": spec,
                "status": status,
            },
            201,
        )

    @staticmethod
    def _verb(request: web.Request, name: str | None) -> str:
        method = request.method
        if method == "GET":
            if request.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        if method == "POST":
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if name else "deletecollection"
        return method.lower()

    def _record(
        self,
        verb: str,
        resource: str,
        ns: str | None,
        name: str | None,
        body: Any,
        request: web.Request,
        dry_run: bool,
        status: int,
        fault: str | None,
    ) -> None:
        if verb not in MUTATING or dry_run:
            return
        params: dict[str, Any] = {"namespace": ns, "name": name}
        if body is not None:
            if resource.startswith("secrets") and isinstance(body, dict):
                body = {k: ("***" if k in ("data", "stringData") else v) for k, v in body.items()}
            params["body"] = body
        if verb == "patch":
            params["patchType"] = request.content_type
        self.calls.record(self.region, f"{verb}:{resource}", params, status, fault)

    def _handle(
        self,
        request: web.Request,
        verb: str,
        rt: ResourceType,
        ns: str,
        name: str | None,
        sub: str | None,
        body: Any,
        dry_run: bool,
    ) -> tuple[int, Any]:
        store = self.store
        if verb == "list":
            match_l = label_selector(request.query.get("labelSelector"))
            match_f = field_selector(request.query.get("fieldSelector"))
            items, rv = store.list(rt, ns or None, lambda o: match_l(o) and match_f(o))
            return 200, {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            }
        assert name is not None or verb in ("create", "deletecollection")
        if sub == "scale":
            return self._scale(verb, rt, ns, name or "", body, dry_run)
        if verb == "get":
            obj = store.get(rt, ns, name or "")
            return 200, obj
        if verb == "create":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            return 201, store.create(rt, ns, body, dry_run)
        if verb == "update":
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be a JSON object")
            return 200, store.replace(rt, ns, name or "", body, sub, dry_run)
        if verb == "patch":
            return 200, store.patch(rt, ns, name or "", request.content_type, body, sub, dry_run)
        if verb == "delete":
            obj = store.delete(rt, ns, name or "", dry_run)
            return 200, obj
        if verb == "deletecollection":
            match_l = label_selector(request.query.get("labelSelector"))
            items, _ = store.list(rt, ns or None, match_l)
            for item in items:
                store.delete(
                    rt, item["metadata"].get("namespace", ""), item["metadata"]["name"], dry_run
                )
            return 200, {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {},
                "items": items,
            }
        raise ApiError(405, "MethodNotAllowed", f"verb {verb} is not supported")

    def _scale(
        self, verb: str, rt: ResourceType, ns: str, name: str, body: Any, dry_run: bool
    ) -> tuple[int, Any]:
        obj = self.store.get(rt, ns, name)
        if verb in ("update", "patch"):
            current = self._scale_obj(rt, obj)
            if verb == "update":
                new_scale = body
            else:
                new_scale = (
                    json_patch(current, body)
                    if isinstance(body, list)
                    else merge_patch(current, body)
                )
            want_rv = ((new_scale or {}).get("metadata") or {}).get("resourceVersion")
            if verb == "update" and want_rv and want_rv != obj["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            replicas = ((new_scale or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid(
                    rt,
                    name,
                    [
                        (
                            "spec.replicas",
                            f"Invalid value: {replicas!r}: must be greater than or equal to 0",
                        )
                    ],
                )
            obj = self.store.patch(
                rt, ns, name, MERGE, {"spec": {"replicas": replicas}}, None, dry_run
            )
        return 200, self._scale_obj(rt, obj)

    @staticmethod
    def _scale_obj(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        match = (spec.get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": spec.get("replicas", spec.get("instances", 0))},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": _selector_string(match),
            },
        }

    # ------------------------------------------------------------------------------ watch
    async def watch(
        self, request: web.Request, rt: ResourceType, ns: str | None
    ) -> web.StreamResponse:
        try:
            match_l = label_selector(request.query.get("labelSelector"))
            match_f = field_selector(request.query.get("fieldSelector"))
        except SelectorError as exc:
            return _error(ApiError(400, "BadRequest", str(exc)))

        def match(o: dict[str, Any]) -> bool:
            in_ns = ns is None or not rt.namespaced or o["metadata"].get("namespace") == ns
            return in_ns and match_l(o) and match_f(o)

        timeout = float(request.query.get("timeoutSeconds", 1800))
        rv_param = request.query.get("resourceVersion", "")
        key = f"k8s:{self.region}:watch:{rt.plural}"
        fault = self.faults.take(key, self.region, "before")
        if fault is not None and fault.error.lower() != "none":
            return _error(fault_error(fault))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        watcher = Watcher(rt, ns, match)
        self.store.watchers.append(watcher)
        try:
            if rv_param in ("", "0") or request.query.get("sendInitialEvents") == "true":
                backlog = [
                    Event(self.store.rv, "ADDED", rt, o) for o in self.store.list(rt, ns, match)[0]
                ]
            else:
                try:
                    backlog = [
                        e for e in self.store.history_since(int(rv_param)) if e.rt.key == rt.key
                    ]
                except ApiError as err:
                    await self._send(response, {"type": "ERROR", "object": err.status()})
                    return response
            last = max([e.rv for e in backlog], default=0)
            for event in backlog:
                await self._send_event(response, event, match)
            if request.query.get("sendInitialEvents") == "true":
                # The watch-list protocol: a bookmark marks the end of the initial events.
                last = max(last, self.store.rv)
                await self._send(
                    response,
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": rt.kind,
                            "apiVersion": rt.api_version,
                            "metadata": {
                                "resourceVersion": str(self.store.rv),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    },
                )
            deadline = time.monotonic() + timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), timeout=remaining)
                except TimeoutError:
                    break
                if event.rv <= last:
                    continue
                await self._send_event(response, event, match)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.watchers.remove(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _send_event(self, response: web.StreamResponse, event: Event, match: Any) -> None:
        if match(event.obj):
            await self._send(response, {"type": event.type, "object": event.obj})

    @staticmethod
    async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
        await response.write(json.dumps(payload).encode() + b"\n")

    # ------------------------------------------------------------------------------ table
    def _table(self, rt: ResourceType, result: dict[str, Any]) -> dict[str, Any]:
        items = (
            result.get("items", [result]) if result.get("kind", "").endswith("List") else [result]
        )
        columns = [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name",
                "priority": 0,
            }
        ]
        extra: list[tuple[str, Any]] = []
        if rt.kind in ("Deployment", "StatefulSet"):
            extra = [
                (
                    "Ready",
                    lambda o: (
                        f"{(o.get('status') or {}).get('readyReplicas', 0) or 0}"
                        f"/{(o.get('spec') or {}).get('replicas', 0)}"
                    ),
                ),
                ("Up-to-date", lambda o: (o.get("status") or {}).get("updatedReplicas", 0) or 0),
                ("Available", lambda o: (o.get("status") or {}).get("availableReplicas", 0) or 0),
            ]
        elif rt.kind == "Pod":
            extra = [("Status", lambda o: (o.get("status") or {}).get("phase", ""))]
        elif rt.kind == "ConfigMap":
            extra = [("Data", lambda o: len(o.get("data") or {}))]
        elif rt.kind == "Job":
            extra = [
                (
                    "Status",
                    lambda o: (
                        "Complete"
                        if (o.get("status") or {}).get("succeeded")
                        else "Failed"
                        if (o.get("status") or {}).get("failed")
                        else "Running"
                    ),
                )
            ]
        elif rt.kind == "Cluster":
            extra = [
                ("Status", lambda o: (o.get("status") or {}).get("phase", "")),
                ("Primary", lambda o: (o.get("status") or {}).get("currentPrimary", "")),
            ]
        for title, _ in extra:
            columns.append(
                {"name": title, "type": "string", "format": "", "description": title, "priority": 0}
            )
        columns.append(
            {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0}
        )
        rows = []
        for o in items:
            meta = o["metadata"]
            cells: list[Any] = [
                meta["name"],
                *(fn(o) for _, fn in extra),
                _age(meta.get("creationTimestamp")),
            ]
            rows.append(
                {
                    "cells": cells,
                    "object": {
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": copy.deepcopy(meta),
                    },
                }
            )
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": result.get("metadata", {}).get("resourceVersion", "")},
            "columnDefinitions": columns,
            "rows": rows,
        }


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    created = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    secs = int((datetime.now(UTC) - created).total_seconds())
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h"
