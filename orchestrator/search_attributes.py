"""The custom search attributes of region-switch runs (one place: sandbox, worker, workflows).

Only temporalio is imported here, so workflow code can import this module in the sandbox.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

RUNBOOK = SearchAttributeKey.for_keyword("FailoverRunbook")
FROM_REGION = SearchAttributeKey.for_keyword("FailoverFromRegion")
TO_REGION = SearchAttributeKey.for_keyword("FailoverToRegion")
MODE = SearchAttributeKey.for_keyword("FailoverMode")
STATE = SearchAttributeKey.for_keyword("FailoverState")
REQUESTER = SearchAttributeKey.for_keyword("FailoverRequester")

ALL = (RUNBOOK, FROM_REGION, TO_REGION, MODE, STATE, REQUESTER)


def cli_flags() -> list[str]:
    """`--search-attribute NAME=Keyword` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
