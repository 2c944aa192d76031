"""TLS in tests: a certificate authority, server and client certificates made with
`cryptography` in a directory, and a TLS-terminating TCP proxy (asyncio, in a thread of its own)
that demands a client certificate signed by the CA and forwards plain bytes to a server behind
it, e.g. the sandbox's Temporal dev server (which speaks plain HTTP/2 only)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The name the server certificate is for (besides 127.0.0.1): what `server_name` asks for.
SERVER_NAME = "temporal.failover.test"


@dataclass(frozen=True)
class Pki:
    """PEM files of one CA and what it signed."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_pki(directory: Path, prefix: str = "") -> Pki:
    """A CA, a server certificate for SERVER_NAME and 127.0.0.1, and a client certificate, each
    with its key, written as PEM files under `directory` (names start with `prefix`)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{prefix}failover test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip

    def leaf(
        common_name: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf(
        SERVER_NAME,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client, client_key = leaf("failover-worker", ExtendedKeyUsageOID.CLIENT_AUTH, [])
    return Pki(
        ca_cert=_write_cert(ca, directory / f"{prefix}ca.crt"),
        server_cert=_write_cert(server, directory / f"{prefix}server.crt"),
        server_key=_write_key(server_key, directory / f"{prefix}server.key"),
        client_cert=_write_cert(client, directory / f"{prefix}client.crt"),
        client_key=_write_key(client_key, directory / f"{prefix}client.key"),
    )


class TlsProxy:
    """TLS on 127.0.0.1:PORT (client certificate required, ALPN h2), plain TCP to `upstream`.

    `handshakes` counts completed TLS handshakes, `refused` the ones that failed (no client
    certificate, or one the CA did not sign).
    """

    def __init__(self, pki: Pki, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki.server_cert, pki.server_key)
        self.context.load_verify_locations(pki.ca_cert)
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2"])
        self.handshakes = 0
        self.refused = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(self._quiet)
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy",
                                        daemon=True)  # fmt: skip
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @staticmethod
    def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """A refused handshake is counted, not logged with a traceback."""
        if not isinstance(context.get("exception"), ssl.SSLError | ConnectionError):
            loop.default_exception_handler(context)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> TlsProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):  # each pipe sees its end and returns
                writer.transport.abort()
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _listen(self) -> asyncio.Server:
        # The handshake is done by hand (start_tls) so that a failed one is counted.
        return await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            try:
                await writer.start_tls(self.context, ssl_handshake_timeout=10)
            except (ssl.SSLError, ConnectionError, TimeoutError):
                self.refused += 1
                writer.close()
                return
            self.handshakes += 1
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(up_writer)
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            self._tasks.discard(task)
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    with contextlib.suppress(Exception):
                        w.close()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        finally:
            with contextlib.suppress(Exception):
                dst.close()


@contextlib.contextmanager
def tls_proxy(pki: Pki, upstream: str) -> Iterator[TlsProxy]:
    """A running TlsProxy in front of `upstream` (host:port); closed on exit."""
    proxy = TlsProxy(pki, upstream).start()
    try:
        yield proxy
    finally:
        proxy.close()
