"""The three patch types and the selectors (pure functions)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.sandbox.k8s.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from orchestrator.sandbox.k8s.resources import POD_MERGE_KEYS
from orchestrator.sandbox.k8s.selectors import SelectorError, field_selector, label_selector

POD = {
    "spec": {
        "containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "sidecar", "image": "side:1"},
        ]
    }
}


def test_merge_patch_replaces_lists_and_deletes_with_null() -> None:
    out = merge_patch(POD, {"spec": {"containers": [{"name": "only"}]}, "metadata": {"x": None}})
    assert out["spec"]["containers"] == [{"name": "only"}]
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None}}) == {"a": {"c": 2}}


def test_strategic_merge_merges_containers_by_name() -> None:
    out = strategic_merge_patch(
        POD,
        {
            "spec": {
                "containers": [
                    {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]}
                ]
            }
        },
        POD_MERGE_KEYS,
    )
    app, sidecar = out["spec"]["containers"]
    assert app["image"] == "app:2" and sidecar == {"name": "sidecar", "image": "side:1"}
    assert app["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert POD["spec"]["containers"][0]["image"] == "app:1"  # input untouched


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge_patch(
        POD, {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}, POD_MERGE_KEYS
    )
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["app"]
    replaced = strategic_merge_patch(POD, {"spec": {"$patch": "replace", "x": 1}}, POD_MERGE_KEYS)
    assert replaced["spec"] == {"x": 1}
    with pytest.raises(PatchError):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "no-name"}]}}, POD_MERGE_KEYS)


def test_json_patch_ops_and_atomic_failure() -> None:
    doc = {"a": [1, 2], "b": {"c": "x"}}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": "y"},
            {"op": "copy", "from": "/b/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/e", "value": "y"},
        ],
    )
    assert out == {"a": [2, 3], "b": {"c": "y"}, "e": "y"}
    with pytest.raises(PatchError):
        json_patch(
            doc,
            [{"op": "add", "path": "/a/-", "value": 9}, {"op": "test", "path": "/a/0", "value": 5}],
        )
    assert doc == {"a": [1, 2], "b": {"c": "x"}}


def test_label_selectors() -> None:
    obj = {"metadata": {"labels": {"app": "cart", "tier": "web"}}}
    for sel, expected in [
        ("app=cart", True),
        ("app==cart,tier=web", True),
        ("app!=cart", False),
        ("app in (cart, checkout)", True),
        ("app notin (cart)", False),
        ("tier", True),
        ("!tier", False),
        ("app=nope", False),
    ]:
        assert label_selector(sel)(obj) is expected, sel
    with pytest.raises(SelectorError):
        label_selector("app in cart")


def test_field_selectors() -> None:
    obj = {"metadata": {"name": "a", "namespace": "shop"}, "status": {"phase": "Running"}}
    assert field_selector("metadata.name=a,status.phase!=Pending")(obj)
    assert not field_selector("metadata.namespace=other")(obj)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(target=json_values, patch=json_values)
def test_patches_never_crash_with_anything_but_patch_error(target: object, patch: object) -> None:
    merge_patch(target, patch)
    for fn in (
        lambda: strategic_merge_patch(target, patch, POD_MERGE_KEYS),
        lambda: json_patch(target, patch),  # type: ignore[arg-type]
    ):
        with contextlib.suppress(PatchError):
            fn()


@given(st.text(max_size=30))
def test_selector_parser_raises_only_selector_error(text: str) -> None:
    for parse in (label_selector, field_selector):
        with contextlib.suppress(SelectorError):
            parse(text)({"metadata": {"labels": {}}})
