#!/usr/bin/env python3
"""Bootstrap and run: the two commands of the README.

    python3 dev.py drill   # venv + install if needed, sandbox up, drill a full region switch
    python3 dev.py drill RUNBOOK --from R1 --to R2 [...]   # the same, with other drill arguments
    python3 dev.py test    # venv + install if needed, then ruff, mypy and the whole pytest suite

Only the standard library is used here, so it runs on a fresh machine with Python 3.11 and pip.
The virtualenv lives in .venv/; it is (re)installed from requirements.lock when pyproject.toml or
the lock file changed since the last install.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".failover-install-hash"
LOCK = ROOT / "requirements.lock"


def _log(msg: str) -> None:
    print(f"[dev] {msg}", file=sys.stderr, flush=True)


def _install_hash() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "requirements.lock"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


#: pip processes installing the lock's pins at once (measured on 2 cores, 120 pins into a new
#: venv: 56 s one after another, 25 s by 2 processes, 20 s by 3).
PIP_PROCESSES = min(4, (os.cpu_count() or 1) + 1)


def ensure_venv() -> None:
    """Create .venv and install the locked dependencies and the project, if not already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists
        sys.exit(f"dev.py: Python >= 3.11 is required (this is {sys.version.split()[0]})")
    wanted = _install_hash()
    if STAMP.exists() and STAMP.read_text() == wanted and (BIN / "python").exists():
        return
    # A new lock gets a new venv (half a minute): what a lock no longer pins must not stay.
    _log(f"creating virtualenv in {VENV}")
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    py = str(BIN / "python")
    _log("installing locked dependencies (requirements.lock); this takes a minute the first time")
    # Not byte-compiled by pip (one file after another): compiled below on every core, while
    # the caller goes on (`compiled()` waits).
    pip = [py, "-m", "pip", "install", "-q", "--no-compile", "--no-deps"]
    # pip unpacks one wheel after another (most of a minute): the pins are shared among a few
    # pip processes at once. Every dependency is pinned, so nothing is resolved (--no-deps) and
    # no two processes touch one package; `pip check` below proves the lock complete.
    pins = [p.strip() for p in LOCK.read_text().splitlines() if p.strip() and p[0] != "#"]
    running = [subprocess.Popen([*pip, *pins[i::PIP_PROCESSES]]) for i in range(PIP_PROCESSES)]
    if any([proc.wait() != 0 for proc in running]):  # (every one waited for)
        sys.exit("dev.py: installing requirements.lock failed (pip says why above)")
    # The project with the sandbox (the local world) and the test tools: the lock pins them all.
    subprocess.run([*pip, "-e", f"{ROOT}[sandbox,test]"], check=True)
    checked = subprocess.run([py, "-m", "pip", "check"], capture_output=True, text=True)
    if checked.returncode != 0:
        sys.exit(f"{checked.stdout}{checked.stderr}dev.py: requirements.lock is incomplete")
    STAMP.write_text(wanted)
    compile_in_background(VENV / "lib")


#: Installed packages that nothing the tests run imports (the tools and moto's CloudFormation
#: linter with what it needs: a third of the files), left to compile when imported.
NOT_IMPORTED = r"/site-packages/(sympy|networkx|cfnlint|pip|mypy|mypyc|setuptools|pkg_resources)/"
#: Byte-compiling under way (`compile_in_background`, `rewrite_tests_in_background`), waited
#: for by `compiled()`.
_COMPILING: list[subprocess.Popen[bytes]] = []


def compile_in_background(*paths: Path | str) -> None:
    """Byte-compile `paths` on every core, in the background. With PYTHONDONTWRITEBYTECODE set
    (as on this machine) nothing else writes .pyc files: every interpreter the tests start
    (sandbox servers, workers, CLI runs: about 150) would compile what it imports again."""
    cmd = [str(BIN / "python"), "-m", "compileall", "-q", "-j", "0", "-x", NOT_IMPORTED]
    cmd += map(str, paths)
    _COMPILING.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL))


