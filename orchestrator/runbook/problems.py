"""How a validation problem is worded, wherever a runbook or a step's params are checked (the
loader with file:line:col, the resolver after templates, a worker parsing a step's params)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic_core import ErrorDetails


def dotted(loc: Sequence[str | int]) -> str:
    """A location as a path: steps[3].params.weights."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(err: ErrorDetails) -> str:
    """One pydantic error in words a runbook author reads."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field missing"
    if kind == "literal_error":
        return msg.replace("Input should be", "expected")
    if kind.startswith("value_error"):
        return str(msg).removeprefix("Value error, ")
    return (
        f"{msg} (got {err.get('input')!r})"
        if "input" in err and not isinstance(err.get("input"), dict | list)
        else msg
    )
