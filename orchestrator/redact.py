"""Secrets never leave the process: the values of secret-looking keys are masked wherever they
appear (logs, reports, the sandbox's call log)."""

from __future__ import annotations

import re
from typing import Any

_SECRET_KEY = re.compile(
    r"(password|secretstring|secretbinary|privatekey|sessiontoken|secretaccesskey|apikey"
    r"|external_?id)$",
    re.I,
)
REDACTED = "***"


def redact(value: Any) -> Any:
    """Replace the values of secret-looking keys, recursively."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
