"""The AWS server's listener: connections kept alive, and a stop that refuses at once, closes idle
connections and still answers the calls in progress."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from orchestrator.sandbox.aws.listener import Listener


class App:
    """Answers each call with the port of the client's connection; `/slow` waits for `release`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __call__(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/slow":
            self.started.set()
            self.release.wait(10)
        body = f"{environ['REMOTE_PORT']} {environ['PATH_INFO']}".encode()
        start("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


@pytest.fixture
def served() -> Iterator[tuple[App, Listener]]:
    app = App()
    listener = Listener(app, "127.0.0.1", 0, "test-listener")
    yield app, listener
    app.release.set()
    listener.stop()


def get(conn: http.client.HTTPConnection, path: str) -> tuple[str, str | None]:
    conn.request("GET", path)
    resp = conn.getresponse()
    return resp.read().decode(), resp.getheader("Connection")


@dataclass
class SlowCall:
    """A call to `/slow` in a thread, under way once made; its answer lands in `answer`."""

    conn: http.client.HTTPConnection
    thread: threading.Thread
    answer: list[str]


def slow_call(app: App, listener: Listener) -> SlowCall:
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=5)
    answer: list[str] = []
    thread = threading.Thread(target=lambda: answer.append(get(conn, "/slow")[0]))
    thread.start()
    assert app.started.wait(5)
    return SlowCall(conn, thread, answer)


def test_calls_share_one_connection(served: tuple[App, Listener]) -> None:
    _, listener = served
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=5)
    first, header = get(conn, "/a")
    second, _ = get(conn, "/b")
    # the same client port twice: the second call came over the first call's connection
    assert first.split()[0] == second.split()[0] == str(conn.sock.getsockname()[1])
    assert header is None or header.lower() != "close"
    conn.close()


def test_a_stop_refuses_closes_idle_connections_and_answers_calls_in_progress(
    served: tuple[App, Listener],
) -> None:
    app, listener = served
    idle = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=5)
    get(idle, "/warm")
    call = slow_call(app, listener)

    listener.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", listener.port), timeout=5)
    # the idle connection is closed by the server: a read sees its end, not a hang
    idle.sock.settimeout(5)
    assert idle.sock.recv(1) == b""

    app.release.set()
    call.thread.join(5)
    assert call.answer and call.answer[0].endswith("/slow")  # answered in full
    call.conn.sock.settimeout(5)
    assert call.conn.sock.recv(1) == b""  # ... then closed
    t0 = time.monotonic()
    listener.wait()  # its thread ends once the last connection is closed
    assert time.monotonic() - t0 < 5


def test_the_port_serves_again_while_an_old_call_is_still_answered(
    served: tuple[App, Listener],
) -> None:
    app, listener = served
    call = slow_call(app, listener)
    listener.stop()

    again = Listener(app, "127.0.0.1", listener.port, "test-listener-again")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", again.port, timeout=5)
        assert get(conn, "/new")[0].endswith("/new")
        conn.close()
    finally:
        app.release.set()
        call.thread.join(5)
        again.stop()
    assert call.answer and call.answer[0].endswith("/slow")
