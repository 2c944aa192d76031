"""Label and field selectors, with the grammar kube-apiserver accepts."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]
LabelTest = Callable[[dict[str, str]], bool]

_SET = re.compile(r"^\s*(?P<key>[\w./-]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")
_EQ = re.compile(r"^\s*(?P<key>[\w./-]+)\s*(?P<op>==|=|!=)\s*(?P<value>[\w./-]*)\s*$")
_EXISTS = re.compile(r"^\s*(?P<neg>!?)\s*(?P<key>[\w./-]+)\s*$")


class SelectorError(ValueError):
    """A selector that does not parse."""


def _split(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


def _set_test(key: str, values: set[str], inside: bool) -> LabelTest:
    return lambda labels: (labels.get(key) in values) == inside


def _eq_test(key: str, value: str, equal: bool) -> LabelTest:
    return lambda labels: (labels.get(key) == value) == equal


def _exists_test(key: str, present: bool) -> LabelTest:
    return lambda labels: (key in labels) == present


def _field_test(path: str, value: str, equal: bool) -> Matcher:
    return lambda obj: ((_field(obj, path) or "") == value) == equal


def label_selector(selector: str | None) -> Matcher:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h` into a matcher over an object."""
    if not selector:
        return lambda obj: True
    tests: list[LabelTest] = []
    for term in _split(selector):
        if m := _SET.match(term):
            values = {v.strip() for v in m.group("values").split(",")}
            tests.append(_set_test(m.group("key"), values, m.group("op") == "in"))
        elif m := _EQ.match(term):
            tests.append(_eq_test(m.group("key"), m.group("value"), m.group("op") != "!="))
        elif m := _EXISTS.match(term):
            tests.append(_exists_test(m.group("key"), not m.group("neg")))
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(t(labels) for t in tests)

    return match


def _field(obj: dict[str, Any], path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    if isinstance(cur, bool):
        return str(cur).lower()
    return None if cur is None else str(cur)


def field_selector(selector: str | None) -> Matcher:
    """Parse `metadata.name=x,status.phase!=Running` into a matcher over an object."""
    if not selector:
        return lambda obj: True
    tests: list[Matcher] = []
    for term in _split(selector):
        m = _EQ.match(term)
        if not m:
            raise SelectorError(f"invalid field selector: {term.strip()!r}")
        tests.append(_field_test(m.group("key"), m.group("value"), m.group("op") != "!="))
    return lambda obj: all(t(obj) for t in tests)


def selector_string(match_labels: dict[str, str]) -> str:
    """The label selector string of a matchLabels map (as the scale subresource reports it)."""
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))
