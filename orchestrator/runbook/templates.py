"""The runbook template syntax: `${{ from_region }}`, `${{ to_region }}`, `${{ params.NAME }}`,
and the region lists `${{ regions }}`, `${{ survivors }}`, `${{ others }}` (and `${{ each }}` in a
step repeated with `for_each`).

Substitution only: no expressions, no function calls, no attribute access beyond `params.NAME`.
A string that is exactly one reference keeps the value's type (a parameter can be a number, a
region list is a list).

The region lists, in the runbook's order:

- `regions`: every region the runbook names;
- `survivors`: every region but the source (`from_region`): where traffic can go;
- `others`: every region but the source and the target: the bystanders of a switch.

A list is a whole value (`expect: ${{ survivors }}`), a mapping key, or a step's `for_each`; never
part of a longer string. Mapping keys are rendered too (as strings), so params can be keyed by
region; a key that is a region list sets each of its regions to the value, and a later entry wins
over an earlier one, so weights over every region read

    weights: {"${{ regions }}": 0, "${{ to_region }}": 100}

and a spread over the survivors (Route 53 weights are relative: equal weights split evenly)

    weights: {"${{ from_region }}": 0, "${{ survivors }}": 1}
"""

from __future__ import annotations

import re
from typing import Any

REFERENCE = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
#: The region lists a runbook can name (the context holds them as lists).
REGION_LISTS = ("regions", "survivors", "others")
#: The region a `for_each` step's copy is for.
EACH = "each"
_NAME = re.compile(
    r"^(from_region|to_region|regions|survivors|others|each|params\.[A-Za-z_][A-Za-z0-9_]*)$"
)
ALLOWED = "from_region, to_region, regions, survivors, others, each (in for_each) or params.NAME"


class TemplateError(ValueError):
    """A reference that is not allowed or not defined."""


def references(value: Any) -> list[str]:
    """Every reference in a value (recursively), checked against the allowed grammar."""
    found: list[str] = []
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        for ref in REFERENCE.findall(value):
            if not _NAME.match(ref):
                raise TemplateError(f"unsupported template ${{{{ {ref} }}}}: use {ALLOWED}")
            if ref in REGION_LISTS and not whole:
                raise TemplateError(
                    f"${{{{ {ref} }}}} is a list of regions: use it as a whole value, a mapping "
                    "key or a for_each, not inside a string"
                )
            found.append(ref)
    elif isinstance(value, dict):
        for k, v in value.items():
            found += references(k) + references(v)
    elif isinstance(value, list):
        for v in value:
            found += references(v)
    return found


def region_lists(regions: list[str], from_region: str, to_region: str) -> dict[str, list[str]]:
    """The context entries of the region lists, in the runbook's order."""
    return {
        "regions": list(regions),
        "survivors": [r for r in regions if r != from_region],
        "others": [r for r in regions if r not in (from_region, to_region)],
    }


def render(value: Any, context: dict[str, Any]) -> Any:
    """Substitute every reference in value from context (keys: from_region, to_region, the
    region lists, each, params.X)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), context)
        return REFERENCE.sub(lambda m: str(_scalar(m.group(1), context)), value)
    if isinstance(value, dict):  # keys too: {"${{ to_region }}": 100}, {"${{ others }}": 0}
        out: dict[str, Any] = {}
        for k, v in value.items():
            key, rendered = render(k, context), render(v, context)
            for name in key if isinstance(key, list) else [key]:
                out.pop(str(name), None)  # a later entry wins, and takes its place in the order
                out[str(name)] = rendered
        return out
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def _lookup(ref: str, context: dict[str, Any]) -> Any:
    ref = ref.strip()
    if not _NAME.match(ref) or ref not in context:
        raise TemplateError(f"undefined template reference ${{{{ {ref} }}}}")
    value = context[ref]
    return list(value) if isinstance(value, list) else value


def _scalar(ref: str, context: dict[str, Any]) -> Any:
    value = _lookup(ref, context)
    if isinstance(value, list):
        raise TemplateError(f"${{{{ {ref.strip()} }}}} is a list of regions: not inside a string")
    return value
