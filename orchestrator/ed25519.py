"""Ed25519 signature verification (RFC 8032, section 5.1.7) in plain Python.

Why not `cryptography`: the workflow's Update validators verify approvals inside Temporal's
workflow sandbox, and `cryptography`'s native code imports its InvalidSignature exception lazily,
the first time a signature fails, through the interpreter's import machinery: inside the sandbox
that import fails and the native code aborts the whole worker process. Here a bad signature is
just False; the computation is integers and SHA-512, deterministic wherever it runs. It is slow
next to OpenSSL (a few milliseconds a signature), which a person's decision can afford.

Only verification: nothing secret is handled, so timing does not matter. As OpenSSL does, the
check is cofactorless and compares encodings: [S]B - [k]A must encode to the signature's R
(a non-canonical R, or S >= L, never verifies). Tested against `cryptography` (OpenSSL) on
valid, tampered and random inputs.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, T = XY/Z


def _x(y: int, sign: int) -> int | None:
    """The x of the curve point with this y and x's low bit (None: no such point)."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    return P - x if (x & 1) != sign else x


def _add(p: Point, q: Point) -> Point:
    """p + q (the unified formula of RFC 8032: also doubles)."""
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _times(n: int, p: Point) -> Point:
    out: Point = (0, 1, 1, 0)  # the neutral element
    while n:
        if n & 1:
            out = _add(out, p)
        p = _add(p, p)
        n >>= 1
    return out


def _encode(p: Point) -> bytes:
    zinv = pow(p[2], P - 2, P)
    x, y = p[0] * zinv % P, p[1] * zinv % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(data: bytes) -> Point | None:
    n = int.from_bytes(data, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    x = _x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


_GY = 4 * pow(5, P - 2, P) % P
_GX = _x(_GY, 0)
assert _GX is not None
B: Point = (_GX, _GY, 1, _GX * _GY % P)


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` (64 bytes) is the Ed25519 signature of `message` by the key whose
    32-byte encoding is `public`."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decode(public)
    if a is None:
        return False
    r, s = signature[:32], int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(r + public + message).digest(), "little") % L
    minus_ka = _times(k, (P - a[0], a[1], a[2], P - a[3]))
    return _encode(_add(_times(s, B), minus_ka)) == r
