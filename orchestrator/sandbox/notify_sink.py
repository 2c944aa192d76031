"""The sandbox's notification sink: Slack-, PagerDuty- and webhook-shaped endpoints that record what
arrives, so notifications can be seen (and tested) end to end without any real service.

Endpoints (POST, JSON), each named by the channel after the kind:
- `/slack/NAME`: an incoming webhook (needs `text` or `blocks`; answers `ok`, as Slack does);
- `/pagerduty/NAME/v2/enqueue`: Events API v2 (routing key, `trigger|acknowledge|resolve`, dedup
  key, a trigger's payload summary, source and severity; answers 202 as PagerDuty does, 400 with
  the errors otherwise);
- `/webhook/NAME`: the generic webhook; its `X-Failover-Signature` is checked (HMAC-SHA256 with
  the channel's secret: the sandbox's own, `$FAILOVER_NOTIFY_SECRET`, unless one was registered
  for the channel) and recorded as valid, invalid or missing; a bad signature answers 401;
- `/sns/NAME`: what moto's SNS delivers to an HTTP subscription (a topic's published messages).

Control, under `/_sandbox/`: `health`; `notifications` (GET `?since=EPOCH`, DELETE); `notify/fault`
(PUT `{"channel": NAME or "*", "mode": "error" | "hang" | "ok", "status": 500, "hang": 60}`: the
channel answers that status, or holds the request `hang` seconds; DELETE clears them);
`notify/secret` (PUT `{"channel": NAME, "secret": ...}`); `reset`.

Secrets are never recorded: a PagerDuty routing key is kept as its last 4 characters.

Run: python -m orchestrator.sandbox.notify_sink --port 5060
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrator.notifications import SIGNATURE_HEADER, signature_valid

SECRET_ENV = "FAILOVER_NOTIFY_SECRET"
KINDS = ("slack", "pagerduty", "webhook", "sns")
PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")


class Sink:
    """What arrived, the faults to play, the secrets to check (thread-safe)."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret
        self.secrets: dict[str, str] = {}
        self.faults: dict[str, dict[str, Any]] = {}
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._next = 0

    def fault_for(self, channel: str) -> dict[str, Any] | None:
        with self.lock:
            return self.faults.get(channel) or self.faults.get("*")

    def set_fault(self, data: dict[str, Any]) -> dict[str, Any]:
        channel = str(data.get("channel") or "*")
        mode = str(data.get("mode") or "error")
        if mode not in ("error", "hang", "ok"):
            raise ValueError(f"mode must be error, hang or ok (got {mode!r})")
        with self.lock:
            if mode == "ok":
                self.faults.pop(channel, None)
            else:
                self.faults[channel] = {
                    "mode": mode,
                    "status": int(data.get("status", 500)),
                    "hang": float(data.get("hang", 60.0)),
                }
            return dict(self.faults)

    def record(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self._next += 1
            self.records.append({"id": self._next, "at": time.time(), **entry})

    def arrived(self, since: float | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.records if since is None or r["at"] >= since]

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.faults.clear()
            self.secrets.clear()

    # -------------------------------------------------------------------------- shapes
    def receive(
        self, kind: str, channel: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any]:
        """Check and record one notification; the status and answer the real service would
        give."""
        try:
            data = json.loads(body or b"null")
        except ValueError:
            self.record({"kind": kind, "channel": channel, "valid": False, "error": "not JSON"})
            return 400, {"error": "the body is not JSON"}
        entry: dict[str, Any] = {"kind": kind, "channel": channel, "body": data}
        status, answer, problems = getattr(self, f"_{kind}")(channel, data, body, headers, entry)
        entry["valid"] = not problems
        if problems:
            entry["error"] = "; ".join(problems)
        entry["status"] = status
        self.record(entry)
        return status, answer

    def _slack(
        self, channel: str, data: Any, body: bytes, headers: dict[str, str], e: dict[str, Any]
    ) -> tuple[int, Any, list[str]]:
        if not isinstance(data, dict) or not (data.get("text") or data.get("blocks")):
            return 400, "invalid_payload", ["no text and no blocks"]
        e["text"] = str(data.get("text", ""))
        e["summary"] = e["text"].splitlines()[0] if e["text"] else ""
        e["event"] = _event_of(data)
        return 200, "ok", []

    def _pagerduty(
        self, channel: str, data: Any, body: bytes, headers: dict[str, str], e: dict[str, Any]
    ) -> tuple[int, Any, list[str]]:
        problems: list[str] = []
        if not isinstance(data, dict):
            return 400, {"status": "invalid event", "errors": ["not an object"]}, ["not an object"]
        key = data.get("routing_key")
        if not key:
            problems.append("routing_key is missing")
        else:  # never recorded in full: it is a secret
            e["body"] = {**data, "routing_key": f"...{str(key)[-4:]}"}
        action = data.get("event_action")
        if action not in PD_ACTIONS:
            problems.append(f"event_action must be one of {', '.join(PD_ACTIONS)}")
        payload = data.get("payload") or {}
        if action == "trigger":
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    problems.append(f"payload.{field} is missing")
            if payload.get("severity") and payload["severity"] not in PD_SEVERITIES:
                problems.append(f"payload.severity must be one of {', '.join(PD_SEVERITIES)}")
        elif not data.get("dedup_key"):
            problems.append(f"{action} needs a dedup_key")
        e.update(
            action=action,
            dedup_key=data.get("dedup_key"),
            summary=payload.get("summary", ""),
            severity=payload.get("severity"),
            event=payload.get("class"),
        )
        if problems:
            return 400, {"status": "invalid event", "message": "Event object is invalid",
                         "errors": problems}, problems  # fmt: skip
        answer = {"status": "success", "message": "Event processed",
                  "dedup_key": data.get("dedup_key")}  # fmt: skip
        return 202, answer, []

    def _webhook(
        self, channel: str, data: Any, body: bytes, headers: dict[str, str], e: dict[str, Any]
    ) -> tuple[int, Any, list[str]]:
        given = headers.get(SIGNATURE_HEADER.lower())
        secret = self.secrets.get(channel, self.secret)
        if given is None:
            e["signature"] = "missing"
        elif secret is None:
            e["signature"] = "unknown secret"
        else:
            e["signature"] = "valid" if signature_valid(secret, body, given) else "invalid"
        e["delivery"] = headers.get("x-failover-delivery")
        if isinstance(data, dict):
            e.update(event=data.get("event"), summary=data.get("summary", ""))
        if e["signature"] != "valid":
            return 401, {"error": f"signature {e['signature']}"}, [f"signature {e['signature']}"]
        return 200, {"ok": True}, []

    def _sns(
        self, channel: str, data: Any, body: bytes, headers: dict[str, str], e: dict[str, Any]
    ) -> tuple[int, Any, list[str]]:
        if not isinstance(data, dict) or data.get("Type") != "Notification":
            return 400, {"error": "not an SNS notification"}, ["not an SNS notification"]
        e.update(
            topic=data.get("TopicArn"),
            subject=data.get("Subject"),
            text=data.get("Message", ""),
            summary=str(data.get("Subject") or ""),
        )
        return 200, {"ok": True}, []


def _event_of(slack: dict[str, Any]) -> str | None:
    """The event named in a Slack message's context block (`event` in backquotes)."""
    for block in slack.get("blocks") or []:
        if block.get("type") == "context":
            for el in block.get("elements", []):
                text = str(el.get("text", ""))
                if text.startswith("`") and "`" in text[1:]:
                    return text[1 : text.index("`", 1)]
    return None


def make_handler(sink: Sink) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a sink."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: requests are recorded, not logged (no secrets in logs)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _answer(self, status: int, answer: Any) -> None:
            raw = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
            ctype = "text/plain" if isinstance(answer, str) else "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _route(self, method: str) -> None:
            url = urlsplit(self.path)
            parts = [p for p in url.path.split("/") if p]
            body = self._body()
            try:
                if parts[:1] == ["_sandbox"]:
                    data = json.loads(body) if body else {}
                    self._answer(200, _control(sink, method, parts[1:], data, url.query))
                    return
                if method != "POST" or len(parts) < 2 or parts[0] not in KINDS:
                    self._answer(404, {"error": f"no such endpoint: {method} {url.path}"})
                    return
                kind, channel = parts[0], parts[1]
                fault = sink.fault_for(channel)
                if fault is not None:
                    sink.record({"kind": kind, "channel": channel, "fault": fault["mode"],
                                 "valid": False, "status": fault["status"]})  # fmt: skip
                    if fault["mode"] == "hang":
                        time.sleep(fault["hang"])
                        self._answer(504, {"error": "held, then dropped (sandbox fault)"})
                    else:
                        self._answer(fault["status"], {"error": "sandbox fault"})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._answer(*sink.receive(kind, channel, body, headers))
            except (ValueError, KeyError, TypeError) as exc:
                self._answer(400, {"error": str(exc)})
            except LookupError as exc:
                self._answer(404, {"error": str(exc)})
            except (BrokenPipeError, ConnectionResetError):
                return  # the client gave up (its deadline): nothing to answer

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


def _control(sink: Sink, method: str, parts: list[str], data: Any, query: str) -> Any:
    path = "/".join(parts)
    if path == "health":
        return {"ok": True, "service": "notify"}
    if path == "notifications":
        if method == "DELETE":
            with sink.lock:
                sink.records.clear()
            return {"cleared": True}
        since = parse_qs(query).get("since")
        return sink.arrived(float(since[0]) if since else None)
    if path == "notify/fault":
        if method == "DELETE":
            with sink.lock:
                sink.faults.clear()
            return {}
        if method in ("PUT", "POST"):
            return sink.set_fault(data)
        with sink.lock:
            return dict(sink.faults)
    if path == "notify/secret" and method in ("PUT", "POST"):
        with sink.lock:
            sink.secrets[str(data["channel"])] = str(data["secret"])
        return {"channel": data["channel"]}
    if path == "reset" and method in ("PUT", "POST"):
        sink.reset()
        return {"reset": True}
    raise LookupError(f"no such sandbox endpoint: {method} /_sandbox/{path}")


def serve(host: str, port: int, sink: Sink) -> ThreadingHTTPServer:
    """A running server (in a thread) for `sink`; `.shutdown()` stops it."""
    server = ThreadingHTTPServer((host, port), make_handler(sink))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="notify-sink", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tag", default="", help="marks the process as the sandbox's")
    args = parser.parse_args(argv)
    sink = Sink(os.environ.get(SECRET_ENV) or None)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(sink))
    server.daemon_threads = True
    print(f"notification sink on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
