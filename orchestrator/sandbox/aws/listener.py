"""One port of the AWS server: its WSGI app served over HTTP/1.1 with keep-alive, as AWS serves.

AWS's endpoints keep a client's connections open between calls, and botocore pools them. The
sandbox used to answer every call with `Connection: close` (werkzeug's development server does,
always), so every call opened a TCP connection and the server started a thread for it. waitress
keeps connections alive and serves them from a pool of threads.

A listener stops as a region's endpoint goes down: at once it accepts no connection (a client is
refused), idle connections are closed (a pooled one fails, and its client reconnects, refused), and
a call already being served is answered before its connection closes (as before: a region going
down does not cut an answer already on its way). The stop returns once the port refuses; the calls
still being answered finish in the background.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server

#: Threads serving one port's calls. A call holds one while it is served, including a fault's
#: delay or a hanging region's wait; more calls at once than this wait in line.
THREADS = 64
#: Open connections per port: botocore pools up to `activities.clients.POOL_CONNECTIONS` per
#: client, and a worker, the CLI and the tests each have clients of their own.
CONNECTION_LIMIT = 2000
#: Seconds an idle connection stays open (AWS closes idle connections too; clients reconnect).
IDLE_TIMEOUT = 120
_TICK = 1.0  # seconds between the server's checks while nothing happens
_STOPPING_TICK = 0.05  # ... while it waits for the calls still being answered to finish


class Listener:
    """A WSGI app served on host:port in a thread of its own until `stop`.

    Args:
        app: The WSGI application.
        host: Address to bind.
        port: Port to bind (0: a free one; `port` then tells which).
        name: The serving thread's name.
    """

    def __init__(self, app: Callable[..., Any], host: str, port: int, name: str) -> None:
        self._map: dict[int, Any] = {}
        self._server: Any = create_server(
            app,
            map=self._map,
            host=host,
            port=port,
            threads=THREADS,
            connection_limit=CONNECTION_LIMIT,
            channel_timeout=IDLE_TIMEOUT,
            clear_untrusted_proxy_headers=False,  # no proxy in front: no header rewriting
            asyncore_use_poll=True,  # select() fails past 1024 file descriptors
            ident="",  # no Server header naming the sandbox's software
        )
        self.port = int(self._server.effective_port)
        self._stopping = False
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            wasyncore.loop(
                _STOPPING_TICK if self._stopping else _TICK, True, self._map, count=1
            )  # fmt: skip
            if self._stopping and not self._close_idle():
                break
        self._server.trigger.close()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)

    def _close_idle(self) -> int:
        """Close the connections with no call in progress or answer left to send (in the serving
        thread); the number still open."""
        channels = [c for c in self._map.values() if isinstance(c, HTTPChannel)]
        busy = 0
        for channel in channels:
            if channel.requests or channel.total_outbufs_len:
                busy += 1
            else:
                channel.handle_close()
        return busy

    def _begin_stop(self) -> None:
        """Stop (in the serving thread): the listening socket closes, so the port refuses
        connections, and so do the idle connections, before `stop` returns."""
        self._stopping = True
        self._server.accepting = False
        wasyncore.dispatcher.close(self._server)  # the listening socket, not the trigger
        self._close_idle()
        self._closed.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Refuse connections from now on, and close the open ones once their calls are
        answered. Returns once the port refuses (the answers in progress finish after)."""
        if not self._stopping and self._thread.is_alive():
            self._server.trigger.pull_trigger(self._begin_stop)
            self._closed.wait(timeout)

    def wait(self) -> None:
        """Block until the listener has stopped and its last connection has closed."""
        self._thread.join()
