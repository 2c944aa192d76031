"""SSH signatures (`orchestrator.sshsig`) and signing with the operator's key (`orchestrator.signing`)
against OpenSSH itself: what `ssh-keygen -Y sign` signs verifies here, what is signed here
`ssh-keygen -Y verify` accepts, fingerprints are `ssh-keygen -l`'s, a real ssh-agent signs
through our client, and a passphrase-protected key signs through ssh-keygen (passphrase given by
SSH_ASKPASS). Also git's allowed_signers lines, and what is refused with which message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import signing
from orchestrator.approval_auth import NAMESPACE
from orchestrator.runs import Signer
from orchestrator.signing import sign
from orchestrator.sshsig import (
    PublicKey,
    Signature,
    SshSigError,
    parse_allowed_signers,
)

SSH_KEYGEN = shutil.which("ssh-keygen")
MESSAGE = b'{"action":"approve","gate":"approve"}'


def keygen(path: Path, passphrase: str = "", kind: str = "ed25519") -> Path:
    """A fresh key pair made by ssh-keygen (`path` and `path.pub`)."""
    assert SSH_KEYGEN, "ssh-keygen (openssh-client) is needed"
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", passphrase, "-C", path.name, "-f",
                    str(path)], check=True)  # fmt: skip
    return path


def pub(path: Path) -> PublicKey:
    return PublicKey.parse(Path(f"{path}.pub").read_text())


def ssh_verify(tmp: Path, key: Path, signature: Signature, message: bytes, name: str) -> str:
    """`ssh-keygen -Y verify` of a signature against an allowed_signers file naming `key`."""
    allowed = tmp / "allowed_signers"
    allowed.write_text(f"{name} {Path(f'{key}.pub').read_text()}")
    sig = tmp / "message.sig"
    sig.write_text(signature.armored())
    assert SSH_KEYGEN
    proc = subprocess.run(
        [SSH_KEYGEN, "-Y", "verify", "-f", str(allowed), "-I", name, "-n", NAMESPACE, "-s",
         str(sig)], input=message, capture_output=True, check=False,
    )  # fmt: skip
    return (proc.stdout + proc.stderr).decode()


def ssh_sign(key: Path, message: bytes, namespace: str = NAMESPACE) -> Signature:
    assert SSH_KEYGEN
    out = subprocess.run([SSH_KEYGEN, "-q", "-Y", "sign", "-n", namespace, "-f", str(key)],
                         input=message, capture_output=True, check=True)  # fmt: skip
    return Signature.parse(out.stdout.decode())


# --------------------------------------------------------------------------- interop
def test_ssh_keygen_signatures_verify_here(tmp_path: Path) -> None:
    key = keygen(tmp_path / "bob")
    sig = ssh_sign(key, MESSAGE)
    assert sig.key == pub(key) and sig.namespace == NAMESPACE and sig.hash_algorithm == "sha512"
    assert sig.verifies(MESSAGE, NAMESPACE)
    assert not sig.verifies(MESSAGE + b" ", NAMESPACE)
    assert not sig.verifies(MESSAGE, "git")  # a signature for another purpose
    other = ssh_sign(key, MESSAGE, namespace="file")
    assert not other.verifies(MESSAGE, NAMESPACE)


def test_signatures_made_here_verify_with_ssh_keygen(tmp_path: Path) -> None:
    key = keygen(tmp_path / "bob")
    signer = signing.from_file(key)
    sig = signer(MESSAGE)
    assert sig.verifies(MESSAGE, NAMESPACE)
    good = ssh_verify(tmp_path, key, sig, MESSAGE, "bob")
    assert f'Good "{NAMESPACE}" signature for bob with ED25519 key {pub(key).fingerprint}' in good
    bad = ssh_verify(tmp_path, key, sig, MESSAGE + b"!", "bob")
    assert "Good" not in bad
    assert Signature.parse(sig.armored()) == sig  # the armor round-trips


def test_fingerprints_are_ssh_keygens(tmp_path: Path) -> None:
    key = keygen(tmp_path / "k")
    assert SSH_KEYGEN
    listed = subprocess.run([SSH_KEYGEN, "-l", "-f", f"{key}.pub"], capture_output=True,
                            text=True, check=True).stdout.split()  # fmt: skip
    assert listed[1] == pub(key).fingerprint
    line = Path(f"{key}.pub").read_text().split()
    assert pub(key).openssh() == f"{line[0]} {line[1]}"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent on a socket of the test (stopped at the end)."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline and proc.poll() is None, "ssh-agent did not start"
            time.sleep(0.05)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_ssh_agent_signs_with_the_key_listed_for_the_name(
    tmp_path: Path, agent: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob, other, rsa = keygen(tmp_path / "bob"), keygen(tmp_path / "other"), None
    rsa = keygen(tmp_path / "rsa", kind="rsa")
    env = dict(os.environ, SSH_AUTH_SOCK=agent)
    for key in (other, rsa, bob):
        subprocess.run(["ssh-add", "-q", str(key)], env=env, check=True, capture_output=True)
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    held = signing.Agent(agent).keys()
    assert [k.fingerprint for k in held] == [pub(other).fingerprint, pub(bob).fingerprint]
    listed = [
        Signer(name="bob", key=pub(bob).openssh()),
        Signer(name="ann", key=pub(other).openssh()),
    ]
    sig = signing.signer_for(None, "bob", listed)(MESSAGE)
    assert sig.key == pub(bob)
    assert "Good" in ssh_verify(tmp_path, bob, sig, MESSAGE, "bob")
    # --key with a public key file: that key, from the agent
    assert signing.from_file(Path(f"{other}.pub"))(MESSAGE).key == pub(other)
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(
        signing.SigningError, match=r"ssh-agent holds no key listed for carl \(SHA256:"
    ):
        signing.signer_for(None, "carl", [Signer(name="carl", key=pub(stranger).openssh())])
    with pytest.raises(signing.SigningError, match="dora has no key in the run's allowed signers"):
        signing.signer_for(None, "dora", listed)


def test_a_passphrase_protected_key_signs_through_ssh_keygen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = keygen(tmp_path / "locked", passphrase="s3cret pass")
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho 's3cret pass'\n")
    askpass.chmod(0o700)
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    monkeypatch.setenv("SSH_ASKPASS_REQUIRE", "force")
    sig = signing.from_file(key)(MESSAGE)
    assert sig.key == pub(key) and sig.verifies(MESSAGE, NAMESPACE)
    askpass.write_text("#!/bin/sh\necho wrong\n")
    with pytest.raises(signing.SigningError, match=f"ssh-keygen could not sign with {key}"):
        signing.from_file(key)(MESSAGE)


def test_keys_that_cannot_sign_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rsa = keygen(tmp_path / "rsa", kind="rsa")
    with pytest.raises(signing.SigningError, match=r"--key .*rsa: not an ed25519 key"):
        signing.from_file(rsa)
    with pytest.raises(signing.SigningError, match=r"--key .*nowhere: cannot read"):
        signing.from_file(tmp_path / "nowhere")
    junk = tmp_path / "junk"
    junk.write_text("hello")
    with pytest.raises(signing.SigningError, match=r"not an OpenSSH private key"):
        signing.from_file(junk)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(
        signing.SigningError,
        match=r"^approval_auth: signed: give --key .* \(SSH_AUTH_SOCK is not set\)$",
    ):
        signing.signer_for(None, "bob", [])


# ---------------------------------------------------------------------- parsing
def test_signatures_and_keys_that_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SshSigError, match="ssh-rsa keys are not supported: use an ed25519 key"):
        PublicKey.parse("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7")
    with pytest.raises(SshSigError, match=r"expected 'ssh-ed25519 AAAA\.\.\.'"):
        PublicKey.parse("AAAAC3NzaC1lZDI1NTE5")
    with pytest.raises(SshSigError, match="the public key is not base64"):
        PublicKey.parse("ssh-ed25519 !!!")
    with pytest.raises(SshSigError, match="not an armored SSH signature"):
        Signature.parse("hello")
    with pytest.raises(SshSigError, match="no SSHSIG preamble"):
        Signature.parse(b"SSHSIX" + b"\0" * 40)
    key = keygen(tmp_path / "k")
    blob = ssh_sign(key, MESSAGE).blob
    with pytest.raises(SshSigError, match="truncated SSH data"):
        Signature.parse(blob[:-5])
    with pytest.raises(SshSigError, match="trailing bytes"):
        Signature.parse(blob + b"x")


def test_allowed_signers_lines(tmp_path: Path) -> None:
    a, b = pub(keygen(tmp_path / "a")).openssh(), pub(keygen(tmp_path / "b")).openssh()
    text = "\n".join([
        "# team keys",
        "",
        f"ann,ops-ann {a} ann@laptop",
        f'bob namespaces="git,failover-*" {b}',
        f'carl namespaces="git" {b}',  # not for approvals: skipped, as ssh-keygen would
    ])  # fmt: skip
    found = parse_allowed_signers(text, NAMESPACE)
    assert [(s.name, s.key.openssh()) for s in found] == [("ann", a), ("ops-ann", a), ("bob", b)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("dan ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7", "people:2: ssh-rsa keys are not supported"),
        ('dan cert-authority ssh-ed25519 AAAA', "people:2: the cert-authority option is not supported"),
        ('dan valid-after="20240101" ssh-ed25519 AAAA', "people:2: the valid-after option is not supported"),
        ("*@example.com ssh-ed25519 KEY", "people:2: principal patterns are not supported"),
        ("dan", "people:2: expected 'ssh-ed25519 AAAA...'"),
    ],
)  # fmt: skip
def test_allowed_signers_lines_that_are_refused(tmp_path: Path, line: str, message: str) -> None:
    key = pub(keygen(tmp_path / "k")).openssh()
    text = f"# first\n{line.replace('ssh-ed25519 KEY', key)}\n"
    with pytest.raises(SshSigError, match=f"^{re.escape(message)}"):
        parse_allowed_signers(text, NAMESPACE, source="people")


def test_sign_in_memory_matches_the_format(tmp_path: Path) -> None:
    """A key generated in memory signs what ssh-keygen then verifies (no key file at all)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    sig = sign(private, MESSAGE, NAMESPACE)
    path = tmp_path / "mem"
    Path(f"{path}.pub").write_text(
        private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                          serialization.PublicFormat.OpenSSH).decode() + "\n"
    )  # fmt: skip
    assert "Good" in ssh_verify(tmp_path, path, sig, MESSAGE, "mem")


