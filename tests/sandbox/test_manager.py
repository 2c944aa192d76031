"""Sandbox lifecycle: up is idempotent, a dead component is reported, down leaves nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from orchestrator.sandbox.latency import LatencyModel
from orchestrator.sandbox.manager import Sandbox, SandboxError, listens_on, pid_alive, port_free


def test_up_twice_reports_dead_component_and_down_stops_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Sandbox(home=tmp_path, latency=LatencyModel(time_scale=0.01), free_ports=True)
    # Another process takes the port planned for us-west-2's API before the region binds it.
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    plan = box._ports
    monkeypatch.setattr(box, "_ports", lambda env: plan(env) | {"kube:us-west-2": taken})
    try:
        env = box.up()
        assert not env.regions["us-west-2"].kube_api.endswith(f":{taken}")  # retried elsewhere
        monkeypatch.undo()
        squatter.close()
        pids = {name: c.pid for name, c in env.components.items()}
        assert set(pids) == {"temporal", "aws", "notify", "region:us-east-1", "region:us-west-2",
                             "worker"}  # fmt: skip
        assert all(pid_alive(p) for p in pids.values())
        topology = env.topology
        # Up again: nothing restarted, nothing re-seeded.
        again = box.up()
        assert {n: c.pid for n, c in again.components.items()} == pids
        assert again.topology == topology
        # A component that dies is reported, not hidden.
        os.kill(pids["region:us-west-2"], signal.SIGKILL)
        os.waitpid(pids["region:us-west-2"], 0)
        _, statuses = box.status()
        states = {s.name: s.state for s in statuses}
        assert states["region:us-west-2"] == "dead" and states["aws"] == "running"
        # The worker is a component like the others: its death is reported too.
        os.kill(pids["worker"], signal.SIGKILL)
        os.waitpid(pids["worker"], 0)
        _, statuses = box.status()
        assert {s.name: s.state for s in statuses}["worker"] == "dead"
        # Up restarts only the dead ones.
        healed = box.up()
        assert healed.components["aws"].pid == pids["aws"]
        assert healed.components["region:us-west-2"].pid != pids["region:us-west-2"]
        assert healed.components["worker"].pid != pids["worker"]
        pids = {name: c.pid for name, c in healed.components.items()}
        ports = [p for c in healed.components.values() for p in c.ports.values()]
    finally:
        squatter.close()
        stopped = box.down()
    assert sorted(stopped) == sorted(pids)
    assert not any(pid_alive(p) for p in pids.values())
    assert all(port_free(p) for p in ports)
    assert not (tmp_path / "env.json").exists()
    assert list(tmp_path.glob("*.pid")) == []
    assert box.down() == []  # down twice is harmless


def test_bad_regions_are_refused() -> None:
    with pytest.raises(SandboxError):
        Sandbox(regions=("us-east-1",))
    with pytest.raises(SandboxError):
        Sandbox(regions=("us-east-1", "us-east-1"))


def test_a_taken_default_port_is_replaced_by_a_free_one() -> None:
    from orchestrator.sandbox.manager import _pick

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        chosen = _pick(taken, set())
        assert chosen != taken and port_free(chosen)
    handed_out = {chosen}
    assert _pick(chosen, handed_out) != chosen  # never the same port twice in one sandbox


def test_pid_alive_tells_a_zombie_from_a_live_component() -> None:
    """A component counted dead while alive would be started twice and the first one leaked."""
    import subprocess
    import sys
    import time

    from orchestrator.sandbox.manager import MARKER, _state, pid_alive

    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", MARKER])
    done = subprocess.Popen([sys.executable, "-c", "pass", MARKER])
    try:
        assert pid_alive(live.pid)  # right after Popen returned, even mid-exec
        deadline = time.monotonic() + 10
        # (Its command line is empty for a moment mid-exec too: wait for the zombie state.)
        while _state(done.pid) != "Z" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(done.pid) == "Z"
        assert not pid_alive(done.pid)  # exited, not reaped yet: a zombie
    finally:
        live.kill()
        live.wait()
        done.wait()


class _ForeignHealth(BaseHTTPRequestHandler):
    """Another sandbox's server: it answers the health probe, and nothing else of ours."""

    def do_GET(self) -> None:
        ok = self.path == "/_sandbox/health"
        body = json.dumps({"ok": True}).encode() if ok else b"404: Not Found"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_a_port_taken_by_a_server_that_answers_the_probe_is_not_taken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS server's planned port is taken, before it binds, by a server that answers
    /_sandbox/health as ours do: up still starts the AWS server elsewhere and seeds it."""
    foreign = ThreadingHTTPServer(("127.0.0.1", 0), _ForeignHealth)
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    taken = foreign.server_address[1]
    box = Sandbox(
        home=tmp_path, latency=LatencyModel(time_scale=0.01), free_ports=True, worker=False
    )
    plan = box._ports
    monkeypatch.setattr(box, "_ports", lambda env: plan(env) | {"aws": taken})
    try:
        env = box.up()
        assert env.aws_endpoint_url != f"http://127.0.0.1:{taken}"
        assert listens_on(env.components["aws"].pid, [int(env.aws_endpoint_url.rsplit(":", 1)[1])])
        assert env.topology["zone_id"]  # seeded: by our AWS server
    finally:
        box.down()
        foreign.shutdown()
        foreign.server_close()


def test_listens_on_tells_our_listener_from_another_process_s() -> None:
    ours = socket.socket()
    ours.bind(("127.0.0.1", 0))
    ours.listen()
    port = ours.getsockname()[1]
    code = (
        "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None
        theirs = int(other.stdout.readline())
        assert listens_on(os.getpid(), [port])
        assert not listens_on(os.getpid(), [theirs])
        assert not listens_on(os.getpid(), [port, theirs])
        assert listens_on(other.pid, [theirs])
        ours.close()
        assert not listens_on(os.getpid(), [port])
    finally:
        other.kill()
        other.wait()
        ours.close()
