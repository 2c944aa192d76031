"""Signing with the operator's SSH key (`failover drill|run|approve|reject` of runs with
`approval_auth: signed`): an ed25519 private key file, or a key held by ssh-agent.

- An unencrypted OpenSSH private key file is read and used in this process.
- A passphrase-protected one is handed to `ssh-keygen -Y sign` (OpenSSH asks for the passphrase
  itself, on the terminal or through SSH_ASKPASS): the passphrase never passes through here.
- A public key file (`--key ~/.ssh/id_ed25519.pub`), or no key at all: ssh-agent
  (SSH_AUTH_SOCK) signs with that key, or with the first of its keys listed for the signer.

Every signature is an SSH signature under the namespace `failover-approval`
(`orchestrator.sshsig`); only ed25519 keys are taken.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.approval_auth import NAMESPACE
from orchestrator.runs import Signer
from orchestrator.sshsig import (
    PublicKey,
    Signature,
    SshSigError,
    WireReader,
    signed_data,
    ssh_string,
)

SignFn = Callable[[bytes], Signature]

# ssh-agent messages (draft-miller-ssh-agent)
AGENT_FAILURE = 5
AGENTC_REQUEST_IDENTITIES = 11
AGENT_IDENTITIES_ANSWER = 12
AGENTC_SIGN_REQUEST = 13
AGENT_SIGN_RESPONSE = 14
AGENT_TIMEOUT_S = 30.0  # an agent that confirms each use (ssh-add -c) waits for a person


class SigningError(ValueError):
    """No usable key, or signing failed (one line for the user)."""


def sign(private: Ed25519PrivateKey, message: bytes, namespace: str = NAMESPACE) -> Signature:
    """Sign `message` as `ssh-keygen -Y sign -n NAMESPACE` does (SHA-512), with a key held here."""
    key = PublicKey(private.public_key().public_bytes_raw())
    return Signature(key, namespace, "sha512", private.sign(signed_data(message, namespace)))


def signer_for(key: str | Path | None, name: str, signers: list[Signer]) -> SignFn:
    """How `name` signs: with the key file `key` if given, else with one of ssh-agent's keys that
    the run lists for `name`."""
    if key is not None:
        return from_file(Path(key).expanduser())
    sock = os.environ.get("SSH_AUTH_SOCK")
    if not sock:
        raise SigningError(
            "approval_auth: signed: give --key (your ed25519 private key file), set "
            "approvals.key in the configuration, or load your key into ssh-agent "
            "(SSH_AUTH_SOCK is not set)"
        )
    listed = [PublicKey.parse(s.key) for s in signers if s.name == name]
    if not listed:
        raise SigningError(f"{name} has no key in the run's allowed signers")
    return Agent(sock).signer(listed, f"listed for {name}")


def from_file(path: Path) -> SignFn:
    """A signer for a key file: a private key (in this process, or through ssh-keygen when it has
    a passphrase), or a public key whose private half ssh-agent holds."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"--key {path}: cannot read: {exc.strerror}") from None
    text = data.decode(errors="replace").strip()
    if text.startswith(("ssh-", "ecdsa-", "sk-")):  # a public key: its private half is in an agent
        try:
            wanted = PublicKey.parse(text)
        except SshSigError as exc:
            raise SigningError(f"--key {path}: {exc}") from None
        sock = os.environ.get("SSH_AUTH_SOCK")
        if not sock:
            raise SigningError(f"--key {path} is a public key and SSH_AUTH_SOCK is not set")
        return Agent(sock).signer([wanted], f"the key of {path}")
    try:
        private = serialization.load_ssh_private_key(data, password=None)
    except TypeError:  # "Key is password-protected, but password was not provided."
        return _ssh_keygen(path)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"--key {path}: not an OpenSSH private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningError(f"--key {path}: not an ed25519 key (ssh-keygen -t ed25519 makes one)")
    return lambda message: sign(private, message, NAMESPACE)


def _ssh_keygen(path: Path) -> SignFn:
    """A passphrase-protected key: `ssh-keygen -Y sign` signs (and asks for the passphrase)."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise SigningError(
            f"--key {path} has a passphrase and ssh-keygen is not installed: load it into "
            "ssh-agent (ssh-add) and leave out --key"
        )

    def signed(message: bytes) -> Signature:
        proc = subprocess.run(
            [exe, "-q", "-Y", "sign", "-n", NAMESPACE, "-f", str(path)],
            input=message, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            why = proc.stderr.decode(errors="replace").strip().splitlines()
            raise SigningError(f"ssh-keygen could not sign with {path}: {why[-1] if why else '?'}")
        try:
            return Signature.parse(proc.stdout.decode())
        except SshSigError as exc:
            raise SigningError(f"ssh-keygen signed with {path}: {exc}") from None

    return signed


class Agent:
    """A client of ssh-agent (its Unix socket)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _ask(self, kind: int, payload: bytes) -> tuple[int, WireReader]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(AGENT_TIMEOUT_S)
                conn.connect(self.path)
                body = bytes([kind]) + payload
                conn.sendall(struct.pack(">I", len(body)) + body)
                size = struct.unpack(">I", _recv(conn, 4))[0]
                answer = _recv(conn, size)
        except OSError as exc:
            raise SigningError(f"ssh-agent at {self.path}: {exc.strerror or exc}") from None
        return answer[0], WireReader(answer[1:])

    def keys(self) -> list[PublicKey]:
        """The agent's ed25519 keys (others are left out)."""
        kind, reader = self._ask(AGENTC_REQUEST_IDENTITIES, b"")
        if kind != AGENT_IDENTITIES_ANSWER:
            raise SigningError(f"ssh-agent at {self.path} did not list its keys")
        out = []
        for _ in range(reader.uint32()):
            blob, _comment = reader.string(), reader.string()
            try:
                out.append(PublicKey.from_blob(blob))
            except SshSigError:
                continue  # an RSA, ECDSA or security-key key
        return out

    def sign(self, key: PublicKey, message: bytes) -> Signature:
        """An SSH signature of `message` by one of the agent's keys."""
        request = ssh_string(key.blob) + ssh_string(signed_data(message, NAMESPACE))
        kind, reader = self._ask(AGENTC_SIGN_REQUEST, request + struct.pack(">I", 0))
        if kind != AGENT_SIGN_RESPONSE:
            raise SigningError(f"ssh-agent refused to sign with {key.fingerprint}")
        try:
            return Signature.from_agent(key, NAMESPACE, reader.string())
        except SshSigError as exc:
            raise SigningError(f"ssh-agent signed with {key.fingerprint}: {exc}") from None

    def signer(self, wanted: list[PublicKey], what: str) -> SignFn:
        """Sign with the first of `wanted` that the agent holds."""
        held = {k.fingerprint for k in self.keys()}
        for key in wanted:
            if key.fingerprint in held:
                return functools.partial(self.sign, key)
        listed = ", ".join(k.fingerprint for k in wanted)
        raise SigningError(
            f"ssh-agent holds no key {what} ({listed}): add it (ssh-add) or give --key"
        )


def _recv(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise OSError("the agent closed the connection")
        out += chunk
    return out
