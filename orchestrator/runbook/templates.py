"""The runbook template syntax: `${{ from_region }}`, `${{ to_region }}`, `${{ params.NAME }}`.

Substitution only: no expressions, no function calls, no attribute access beyond `params.NAME`.
A string that is exactly one reference keeps the value's type (a parameter can be a number).
Mapping keys are rendered too (as strings), so params can be keyed by region.
"""

from __future__ import annotations

import re
from typing import Any

REFERENCE = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_NAME = re.compile(r"^(from_region|to_region|params\.[A-Za-z_][A-Za-z0-9_]*)$")


class TemplateError(ValueError):
    """A reference that is not allowed or not defined."""


def references(value: Any) -> list[str]:
    """Every reference in a value (recursively), checked against the allowed grammar."""
    found: list[str] = []
    if isinstance(value, str):
        for ref in REFERENCE.findall(value):
            if not _NAME.match(ref):
                raise TemplateError(
                    f"unsupported template ${{{{ {ref} }}}}: use from_region, to_region or "
                    "params.NAME"
                )
            found.append(ref)
    elif isinstance(value, dict):
        for k, v in value.items():
            found += references(k) + references(v)
    elif isinstance(value, list):
        for v in value:
            found += references(v)
    return found


def render(value: Any, context: dict[str, Any]) -> Any:
    """Substitute every reference in value from context (keys: from_region, to_region, params.X)."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(whole.group(1), context)
        return REFERENCE.sub(lambda m: str(_lookup(m.group(1), context)), value)
    if isinstance(value, dict):  # keys too: {"${{ to_region }}": 100}
        return {str(render(k, context)): render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


def _lookup(ref: str, context: dict[str, Any]) -> Any:
    ref = ref.strip()
    if not _NAME.match(ref) or ref not in context:
        raise TemplateError(f"undefined template reference ${{{{ {ref} }}}}")
    return context[ref]
