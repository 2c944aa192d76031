"""SSH signatures as `ssh-keygen -Y sign` makes them (OpenSSH's PROTOCOL.sshsig), for Ed25519 keys,
and git's allowed_signers lines.

Pure computation over bytes and text, no I/O and no native code (Ed25519 verification is
`orchestrator.ed25519`): the region-switch workflow's Update validators verify approvals with it,
in Temporal's workflow sandbox. Only `ssh-ed25519` keys are supported: their verification is
deterministic, they are what `ssh-keygen -t ed25519` makes, and one algorithm is less to get
wrong. Any other key type is refused with a message that says so. (Signing, with a private key
or an agent, is the client's: `orchestrator.signing`.)

The armored signature (`-----BEGIN SSH SIGNATURE-----`) is base64 of

    byte[6] "SSHSIG" | uint32 1 | string publickey | string namespace | string reserved
    | string hash_algorithm | string signature

and what the key signs is

    byte[6] "SSHSIG" | string namespace | string reserved | string hash_algorithm | string H(msg)

(`string`: a uint32 length, then the bytes; H: SHA-512, or SHA-256). For Ed25519 the public key
is (string "ssh-ed25519", string 32 bytes) and the signature (string "ssh-ed25519", string 64
bytes). The namespace keeps a signature made for one purpose (git commits, files) from being
taken for another.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import struct
from dataclasses import dataclass

from orchestrator import ed25519

MAGIC = b"SSHSIG"
VERSION = 1
ED25519 = "ssh-ed25519"
HASHES = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
#: Key types OpenSSH knows (to tell an allowed_signers line's options from its key type).
KEY_TYPES = ("ssh-", "ecdsa-", "sk-")


class SshSigError(ValueError):
    """A key, a signature or an allowed_signers line that cannot be used (the message says why)."""


# ------------------------------------------------------------------------------- wire format
def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class WireReader:
    """Reads the SSH wire encoding; SshSigError when the data ends early."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise SshSigError("truncated SSH data")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def string(self) -> bytes:
        return self.take(self.uint32())

    def text(self) -> str:
        try:
            return self.string().decode()
        except UnicodeDecodeError:
            raise SshSigError("malformed SSH data (a name is not text)") from None

    def end(self, what: str) -> None:
        if self.at != len(self.data):
            raise SshSigError(f"malformed {what} (trailing bytes)")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SshSigError(f"{what} is not base64") from None


