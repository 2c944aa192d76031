"""DNS as users' resolvers see it: the data plane, not Route 53's API.

`dns_answer` asks the zone's authoritative name servers (the configuration's `dns.nameservers`,
else the zone's NS found through DNS itself) what they answer for a record, several times (a
weighted record is answered one set at a time, at random by weight), and checks that every answer
points at the expected regions. It keeps working while Route 53's API (us-east-1) does not: the
check an unplanned run makes of "users go to the target".

An answer is attributed to a region by the region's name in it (an ALB's or an accelerator's DNS
name carries its region: shop-alb-123.us-west-2.elb.amazonaws.com).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from activities.base import Check, State, StepContext, StepParams, StepType
from activities.errors import StepError
from orchestrator.config import Config

#: An AWS region's name inside a DNS name (shop-alb-1.us-west-2.elb.amazonaws.com).
_REGION = re.compile(
    r"(?<![a-z0-9-])[a-z]{2}(?:-gov|-iso[a-z]?)?-(?:north|south|east|west|central)(?:east|west)?-\d+(?![0-9])"
)


class DnsAnswerParams(StepParams):
    record: str = Field(description="The name users resolve, e.g. api.shop.example.")
    type: Literal["A", "AAAA", "CNAME"] = "CNAME"
    expect: list[str] = Field(min_length=1, description="Regions the answers must point at.")
    queries: int = Field(default=20, ge=1, le=1000, description="Questions asked per check.")
    zone: str | None = Field(
        default=None, description="The zone (to find its name servers); default: the parent."
    )

    @field_validator("record")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        return v if v.endswith(".") else v + "."


class DnsAnswer(StepType[DnsAnswerParams]):
    """Read-only: what the authoritative name servers answer for a record points at exactly the
    expected regions (asked several times; a weighted record answers one set at a time)."""

    name = "dns_answer"
    poll_interval = 0.5

    def describe(self, params: DnsAnswerParams) -> str:
        return f"DNS answers for {params.record} point at {', '.join(params.expect)}"

    def regions_used(self, params: DnsAnswerParams, step_region: str | None) -> set[str]:
        return set()  # DNS is served from everywhere

    def verify(self, ctx: StepContext, params: DnsAnswerParams, snapshot: State) -> Check:
        seen = answers(ctx.clients.config, params.record, params.type, params.queries, params.zone)
        ok = set(seen) == set(params.expect)
        told = ", ".join(f"{k} {v}/{params.queries}" for k, v in sorted(seen.items()))
        return Check(ok=ok, detail=f"{params.record} answers: {told}",
                     observed={"dns_answers": seen})  # fmt: skip


def answers(
    config: Config, record: str, rtype: str = "CNAME", queries: int = 20, zone: str | None = None
) -> dict[str, int]:
    """Asks the zone's name servers `queries` times what `record` is; how many answers pointed
    at each region (by its name in the answer; "elsewhere" when none is named, the response
    code when there was no answer, e.g. NXDOMAIN)."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    record = record if record.endswith(".") else record + "."
    servers = _servers(config, zone or record.split(".", 1)[1])
    seen: dict[str, int] = {}
    for i in range(queries):
        host, port = servers[i % len(servers)]
        query = dns.message.make_query(record, rtype)
        try:
            reply = dns.query.udp(query, host, port=port, timeout=config.dns.timeout)
        except (dns.exception.Timeout, OSError) as exc:
            raise StepError("Timeout", f"no DNS answer from {host}:{port}: {exc}") from exc
        if reply.rcode() != dns.rcode.NOERROR:
            code = dns.rcode.to_text(reply.rcode())
            seen[code] = seen.get(code, 0) + 1
            continue
        values = [str(rr) for rrset in reply.answer for rr in rrset]
        where = sorted({m for v in values for m in _REGION.findall(v)}) or ["elsewhere"]
        for region in where:
            seen[region] = seen.get(region, 0) + 1
    return seen


def _servers(config: Config, zone: str) -> list[tuple[str, int]]:
    """The configured name servers, else the zone's authoritative ones (from DNS)."""
    configured = config.dns.nameservers
    if configured:
        out = []
        for spec in configured:
            host, _, port = spec.rpartition(":") if spec.count(":") == 1 else (spec, "", "53")
            out.append((host or spec, int(port or 53)))
        return out
    import dns.resolver

    try:
        names = [str(r.target) for r in dns.resolver.resolve(zone, "NS")]
        return [(str(a), 53) for n in names for a in dns.resolver.resolve(n, "A")]
    except Exception as exc:
        raise StepError("ServiceUnavailable", f"name servers of {zone}: {exc}") from exc
