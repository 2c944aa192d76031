"""Running `failover` commands in the test process (no interpreter start per command): Typer's
test runner with the command's environment, giving what `subprocess.run` would (returncode,
stdout, stderr). Commands that must run in their own process (a worker to SIGKILL, the real
entry point) still use `subprocess`."""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.connection import ConnectionFile


@dataclass
class Ran:
    """What a command did: exit code and its two streams."""

    returncode: int
    stdout: str
    stderr: str


def failover(env: ConnectionFile | None, *args: str, **extra_env: str) -> Ran:
    """Run `failover ARGS` against a sandbox (its connection file), as alice by default, with
    reports written under the sandbox's home."""
    home = env.home if env is not None else os.environ.get("FAILOVER_SANDBOX_HOME", "")
    environ = {
        "FAILOVER_SANDBOX_HOME": home,
        "FAILOVER_USER": "alice",
        "FAILOVER_REPORTS": str(Path(home) / "reports") if home else "",
        "COLUMNS": "200",
        **extra_env,
    }
    result = CliRunner(env=environ).invoke(app, list(args), catch_exceptions=True)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))  # a bug: show it
    return Ran(returncode=result.exit_code, stdout=result.stdout, stderr=stderr)
