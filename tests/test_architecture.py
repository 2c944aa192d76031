"""The house rules, enforced: every module imports on its own (no import cycle hidden by the order
in which modules happen to be imported), and the dependency contracts of pyproject.toml hold
(workflows do no I/O, activities do not reach up to the CLI, the product never imports the
sandbox, models sit at the bottom, no cycles between siblings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("orchestrator", "workflows", "activities")


def modules() -> list[str]:
    """Every module of the three packages (not `__main__`, which runs the CLI)."""
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def fresh_imports(root: Path, packages: tuple[str, ...], names: list[str]) -> dict[str, Any]:
    """tests/import_cycles.py over `names`, in a fresh interpreter with `root` on the path."""
    proc = subprocess.run(
        [sys.executable, "-P", str(ROOT / "tests" / "import_cycles.py"), ",".join(packages), *names],
        capture_output=True, text=True, cwd=root, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout.splitlines()[-1]))


def test_every_module_imports_on_its_own() -> None:
    """Each module would import if it were imported first, with no module of the project loaded
    before it: every member of an import cycle is imported first (see tests/import_cycles.py)."""
    names = modules()
    assert "activities.builtin" in names and "orchestrator.cli.switch" in names
    found = fresh_imports(ROOT, PACKAGES, names)
    assert found["failed"] == {}
    assert found["edges"] > len(names)  # the import statements were seen
    # A package whose __init__ imports its modules is a cycle with each of them (the CLI's
    # sub-apps; not workflows/, whose __init__ imports nothing: see workflows.registry).
    assert "orchestrator.cli.evacuate" in found["first"]
    assert not any(name.startswith("workflows") for name in found["first"])


def test_a_cycle_that_only_some_orders_survive_is_found(tmp_path: Path) -> None:
    """The check itself: `b` works if `a` was imported before it, not when `b` comes first."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("A = 1\nfrom cyc.b import B\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = A\n")
    (pkg / "leaf.py").write_text("import json\n")
    found = fresh_imports(tmp_path, ("cyc",), ["cyc", "cyc.a", "cyc.b", "cyc.leaf"])
    assert found["failed"] == {"cyc.b": "ImportError: cannot import name 'B' from partially "
                               "initialized module 'cyc.b' (most likely due to a circular "
                               "import) (%s)" % (pkg / "b.py")}  # fmt: skip
    assert sorted(found["first"]) == ["cyc.a", "cyc.b"]


def test_the_dependency_contracts_hold() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
         "sys.exit(lint_imports(no_cache=True, no_logo=True))"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


WITHOUT_SANDBOX = """
import importlib.abc, sys

class NoSandbox(importlib.abc.MetaPathFinder):
    '''An install without the [sandbox] extra: the sandbox's code is there, its libraries are not
    (tests/test_packaging.py makes such an install for real).'''
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("moto", "werkzeug", "flask", "waitress"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoSandbox())
sys.argv = ["failover", *sys.argv[1:]]
import orchestrator.worker, orchestrator.switch  # what `failover worker` and `run` use
from orchestrator.cli import main
main()
"""


def test_the_product_runs_without_the_sandbox_installed(tmp_path: Path) -> None:
    def failover(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT_SANDBOX, *args], capture_output=True, text=True,
            cwd=tmp_path, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip

    helped = failover("--help")
    assert helped.returncode == 0 and "worker" in helped.stdout, helped.stderr
    valid = failover("validate", str(ROOT / "runbooks/shop-region-switch.yaml"))
    assert valid.returncode == 0, valid.stderr
    sandbox = failover("sandbox", "up")
    assert sandbox.returncode == 2
    assert sandbox.stderr.strip() == (
        "error: the sandbox is not installed (moto): pip install 'failover-orchestrator[sandbox]'"
    )