# ------------------------------------------------------------- Ed25519 in plain Python
def test_rfc8032_test_vector_1() -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from orchestrator import ed25519

    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    sig = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    private = Ed25519PrivateKey.from_private_bytes(seed)
    assert private.public_key().public_bytes_raw() == public and private.sign(b"") == sig
    assert ed25519.verify(public, b"", sig)
    assert not ed25519.verify(public, b"x", sig)


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=200), flip=st.integers(min_value=0, max_value=96 * 8 - 1))
def test_verification_agrees_with_openssl(message: bytes, flip: int) -> None:
    """Valid signatures verify; one flipped bit anywhere in key, signature or message (or a
    random signature) verifies exactly when OpenSSL says it does."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from orchestrator import ed25519

    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    sig = private.sign(message)
    assert ed25519.verify(public, message, sig)
    data = bytearray(public + sig)
    data[flip // 8] ^= 1 << (flip % 8)
    key2, sig2 = bytes(data[:32]), bytes(data[32:])

    def openssl(key: bytes, msg: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, msg)
        except (InvalidSignature, ValueError):
            return False
        return True

    assert ed25519.verify(key2, message, sig2) == openssl(key2, message, sig2) is False
    if message:
        changed = bytes([message[0] ^ 1]) + message[1:]
        assert not ed25519.verify(public, changed, sig)
    noise = os.urandom(64)
    assert ed25519.verify(public, message, noise) == openssl(public, message, noise)


def test_malformed_inputs_never_verify() -> None:
    from orchestrator import ed25519

    assert not ed25519.verify(b"\0" * 31, b"", b"\0" * 64)
    assert not ed25519.verify(b"\0" * 32, b"", b"\0" * 63)
    assert not ed25519.verify(b"\xff" * 32, b"", b"\0" * 64)  # y >= p: not a point
    big_s = b"\0" * 32 + (ed25519.L).to_bytes(32, "little")  # S = L: refused (malleability)
    assert not ed25519.verify(b"\x01" + b"\0" * 31, b"", big_s)