def rewrite_tests_in_background() -> None:
    """Collect the tests once, in the background, writing pytest's cache of the test modules
    with their asserts rewritten (__pycache__/*-pytest-*.pyc). pytest reads that cache even with
    PYTHONDONTWRITEBYTECODE set but never writes it then: without this, each of the pytest
    worker processes parses and rewrites every test module again (about 5 CPU-seconds each)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [str(BIN / "python"), "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    _COMPILING.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL))


def compiled() -> None:
    """Wait for the byte-compiling started; a file that does not compile (some packages ship
    sources for other Python versions) only stays uncompiled, as with pip, and a test module
    that does not collect is reported by the run itself."""
    while _COMPILING:
        if _COMPILING.pop().wait() != 0:
            _log("byte-compiling: some files did not compile (they are compiled when imported)")


def _start(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.Popen(args, cwd=ROOT, env=env, **kwargs)


def _run(*args: str) -> int:
    with _start(list(args)) as proc:
        return proc.wait()


DRILL = "runbooks/shop-region-switch.yaml"


def cmd_drill(extra: list[str]) -> int:
    """Bring the sandbox up and switch shop to its other region (the gate approved by a second
    person); run it again to switch back. Extra arguments replace the drill's arguments."""
    compiled()
    rc = _run(str(BIN / "failover"), "sandbox", "up")
    if rc != 0:
        return rc
    if extra:
        return _run(str(BIN / "failover"), "drill", *extra)
    out = subprocess.run(
        [str(BIN / "failover"), "sandbox", "active", "-o", "json"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        return out.returncode
    where = json.loads(out.stdout)
    frm, to = where["active"], where["standby"][0]
    _log(f"shop is active in {frm}: drilling a switch to {to}")
    return _run(str(BIN / "failover"), "drill", DRILL, "--from", frm, "--to", to,
                "--as", "alice", "--auto-approve", "bob")  # fmt: skip


CHROMIUM = "/usr/bin/chromium"


def ensure_browser() -> None:
    """Debian's chromium, for the Temporal Web UI approval test (nothing is downloaded by
    Playwright: it drives this binary)."""
    if os.path.exists(CHROMIUM):
        return
    if os.geteuid() != 0:
        sys.exit(f"dev.py: the browser test needs Debian's chromium at {CHROMIUM}: "
                 "sudo apt-get install -y chromium")  # fmt: skip
    _log("installing Debian's chromium for the Temporal UI browser test")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


#: pytest worker processes (pytest-xdist), each with its own sandbox: the tests mostly wait on
#: the sandbox's modelled latencies, so two cores run more than two at once.
PYTEST_WORKERS = "4"
#: What the test run imports of this checkout, byte-compiled before pytest starts.
COMPILED = ("orchestrator", "workflows", "activities", "tests", "bench")


def cmd_test(extra: list[str]) -> int:
    """Lint, type-check and run the whole test suite; the first failure stops the run.
    Extra arguments go to pytest (a later `-n` overrides the number of workers).

    mypy (half a minute on one core, with no cache on a fresh clone) checks while the tests
    run: they wait on the sandbox's modelled latencies more than they compute. If it fails, the
    tests are stopped and its output is the run's answer."""
    ensure_browser()
    compile_in_background(*COMPILED)  # while ruff and mypy run
    rewrite_tests_in_background()
    for step in ([str(BIN / "ruff"), "check", "."], [str(BIN / "ruff"), "format", "--check", "."]):
        _log("$ " + " ".join([Path(step[0]).name, *step[1:]]))
        rc = _run(*step)
        if rc != 0:
            compiled()
            return rc
    with tempfile.TemporaryFile() as said:  # (a pipe read at the end could fill and block)
        return _mypy_and_tests(extra, said)


def _mypy_and_tests(extra: list[str], said: IO[bytes]) -> int:
    """mypy in the background (its output into `said`), the tests in the foreground."""
    _log("$ mypy (alongside the tests)")
    mypy = _start([str(BIN / "mypy")], stdout=said, stderr=subprocess.STDOUT)
    tests: subprocess.Popen[bytes] | None = None
    try:
        compiled()
        _log("$ python -m pytest -n " + " ".join([PYTEST_WORKERS, *extra]))
        tests = _start([str(BIN / "python"), "-m", "pytest", "-n", PYTEST_WORKERS, *extra])
        checked: int | None = None
        while tests.poll() is None:
            if checked is None and mypy.poll() is not None:
                checked = _mypy_said(mypy, said)
                if checked != 0:
                    _log("mypy failed: stopping the tests")
                    tests.terminate()  # SIGTERM: the tests' teardown still stops the sandboxes
                    tests.wait()
                    return checked
            time.sleep(0.5)
        if checked is None:
            mypy.wait()
            checked = _mypy_said(mypy, said)
        if tests.returncode == 5:  # pytest: no tests collected. Never a silent pass.
            _log("pytest collected no tests: failing")
            return 1
        return tests.returncode or checked
    finally:
        for proc in (mypy, tests):
            if proc is not None and proc.poll() is None:  # interrupted: nothing left behind
                proc.terminate()
                proc.wait()
        compiled()  # nothing left running behind


def _mypy_said(mypy: subprocess.Popen[bytes], out: IO[bytes]) -> int:
    """Print what the finished mypy wrote to `out` (one block, between the tests' lines)."""
    out.seek(0)
    said = out.read().decode(errors="replace")
    sys.stdout.write("".join(f"[mypy] {line}\n" for line in said.splitlines()))
    sys.stdout.flush()
    return int(mypy.returncode or 0)


def main(argv: list[str]) -> int:
    commands = {"drill": cmd_drill, "test": cmd_test}
    if not argv or argv[0] not in commands:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_venv()
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
