"""The sandbox's Temporal: reachable with the SDK, search attributes registered, UI writable."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from orchestrator import search_attributes
from orchestrator.sandbox.manager import SandboxEnv


def test_search_attributes_are_registered(env: SandboxEnv) -> None:
    async def names() -> set[str]:
        client = await Client.connect(env.temporal_address, namespace=env.temporal_namespace)
        resp = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=env.temporal_namespace)
        )
        return set(resp.custom_attributes)

    assert {k.name for k in search_attributes.ALL} <= asyncio.run(names())


def test_web_ui_allows_signals_and_updates(env: SandboxEnv) -> None:
    with urllib.request.urlopen(f"{env.temporal_ui_url}/api/v1/settings", timeout=5) as resp:
        settings = json.loads(resp.read())
    assert settings["DisableWriteActions"] is False
    assert settings.get("WorkflowUpdateDisabled", False) is False
