"""Durations as runbooks write them: `250ms`, `30s`, `5m`, `1h30m`, `2d`, or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
MAX_SECONDS = 366 * 86400
PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"


def parse_duration(value: Any) -> timedelta:
    """Parse a duration; raises ValueError with what was expected."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m)")
    seconds: float | None = None
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        seconds = value
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and re.fullmatch(PATTERN, text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if seconds is None:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 30s, 5m, 1h30m)")
    if not seconds <= MAX_SECONDS:  # also refuses nan and inf
        raise ValueError(f"invalid duration {value!r}: longer than a year")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """The shortest runbook spelling of a duration (`1h30m`, `45s`, `250ms`)."""
    total_ms = round(td.total_seconds() * 1000)
    if total_ms % 1000:
        return f"{total_ms}ms"
    secs = total_ms // 1000
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": PATTERN, "examples": ["30s", "5m", "1h30m"]}),
]
