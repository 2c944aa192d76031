"""The exit codes of the `failover` command (documented in the README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Distinct outcomes a script or an on-call engineer can act on."""

    OK = 0  # succeeded
    FAILED = 1  # an unexpected failure (a bug: please report it)
    INVALID_INPUT = 2  # bad flag, malformed runbook, unknown region: nothing was done
    ROLLED_BACK = 3  # the switch failed and every completed step was undone
    ROLLBACK_FAILED = 4  # the switch failed and an undo failed too: operator needed
    UNREACHABLE = 5  # Temporal, AWS, Kubernetes or the sandbox could not be reached
    NOT_HEALTHY = 6  # a health/status check found a component down
    #: `failover readiness check`: a readiness check is red (the same code: 6 means "a check
    #: found something wrong", whichever command ran it).
    NOT_READY = 6
