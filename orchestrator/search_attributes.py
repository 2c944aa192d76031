"""The custom search attributes of region-switch runs (one place: sandbox, worker, workflows).

Only temporalio is imported here, so workflow code can import this module in the sandbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

if TYPE_CHECKING:
    from temporalio.client import Client

    from orchestrator.runs import SwitchInput

RUNBOOK = SearchAttributeKey.for_keyword("FailoverRunbook")
FROM_REGION = SearchAttributeKey.for_keyword("FailoverFromRegion")
TO_REGION = SearchAttributeKey.for_keyword("FailoverToRegion")
MODE = SearchAttributeKey.for_keyword("FailoverMode")
STATE = SearchAttributeKey.for_keyword("FailoverState")
REQUESTER = SearchAttributeKey.for_keyword("FailoverRequester")
#: The game day a run belongs to (its schedule's name): on the GameDay workflow and its switches.
GAMEDAY = SearchAttributeKey.for_keyword("FailoverGameDay")
#: planned, unplanned (the source region did not answer) or recovery (of a failed region).
KIND = SearchAttributeKey.for_keyword("FailoverKind")
#: The evacuation plan a run belongs to: on the Evacuation workflow and its child switches.
EVACUATION = SearchAttributeKey.for_keyword("FailoverEvacuation")
#: The leases a running run holds: one key per resource it will write (`orchestrator.leases`).
RESOURCES = SearchAttributeKey.for_keyword_list("FailoverResources")

ALL = (RUNBOOK, FROM_REGION, TO_REGION, MODE, STATE, REQUESTER, GAMEDAY, KIND, EVACUATION)
#: Keyword lists (registered with their own type).
LISTS = (RESOURCES,)


def of_switch(inp: SwitchInput, *extra: SearchAttributePair[Any]) -> TypedSearchAttributes:
    """A switch's search attributes when it starts (state RUNNING), and any extra ones."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(RUNBOOK, inp.runbook),
        SearchAttributePair(FROM_REGION, inp.from_region),
        SearchAttributePair(TO_REGION, inp.to_region),
        SearchAttributePair(MODE, inp.mode),
        SearchAttributePair(STATE, "RUNNING"),
        SearchAttributePair(REQUESTER, inp.requester),
        SearchAttributePair(KIND, inp.kind),
    ]
    return TypedSearchAttributes([*pairs, *extra])


def cli_flags() -> list[str]:
    """`--search-attribute NAME=Keyword` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    for lst in LISTS:
        flags += ["--search-attribute", f"{lst.name}=KeywordList"]
    return flags


async def register(client: Client, namespace: str) -> None:
    """Register the search attributes on a server that lacks them (self-hosted or test server).

    The sandbox's dev server gets them by flag at start; Temporal Cloud namespaces get them with
    `tcld namespace search-attributes add`.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                **{key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL},
                **{lst.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST for lst in LISTS},
            },
        )
    )