# ------------------------------------------------------------------------------- public keys
@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (its 32 raw bytes)."""

    raw: bytes

    @classmethod
    def parse(cls, text: str) -> PublicKey:
        """A key as OpenSSH writes it: `ssh-ed25519 AAAA... [comment]` (an `id_ed25519.pub`
        line, git's allowed_signers key)."""
        parts = text.split()
        if len(parts) < 2:
            raise SshSigError("expected 'ssh-ed25519 AAAA...' (an OpenSSH public key)")
        if parts[0] != ED25519:
            raise SshSigError(
                f"{parts[0]} keys are not supported: use an ed25519 key (ssh-keygen -t ed25519)"
            )
        blob = _b64(parts[1], "the public key")
        try:
            return cls.from_blob(blob)
        except SshSigError as exc:
            raise SshSigError(f"not an ed25519 public key ({exc})") from None

    @classmethod
    def from_blob(cls, blob: bytes) -> PublicKey:
        """A key from its wire encoding (string "ssh-ed25519", string 32 bytes)."""
        reader = WireReader(blob)
        kind = reader.text()
        if kind != ED25519:
            raise SshSigError(f"{kind} keys are not supported: use an ed25519 key")
        raw = reader.string()
        reader.end("ed25519 public key")
        if len(raw) != 32:
            raise SshSigError("malformed ed25519 public key (not 32 bytes)")
        return cls(raw)

    @property
    def blob(self) -> bytes:
        """The key's wire encoding."""
        return ssh_string(ED25519.encode()) + ssh_string(self.raw)

    @property
    def fingerprint(self) -> str:
        """`SHA256:...`, as `ssh-keygen -l` and ssh-agent show it."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def openssh(self) -> str:
        """The key as one line, without a comment (`ssh-ed25519 AAAA...`)."""
        return f"{ED25519} {base64.b64encode(self.blob).decode()}"

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether `signature` (64 bytes) is this key's over `data`."""
        return ed25519.verify(self.raw, data, signature)


# -------------------------------------------------------------------------------- signatures
def signed_data(message: bytes, namespace: str, hash_algorithm: str = "sha512") -> bytes:
    """What the key signs for `message` under `namespace` (an agent is given exactly this)."""
    digest = HASHES[hash_algorithm](message).digest()
    return (
        MAGIC
        + ssh_string(namespace.encode())
        + ssh_string(b"")
        + ssh_string(hash_algorithm.encode())
        + ssh_string(digest)
    )


@dataclass(frozen=True)
class Signature:
    """An SSH signature: the key that made it, its namespace and hash, the 64 signature bytes."""

    key: PublicKey
    namespace: str
    hash_algorithm: str
    raw: bytes

    @classmethod
    def parse(cls, data: str | bytes) -> Signature:
        """A signature: armored text (`-----BEGIN SSH SIGNATURE-----`) or its bytes."""
        blob = _unarmor(data) if isinstance(data, str) else data
        reader = WireReader(blob)
        if reader.take(6) != MAGIC:
            raise SshSigError("not an SSH signature (no SSHSIG preamble)")
        version = reader.uint32()
        if version != VERSION:
            raise SshSigError(f"unsupported SSH signature version {version}")
        key = PublicKey.from_blob(reader.string())
        namespace = reader.text()
        reader.string()  # reserved
        hash_algorithm = reader.text()
        if hash_algorithm not in HASHES:
            raise SshSigError(f"unsupported hash algorithm {hash_algorithm!r}")
        sig = WireReader(reader.string())
        reader.end("SSH signature")
        if sig.text() != ED25519:
            raise SshSigError("only ed25519 signatures are supported")
        raw = sig.string()
        sig.end("ed25519 signature")
        if len(raw) != 64:
            raise SshSigError("malformed ed25519 signature (not 64 bytes)")
        return cls(key, namespace, hash_algorithm, raw)

    @classmethod
    def from_agent(cls, key: PublicKey, namespace: str, agent_signature: bytes) -> Signature:
        """A signature from what an SSH agent answered for `signed_data(..., "sha512")`."""
        reader = WireReader(agent_signature)
        if reader.text() != ED25519:
            raise SshSigError("the agent did not answer an ed25519 signature")
        raw = reader.string()
        reader.end("agent signature")
        return cls(key, namespace, "sha512", raw)

    def verifies(self, message: bytes, namespace: str) -> bool:
        """Whether this is the key's signature over `message` under `namespace`."""
        return self.namespace == namespace and self.key.verify(
            self.raw, signed_data(message, namespace, self.hash_algorithm)
        )

    @property
    def blob(self) -> bytes:
        """The signature's wire encoding (what the armor wraps)."""
        return (
            MAGIC
            + struct.pack(">I", VERSION)
            + ssh_string(self.key.blob)
            + ssh_string(self.namespace.encode())
            + ssh_string(b"")
            + ssh_string(self.hash_algorithm.encode())
            + ssh_string(ssh_string(ED25519.encode()) + ssh_string(self.raw))
        )

    def armored(self) -> str:
        """The signature as `ssh-keygen -Y sign` writes it."""
        text = base64.b64encode(self.blob).decode()
        lines = [text[i : i + 70] for i in range(0, len(text), 70)]
        return "\n".join([BEGIN, *lines, END]) + "\n"


def _unarmor(text: str) -> bytes:
    body = text.strip()
    if not (body.startswith(BEGIN) and body.endswith(END)):
        raise SshSigError(f"not an armored SSH signature ({BEGIN})")
    return _b64("".join(body[len(BEGIN) : -len(END)].split()), "the SSH signature")


# --------------------------------------------------------------------------- allowed_signers
@dataclass(frozen=True)
class AllowedSigner:
    """A name and a key it signs with (one allowed_signers line gives one per principal)."""

    name: str
    key: PublicKey


def parse_allowed_signers(text: str, namespace: str, source: str = "allowed_signers") -> list[
    AllowedSigner
]:  # fmt: skip
    """The signers of an allowed_signers file (git's `gpg.ssh.allowedSignersFile`, `ssh-keygen -Y
    verify -f`): `principals [options] ssh-ed25519 AAAA... [comment]` per line.

    A line whose `namespaces="..."` option leaves `namespace` out is skipped, as ssh-keygen would.
    Principal patterns, `cert-authority`, `valid-after`/`valid-before` and keys other than
    ed25519 are refused (SshSigError naming `source:line`)."""
    out: list[AllowedSigner] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            signers = _signer_line(stripped, namespace)
        except SshSigError as exc:
            raise SshSigError(f"{source}:{number}: {exc}") from None
        out.extend(signers)
    return out


def _signer_line(line: str, namespace: str) -> list[AllowedSigner]:
    principals, _, rest = line.partition(" ")
    rest = rest.strip()
    options: dict[str, str] = {}
    if rest and not rest.startswith(KEY_TYPES):
        text, rest = _options_field(rest)
        options = _options(text)
    for name in ("cert-authority", "valid-after", "valid-before"):
        if name in options:
            raise SshSigError(f"the {name} option is not supported")
    unknown = sorted(set(options) - {"namespaces"})
    if unknown:
        raise SshSigError(f"unknown option {unknown[0]!r}")
    if "namespaces" in options:
        allowed = [p.strip() for p in options["namespaces"].split(",")]
        if not any(fnmatch.fnmatchcase(namespace, p) for p in allowed if p):
            return []
    key = PublicKey.parse(rest)
    names = [p for p in principals.split(",") if p]
    if not names:
        raise SshSigError("no principal (name) before the key")
    for name in names:
        if any(c in name for c in "*?!"):
            raise SshSigError(f"principal patterns are not supported ({name!r}): list names")
    return [AllowedSigner(name, key) for name in names]


def _options_field(text: str) -> tuple[str, str]:
    """Split `options rest` where options may hold quoted spaces."""
    quoted = False
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c.isspace() and not quoted:
            return text[:i], text[i:].strip()
    raise SshSigError("no key after the options")


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    quoted, start = False, 0
    parts = []
    for i, c in enumerate(text):
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    for part in parts:
        name, _, value = part.partition("=")
        out[name.strip().lower()] = value.strip().strip('"')
    return out
