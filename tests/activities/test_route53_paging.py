"""Route 53's record sets are read page after page: a record with more sets than a page."""

from __future__ import annotations

from activities.aws.route53 import RECORD_SETS_PAGE, RecordParams, record_sets, route53
from orchestrator.sandbox.manager import SandboxEnv
from tests.activities.test_step_types import ctx


def test_record_sets_reads_every_set_of_a_record_over_several_pages(fresh: SandboxEnv) -> None:
    c = ctx(fresh)
    zone = fresh.topology["zone_id"]
    name = "many.shop.example."
    sets = [f"cell-{i:02d}" for i in range(RECORD_SETS_PAGE * 2 + 3)]
    changes = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": name, "Type": "CNAME", "SetIdentifier": sid, "Weight": 1, "TTL": 60,
                "ResourceRecords": [{"Value": f"{sid}.example."}],
            },
        }
        for sid in sets
    ]  # fmt: skip
    # A neighbour of the same name but another type, and one just after it: not the record's.
    for other_name, other_type in ((name, "A"), ("more.shop.example.", "CNAME")):
        changes.append(
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": other_name, "Type": other_type, "SetIdentifier": "x", "Weight": 1,
                    "TTL": 60,
                    "ResourceRecords": [
                        {"Value": "192.0.2.1" if other_type == "A" else "x.example."}
                    ],
                },
            }
        )  # fmt: skip
    route53(c).change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    got = record_sets(c, RecordParams(zone="shop.example.", record=name, type="CNAME"))
    assert sorted(r["SetIdentifier"] for r in got) == sets  # 23 sets: three pages of 10
    assert {(r["Name"], r["Type"]) for r in got} == {(name, "CNAME")}
