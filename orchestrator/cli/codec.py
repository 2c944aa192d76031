"""`failover codec`: payload encryption keys, and the codec server the Temporal UI decrypts
through."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from orchestrator import codec
from orchestrator.cli.exit_codes import ExitCode
from orchestrator.cli.options import ConfigOption, load_config
from orchestrator.cli.output import fail, info
from orchestrator.codec_server import CodecServer

app = typer.Typer(help="Payload encryption: keys and the codec server for the Temporal UI.")


@app.command("new-key")
def new_key() -> None:
    """Print a new AES-256 key (base64) for `temporal.encryption.keys` or its variable."""
    typer.echo(codec.new_key())


@app.command("server")
def server(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8081,
    host: Annotated[str, typer.Option(help="Address to bind (it decrypts for anyone).")] = (
        "127.0.0.1"
    ),
    ui_origin: Annotated[
        list[str] | None,
        typer.Option(help="The Temporal UI's origin allowed to call it (repeatable)."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve Temporal's remote codec protocol (/encode, /decode) with the configured keys (and
    the compression of payloads over 512 kB): in the Temporal UI, set the codec endpoint to
    http://HOST:PORT. Runs until SIGINT/SIGTERM."""
    cfg = load_config(config)
    enc = cfg.temporal.encryption
    try:
        c = codec.CompressionCodec(codec.EncryptionCodec(enc) if enc is not None else None)
    except codec.CodecError as exc:
        fail(f"temporal.encryption: {exc}")
    try:
        srv = CodecServer(c, host, port, list(ui_origin or []))
    except OSError as exc:
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", ExitCode.INVALID_INPUT)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    srv.start()
    keys = f"keys: {', '.join(enc.keys)}" if enc is not None else "no encryption configured"
    info(f"codec server on http://{host}:{srv.port} (large payloads decompressed; {keys})")
    stop.wait()
    srv.stop()
