"""deploy/Dockerfile, read as Docker reads its instructions (no image can be built here: no
Docker engine, no registry to pull a base from). What it runs is checked against the code it runs:
the entry point and arguments parse as `failover worker` options, the ports it exposes are the ones
those options serve and the ones the Kubernetes manifests probe, the user is the manifests' user,
and what it installs is pinned by requirements.lock."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import typer.main
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orchestrator import health
from orchestrator.cli import app
from tests.deploy.test_manifests import render, worker_container

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[Instruction] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return out


def stages(ins: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each stage (a stage starts at FROM)."""
    out: list[list[Instruction]] = []
    for i in ins:
        if i[0] == "FROM":
            out.append([])
        if out:
            out[-1].append(i)
    return out


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return list(value)


def final(kind: str) -> str:
    found = [a for k, a in stages(instructions(DOCKERFILE.read_text()))[-1] if k == kind]
    assert found, f"no {kind} in the final stage"
    return found[-1]


def worker_params(args: list[str]) -> dict[str, Any]:
    command = typer.main.get_command(app)
    return dict(command.commands["worker"].make_context("worker", list(args)).params)  # type: ignore[attr-defined]


def test_two_stages_on_a_slim_python_3_11() -> None:
    ins = instructions(DOCKERFILE.read_text())
    args = {k: v for k, v in (a.split("=", 1) for w, a in ins if w == "ARG" and "=" in a)}
    parts = stages(ins)
    assert len(parts) == 2
    build, run = (dict_of_from(p[0][1], args) for p in parts)
    assert build["alias"] == "build" and run["alias"] is None
    assert build["image"] == run["image"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?", run["image"]), run["image"]
    # The final stage takes only the virtualenv from the build stage.
    copies = [a for k, a in parts[1] if k == "COPY"]
    assert copies == ["--from=build /opt/failover /opt/failover"]
    assert not [a for k, a in parts[1] if k == "RUN" and "pip" in a]


def dict_of_from(args: str, defaults: dict[str, str]) -> dict[str, Any]:
    words = args.split()
    image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], words[0])
    alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
    return {"image": image, "alias": alias}


def test_a_non_root_user_the_manifests_run_as() -> None:
    user = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, "numeric, so that runAsNonRoot can check it"
    pod = render("us-east-1")
    spec = next(o for o in pod if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsUser"] == int(uid)
    assert spec["securityContext"]["runAsGroup"] == int(gid)


def test_the_entry_point_is_failover_worker_with_health_and_metrics_exposed() -> None:
    assert exec_form(final("ENTRYPOINT")) == ["failover", "worker"]
    params = worker_params(exec_form(final("CMD")))
    assert params["health_host"] == "0.0.0.0" and params["metrics_host"] == "0.0.0.0"
    exposed = {int(p.split("/")[0]) for p in final("EXPOSE").split()}
    assert exposed == {params["health_port"], params["metrics_port"]}
    # The Kubernetes manifests run the same worker options and open the same ports.
    container = worker_container(render("us-east-1"))
    assert worker_params(container["args"]) == params
    assert {p["containerPort"] for p in container["ports"]} == exposed


def test_the_healthcheck_asks_the_liveness_endpoint() -> None:
    check = final("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = exec_form(command)
    port = worker_params(exec_form(final("CMD")))["health_port"]
    assert argv[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}{health.LIVENESS_PATH}" in argv[2]
    compile(argv[2], "<HEALTHCHECK>", "exec")  # valid Python


def test_a_read_only_root_is_enough() -> None:
    env = dict(
        pair.split("=", 1)
        for k, a in stages(instructions(DOCKERFILE.read_text()))[-1]
        if k == "ENV"
        for pair in shlex.split(a)
    )
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == "/tmp" and env["FAILOVER_REPORTS"].startswith("/tmp/")
    assert final("WORKDIR") == "/tmp"
    assert env["PATH"].startswith("/opt/failover/bin:")


def test_what_the_image_installs_is_pinned_by_the_lock() -> None:
    build = stages(instructions(DOCKERFILE.read_text()))[0]
    installs = [a for k, a in build if k == "RUN" and "pip install" in a]
    assert len(installs) == 1
    argv = shlex.split(installs[0].split("&&")[0])
    assert argv[:3] == ["/opt/failover/bin/pip", "install", "--constraint"]
    assert argv[3] == "requirements.lock" and argv[4:] == [".[tracing]"]
    # Every requirement of the product and of that extra is pinned, within its range.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = {
        canonicalize_name(name): version
        for name, _, version in (
            line.strip().partition("==")
            for line in (ROOT / "requirements.lock").read_text().splitlines()
        )
        if version
    }
    wanted = [
        Requirement(r)
        for r in [*project["dependencies"], *project["optional-dependencies"]["tracing"]]
    ]
    assert wanted
    for req in wanted:
        pinned = lock.get(canonicalize_name(req.name))
        assert pinned is not None, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pinned, prereleases=True), (str(req), pinned)
    # The build context lets through what the stage copies.
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    for _, args in [i for i in build if i[0] == "COPY"]:
        for src in args.split()[:-1]:
            assert f"!{src}" in ignore, f"{src} is excluded from the build context"
