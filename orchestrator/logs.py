"""Structured logs (structlog): JSON for machines, console for people; secrets never printed.

Every step activity binds run id, step id, step type, region, phase and attempt to its lines
(`activities.steps`). `redact` masks the values of secret-looking keys wherever they appear.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

import structlog

from orchestrator.redact import redact

LogFormat = Literal["console", "json"]


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
    redacted: dict[str, Any] = redact(dict(event))
    return redacted


class _Stderr:
    """Whatever sys.stderr is when a line is written (not when logging was configured: a
    stream swapped since, and closed, must not turn a log line into an error)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(fmt: LogFormat = "console", level: int = logging.INFO) -> None:
    """Route structlog (and the stdlib loggers Temporal uses) to stderr in the chosen format."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=_Stderr(), format="%(name)s: %(message)s")
