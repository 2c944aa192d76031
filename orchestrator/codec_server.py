"""Temporal's remote codec protocol over HTTP, for the Web UI and the `temporal` CLI: POST
`.../encode` and `.../decode` take and give Payloads as protobuf JSON (`{"payloads": [...]}`);
only the URL's last part chooses (so one server can sit under any path). A browser may call it
from the UI's origin (CORS, with the `X-Namespace` header the UI sends).

It decrypts for whoever reaches it: bind it to 127.0.0.1 (the default) for one operator's UI, or
put it behind the same sign-in as the UI.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from orchestrator.codec import CodecError, CompressionCodec, EncryptionCodec

MAX_BODY = 8 * 1024 * 1024


def handler(
    codec: EncryptionCodec | CompressionCodec, ui_origins: list[str]
) -> type[BaseHTTPRequestHandler]:
    """The request handler class of a codec server for `codec`."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "failover-codec"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: no payloads in logs
            return

        def _cors(self) -> None:
            origin = self.headers.get("Origin")
            if origin and origin in ui_origins:
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
                self.send_header(
                    "Access-Control-Allow-Headers", "Content-Type, X-Namespace, Authorization"
                )
                self.send_header("Vary", "Origin")

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self.send_response(200)
            self._cors()
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            what = self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
            ops: dict[str, Callable[[Any], Any]] = {
                "encode": codec.encode_sync,
                "decode": codec.decode_sync,
            }
            if what not in ops:
                self._answer(404, {"error": f"no such endpoint: {what} (encode, decode)"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            try:
                payloads = json_format.Parse(self.rfile.read(length), Payloads())
                out = Payloads(payloads=ops[what](payloads.payloads))
            except json_format.ParseError as exc:
                self._answer(400, {"error": f"not Payloads JSON: {exc}"})
                return
            except CodecError as exc:
                self._answer(400, {"error": str(exc)})
                return
            self._answer(200, json_format.MessageToDict(out))

    return Handler


class CodecServer:
    """A codec server on host:port, in a thread (`start`, `stop`)."""

    def __init__(
        self, codec: EncryptionCodec | CompressionCodec, host: str, port: int, ui_origins: list[str]
    ) -> None:
        self.httpd = ThreadingHTTPServer((host, port), handler(codec, ui_origins))
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> CodecServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
