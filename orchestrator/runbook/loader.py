"""Load and validate a runbook file; every error names file, line, column and what was expected.

Structure is checked by the pydantic models, each step's params by its type's own model, and the
whole by the rules of a safe switch: known step types, unique ids, known dependencies, no cycles,
known template references, a mutating step has an undo or says `irreversible: true`, and an
irreversible step has an approval gate among the steps it depends on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from activities import registry
from orchestrator.runbook import graph
from orchestrator.runbook.models import (
    UNION_TAGS,
    Action,
    GameDay,
    GuardSpec,
    Replacement,
    Runbook,
    Step,
    Unplanned,
)
from orchestrator.runbook.modes import KINDS, Kind, select
from orchestrator.runbook.problems import describe, dotted
from orchestrator.runbook.templates import EACH, REGION_LISTS, TemplateError, references

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runbook, located in its file."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class RunbookError(ValueError):
    """The runbook is invalid; `problems` lists every error found (first one in the message)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        extra = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{extra}")


class _Positions:
    """Line/column of every node of a YAML document, by path."""

    def __init__(self, node: yaml.Node | None) -> None:
        self.marks: dict[Loc, tuple[int, int]] = {}
        if node is not None:
            self._walk(node, ())

    def _walk(self, node: yaml.Node, path: Loc) -> None:
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, str(key.value))
                self.marks[(*child, "__key__")] = (
                    key.start_mark.line + 1,
                    key.start_mark.column + 1,
                )
                self._walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, (*path, i))

    def of(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """Position of loc (of its key, if asked), else of its nearest existing parent."""
        if key and (*loc, "__key__") in self.marks:
            return self.marks[(*loc, "__key__")]
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.marks:
                return self.marks[loc[:n]]
        return (1, 1)


class _Collector:
    def __init__(self, file: str, positions: _Positions) -> None:
        self.file, self.positions = file, positions
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # valid, but someone should know (validate says so)

    def add(self, loc: Loc, message: str, key: bool = False) -> None:
        self.problems.append(self._at(loc, message, key))

    def warn(self, loc: Loc, message: str, key: bool = False) -> None:
        self.warnings.append(self._at(loc, message, key))

    def _at(self, loc: Loc, message: str, key: bool) -> Problem:
        line, col = self.positions.of(loc, key)
        return Problem(self.file, line, col, dotted(loc), message)

    def from_validation(self, exc: ValidationError, prefix: Loc = ()) -> None:
        for err in exc.errors():
            loc = tuple(p for p in (*prefix, *err["loc"]) if p not in UNION_TAGS)
            self.add(loc, describe(err), key=err["type"] == "extra_forbidden")


def load_text(text: str, file: str = "<runbook>") -> Runbook:
    """Parse and validate runbook YAML; raises RunbookError listing every problem."""
    return check_text(text, file)[0]


def parse_yaml(text: str, file: str) -> tuple[Any, Any]:
    """The YAML's node tree (for positions) and its data; invalid YAML is a RunbookError
    located at the parser's mark."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RunbookError([Problem(file, line, col, "", f"not valid YAML: {problem}")]) from None


def check_text(text: str, file: str = "<runbook>") -> tuple[Runbook, list[Problem]]:
    """Like `load_text`, with the runbook's warnings: what is valid but someone should know
    (a game day that runs unattended), located like problems."""
    node, data = parse_yaml(text, file)
    out = _Collector(file, _Positions(node))
    if not isinstance(data, dict):
        out.add((), "a runbook is a YAML mapping (apiVersion, kind, name, regions, steps, ...)")
        raise RunbookError(out.problems)
    try:
        runbook = Runbook.model_validate(data)
    except ValidationError as exc:
        out.from_validation(exc)
        raise RunbookError(out.problems) from None
    _check(runbook, out)
    if out.problems:
        raise RunbookError(out.problems)
    return runbook, out.warnings


def load_file(path: str | Path) -> Runbook:
    """Load a runbook file (see load_text)."""
    return check_file(path)[0]


def check_file(path: str | Path) -> tuple[Runbook, list[Problem]]:
    """Load a runbook file, with its warnings (see check_text)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise RunbookError([Problem(str(p), 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    return check_text(text, str(path))


def _check(rb: Runbook, out: _Collector) -> None:
    where: dict[str, Loc] = {}  # step id -> its location (steps[i] or recovery[i])
    located: list[tuple[Loc, Step]] = [(("steps", i), s) for i, s in enumerate(rb.steps)]
    located += [(("recovery", i), s) for i, s in enumerate(rb.recovery)]
    for loc, step in located:
        if step.id in where:
            first = _path(where[step.id])
            out.add((*loc, "id"), f"duplicate step id {step.id!r} (first at {first})")
        else:
            where[step.id] = loc
    allowed_refs = {"from_region", "to_region", *REGION_LISTS,
                    *(f"params.{p}" for p in rb.parameters)}  # fmt: skip
    deps: dict[str, list[str]] = {}
    for loc, step in located:
        deps.setdefault(step.id, [])
        for j, dep in enumerate(step.depends_on):
            if dep not in where:
                out.add((*loc, "depends_on", j), f"depends on unknown step {dep!r}")
            elif dep == step.id:
                out.add((*loc, "depends_on", j), "a step cannot depend on itself")
            elif loc[0] == "steps" and where[dep][0] == "recovery":
                out.add((*loc, "depends_on", j), f"{dep!r} is a recovery step: a switch step "
                        "cannot depend on it")  # fmt: skip
            else:
                deps[step.id].append(dep)
        refs = _check_for_each(rb, step, loc, out, allowed_refs)
        _check_step(step, loc, refs, out)
        _check_modes(step, loc, refs, out)
    if rb.gameday is not None:
        _check_gameday(rb, rb.gameday, ("gameday",), allowed_refs, out)
    for name, gd in rb.gamedays.items():
        _check_gameday(rb, gd, ("gamedays", name), allowed_refs, out)
    if rb.guard is not None:
        _check_guard(rb, rb.guard, allowed_refs, out)
    cycle = graph.find_cycle(deps)
    if cycle:
        out.add((*where[cycle[0]], "depends_on"), "dependency cycle: " + " -> ".join(cycle))
        return
    # Each kind of run on its own: an irreversible step behind an approval gate in that run.
    for kind in KINDS:
        if kind == "unplanned" and not rb.has_unplanned:
            continue
        chosen = select(rb, kind).steps
        kind_deps = {s.id: s.depends_on for s in chosen}
        gates = {s.id for s in chosen if (t := registry.get(s.type)) is not None and t.gate}
        for step in chosen:
            if step.irreversible and not (graph.ancestors(kind_deps, step.id) & gates):
                at: Loc = where[step.id]
                if kind == "unplanned" and isinstance(rb.step(step.id).unplanned, Unplanned):
                    at = (*at, "unplanned", "replace")
                out.add(
                    (*at, "irreversible"),
                    "an irreversible step must depend (directly or not) on an approval step"
                    + ("" if kind == "planned" else f" (in {kind} runs)"),
                    key=True,
                )


def _path(loc: Loc) -> str:
    return f"{loc[0]}[{loc[1]}]"


def _check_step(
    step: Step | Replacement, loc: Loc, allowed_refs: set[str], out: _Collector
) -> None:
    """A step's (or a replacement's) type, params, guards and template references."""
    step_type = registry.get(step.type)
    if step_type is None:
        known = ", ".join(sorted(registry.STEP_TYPES))
        out.add((*loc, "type"), f"unknown step type {step.type!r} (known: {known})")
    else:
        _check_params(step_type, step.params, (*loc, "params"), out)
        if step_type.mutating and not step_type.reversible and not step.irreversible:
            out.add(
                (*loc, "type"),
                f"step type {step.type!r} cannot be undone: mark the step `irreversible: true`",
            )
    for g, guard in enumerate(step.guards):
        gtype = registry.get(guard.type)
        if gtype is None:
            out.add((*loc, "guards", g, "type"), f"unknown guard type {guard.type!r}")
        elif gtype.mutating or gtype.gate:
            out.add(
                (*loc, "guards", g, "type"),
                f"a guard must be a read-only check; {guard.type!r} is not",
            )
        else:
            _check_params(gtype, guard.params, (*loc, "guards", g, "params"), out)
    _check_refs({"params": step.params, "region": step.region}, loc, allowed_refs, out)


def _check_for_each(
    rb: Runbook, step: Step, loc: Loc, out: _Collector, allowed_refs: set[str]
) -> set[str]:
    """A repeated step names a region list (a template of one, or regions of the runbook);
    the references its copies may use (`each` too)."""
    if step.for_each is None:
        return allowed_refs
    at: Loc = (*loc, "for_each")
    lists = ", ".join(f"${{{{ {n} }}}}" for n in REGION_LISTS)
    if isinstance(step.for_each, list):
        for i, region in enumerate(step.for_each):
            if region not in rb.regions:
                out.add((*at, i), f"{region!r} is not one of the runbook's regions "
                        f"({', '.join(rb.regions)})")  # fmt: skip
    else:
        try:
            refs = references(step.for_each)
        except TemplateError as exc:
            refs, problem = [], str(exc)
        else:
            problem = ""
        whole = step.for_each.strip().startswith("${{") and step.for_each.strip().endswith("}}")
        if problem or len(refs) != 1 or refs[0] not in REGION_LISTS or not whole:
            out.add(at, problem or f"for_each takes a region list: {lists}, or regions written out")
    return allowed_refs | {EACH}


def _check_modes(step: Step, loc: Loc, allowed_refs: set[str], out: _Collector) -> None:
    """`planned:` and `unplanned:` make sense together; a replacement is a step of its own."""
    if loc[0] == "recovery":
        for field in ("planned", "unplanned"):
            if getattr(step, field) != "run":
                out.add((*loc, field), f"a recovery step runs only in recoveries: no {field}: "
                        "here", key=True)  # fmt: skip
        return
    if step.planned == "skip" and step.unplanned in ("skip", "defer"):
        out.add((*loc, "planned"), "the step would never run (skipped in planned runs and "
                f"{step.unplanned} in unplanned ones)", key=True)  # fmt: skip
    if isinstance(step.unplanned, Unplanned):
        _check_step(step.unplanned.replace, (*loc, "unplanned", "replace"), allowed_refs, out)


def _check_params(step_type: Any, params: dict[str, Any], loc: Loc, out: _Collector) -> None:
    try:
        refs = references(params)
    except TemplateError:
        return  # reported by the template check
    if refs:
        # Templated values are validated at run time, once rendered; check the rest now.
        params = {k: v for k, v in params.items() if not references(v)}
        try:
            step_type.Params.model_validate(params)
        except ValidationError as exc:
            for err in exc.errors():
                if err["type"] != "missing":
                    out.add(
                        (*loc, *err["loc"]), describe(err), key=err["type"] == "extra_forbidden"
                    )
        return
    try:
        step_type.Params.model_validate(params)
    except ValidationError as exc:
        out.from_validation(exc, loc)


def _check_gameday(
    rb: Runbook, gd: GameDay, at: Loc, allowed_refs: set[str], out: _Collector
) -> None:
    """A game-day section: a reversible fault, read-only detectors, known parameters; an
    unplanned one needs a runbook that says what its unplanned runs do and owe."""
    if gd.mode == "unplanned" and not any(s.unplanned == "defer" for s in rb.steps):
        out.add(
            (*at, "mode"),
            "an unplanned game day recovers the failed region: the runbook must defer its work "
            "on it (`unplanned: defer` on some steps)",
            key=True,
        )
    actions = [((*at, "fault"), gd.fault, "fault")] + [
        ((*at, "detect", i), a, "detect") for i, a in enumerate(gd.detect)
    ]
    _check_actions(actions, allowed_refs, out)
    _check_known_params(rb, gd.params, at, out)
    _check_gameday_approval(rb, gd, at, out)
    seen: set[str] = set()
    for i, cond in enumerate(gd.stop_conditions):
        if cond.name in seen:
            out.add((*at, "stop_conditions", i, "name"), f"duplicate name {cond.name!r}")
        seen.add(cond.name)


def _check_gameday_approval(rb: Runbook, gd: GameDay, at: Loc, out: _Collector) -> None:
    """Who approves a game day's switches: a person (`approval: true`, as many as `approvals`)
    or nobody (`unattended: true`, a warning naming the gates that will wait for people
    anyway). Neither is an error: a schedule must not approve gates silently."""
    if gd.approval and gd.unattended:
        out.add((*at, "unattended"), "set approval: true or unattended: true, not both",
                key=True)  # fmt: skip
        return
    if not gd.approval and not gd.unattended:
        out.add(
            (*at, "approval") if "approval" in gd.model_fields_set else at,
            "say who approves the game day's switches: `approval: true` (a person approves the "
            "game day, which covers its switches' gates) or `unattended: true` (nobody does; a "
            "gate an irreversible step depends on still waits for a person)",
            key=True,
        )
        return
    if gd.unattended:
        if "approvals" in gd.model_fields_set:
            out.add((*at, "approvals"), "approvals needs approval: true (an unattended game day "
                    "is approved by nobody)", key=True)  # fmt: skip
        left = _gates_left_unattended(rb, gd)
        waits = (
            f"; gates that still wait for people: {', '.join(left)}"
            if left
            else " (none of them waits for a person)"
        )
        out.warn(
            (*at, "unattended"),
            "runs with nobody approving it: its switches' gates are approved by whoever starts "
            f"or schedules it{waits}",
            key=True,
        )
    elif rb.approvers and gd.approvals > len(rb.approvers):
        out.add(
            (*at, "approvals"),
            f"{gd.approvals} approvals needed but the runbook names {len(rb.approvers)} "
            f"approvers ({', '.join(rb.approvers)})",
            key=True,
        )


def _gates_left_unattended(rb: Runbook, gd: GameDay) -> list[str]:
    """The gates of a game day's runs that an unattended game day leaves to people: those an
    irreversible step depends on, and those that need several approvers ("ID (KIND)")."""
    kinds: list[Kind] = [gd.mode, "recovery", "planned"] if gd.mode == "unplanned" else ["planned"]
    left: list[str] = []
    for kind in dict.fromkeys(kinds):
        chosen = select(rb, kind).steps
        deps = {s.id: s.depends_on for s in chosen}
        guarding = {g for s in chosen if s.irreversible for g in graph.ancestors(deps, s.id)}
        for s in chosen:
            t = registry.get(s.type)
            if t is None or not t.gate:
                continue
            try:
                needed = getattr(t.parse(s.params), "approvals", 1)
            except ValueError:  # a template: known once resolved
                needed = 1
            if s.id in guarding or needed > 1:
                left.append(f"{s.id} ({kind})")
    return left


def _check_guard(rb: Runbook, guard: GuardSpec, allowed_refs: set[str], out: _Collector) -> None:
    """The guard section: read-only detectors, known parameters, a mode the runbook supports."""
    at: Loc = ("guard",)
    if guard.mode == "unplanned" and not rb.has_unplanned:
        why = "the runbook says nothing of unplanned runs (no step has `unplanned:` or `planned:`)"
        out.add((*at, "mode"), f"{why}: use mode: planned, or describe them", key=True)
    actions = [((*at, "detect", i), a, "detect") for i, a in enumerate(guard.detect)]
    _check_actions(actions, allowed_refs, out)
    _check_known_params(rb, guard.params, at, out)


def _check_known_params(rb: Runbook, params: dict[str, Any], at: Loc, out: _Collector) -> None:
    for name in params:
        if name not in rb.parameters:
            out.add((*at, "params", name), f"unknown runbook parameter {name!r}", key=True)


def _check_actions(
    actions: list[tuple[Loc, Action, str]], allowed_refs: set[str], out: _Collector
) -> None:
    """Faults and detectors: registered types fit for the role, valid params, known refs."""
    for loc, action, role in actions:
        stype = registry.get(action.type)
        if stype is None:
            known = ", ".join(sorted(registry.STEP_TYPES))
            out.add((*loc, "type"), f"unknown step type {action.type!r} (known: {known})")
            continue
        if role == "fault" and not (stype.mutating and stype.reversible and stype.fault):
            out.add(
                (*loc, "type"),
                f"{action.type!r} is not a fault step type (one that injects and removes a fault)",
            )
        if role == "detect" and (stype.mutating or stype.gate):
            out.add((*loc, "type"), f"a detector must be a read-only check; {action.type!r} is not")
        _check_params(stype, action.params, (*loc, "params"), out)
        _check_refs({"params": action.params, "region": action.region}, loc, allowed_refs, out)


def _check_refs(fields: dict[str, Any], loc: Loc, allowed: set[str], out: _Collector) -> None:
    """Every template reference in these fields must be one the runbook defines."""
    for field, value in fields.items():
        try:
            unknown = [r for r in references(value) if r not in allowed]
        except TemplateError as exc:
            out.add((*loc, field), str(exc))
            continue
        for ref in unknown:
            out.add((*loc, field), f"undefined template reference ${{{{ {ref} }}}}")
