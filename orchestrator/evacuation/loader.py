"""Load and validate an evacuation plan file; every problem names file, line, column and what was
expected (the runbook loader's machinery and wording).

Checked here: the structure (pydantic), unique service names, known dependencies on other
services, no cycle, no dependency on a service of a later tier, every runbook file loads (its own
problems keep their own file:line:col), and every parameter is one its runbook has. What needs the
runbooks resolved (two services writing the same resource, static stability of an unplanned run)
is checked by `orchestrator.evacuation.resolve.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from orchestrator.evacuation.models import EvacuationPlan
from orchestrator.runbook import graph
from orchestrator.runbook.loader import (
    Loc,
    Problem,
    RunbookError,
    _Collector,
    _Positions,
    parse_yaml,
)
from orchestrator.runbook.loader import load_file as load_runbook
from orchestrator.runbook.models import Runbook

KIND = "Evacuation"


@dataclass
class LoadedPlan:
    """A valid plan, its runbooks by service, and where each service is in the file."""

    plan: EvacuationPlan
    file: str
    runbooks: dict[str, Runbook]
    #: service name -> (line, column) of its `runbook:` (where problems of the service point).
    where: dict[str, tuple[int, int]] = field(default_factory=dict)

    def problem(self, service: str, message: str) -> Problem:
        """A problem located at a service's `runbook:` (services[i].runbook)."""
        line, col = self.where.get(service, (1, 1))
        names = [s.name for s in self.plan.services]
        path = f"services[{names.index(service)}].runbook" if service in names else "services"
        return Problem(self.file, line, col, path, message)


def kind_of(path: str | Path) -> str | None:
    """The `kind:` of a YAML file (None if it cannot be read or has none): Runbook or Evacuation."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def load_file(path: str | Path) -> LoadedPlan:
    """Load a plan file and the runbooks it names (RunbookError listing every problem)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RunbookError([Problem(str(p), 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    return load_text(text, str(path), p.parent)


def load_text(text: str, file: str = "<plan>", base: Path | None = None) -> LoadedPlan:
    """Parse and validate plan YAML; runbook paths are relative to `base` (default: cwd)."""
    node, data = parse_yaml(text, file)
    positions = _Positions(node)
    out = _Collector(file, positions)
    if not isinstance(data, dict):
        out.add((), "an evacuation plan is a YAML mapping (apiVersion, kind, name, services, ...)")
        raise RunbookError(out.problems)
    try:
        plan = EvacuationPlan.model_validate(data)
    except ValidationError as exc:
        out.from_validation(exc)
        raise RunbookError(out.problems) from None
    loaded = LoadedPlan(plan=plan, file=file, runbooks={})
    extra: list[Problem] = []
    _check(plan, out, loaded, base or Path("."), positions, extra)
    problems = [*out.problems, *dict.fromkeys(extra)]  # a runbook two services share: once
    if problems:
        raise RunbookError(problems)
    return loaded


def _check(
    plan: EvacuationPlan,
    out: _Collector,
    loaded: LoadedPlan,
    base: Path,
    positions: _Positions,
    extra: list[Problem],
) -> None:
    index: dict[str, int] = {}
    for i, s in enumerate(plan.services):
        loaded.where[s.name] = positions.of(("services", i, "runbook"))
        if s.name in index:
            out.add(
                ("services", i, "name"),
                f"duplicate service {s.name!r} (first at services[{index[s.name]}])",
            )
        else:
            index[s.name] = i
    deps: dict[str, list[str]] = {}
    for i, s in enumerate(plan.services):
        deps.setdefault(s.name, [])
        for j, dep in enumerate(s.depends_on):
            at: Loc = ("services", i, "depends_on", j)
            if dep not in index:
                out.add(at, f"depends on unknown service {dep!r}")
            elif dep == s.name:
                out.add(at, "a service cannot depend on itself")
            elif (later := plan.services[index[dep]].tier) > s.tier:
                why = f"{dep!r} is in tier {later}, after this service's tier {s.tier}"
                out.add(at, f"{why}: a service cannot wait for a later tier")
            else:
                deps[s.name].append(dep)
        _load_runbook(s.name, s.runbook, s.params, ("services", i), base, out, loaded, extra)
    cycle = graph.find_cycle(deps)
    if cycle:
        out.add(
            ("services", index[cycle[0]], "depends_on"), "dependency cycle: " + " -> ".join(cycle)
        )


def _load_runbook(
    name: str,
    ref: str,
    params: dict[str, object],
    at: Loc,
    base: Path,
    out: _Collector,
    loaded: LoadedPlan,
    extra: list[Problem],
) -> None:
    path = Path(ref) if Path(ref).is_absolute() else base / ref
    if not path.is_file():
        out.add((*at, "runbook"), f"no runbook file {ref!r} (looked for {path})")
        return
    try:
        rb = load_runbook(path)
    except RunbookError as exc:
        first = exc.problems[0]
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        out.add((*at, "runbook"), f"runbook {ref!r} is not valid: {first}{more}")
        extra.extend(exc.problems)
        return
    loaded.runbooks[name] = rb
    for key in params:
        if key not in rb.parameters:
            known = ", ".join(sorted(rb.parameters)) or "none"
            out.add(
                (*at, "params", key),
                f"runbook {rb.name!r} has no parameter {key!r} (it has: {known})",
                key=True,
            )
