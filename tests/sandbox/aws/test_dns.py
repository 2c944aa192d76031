"""The sandbox's Route 53 DNS server: real queries over UDP and TCP against moto's hosted zones."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import boto3
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from moto import mock_aws

from orchestrator.sandbox.aws.dns import (
    DnsServer,
    HealthCache,
    Route53Answers,
    moto_backend,
)

ZONE = "shop.example."
EAST = "shop-use1.elb.example."
WEST = "shop-usw2.elb.example."


@dataclass
class Shop:
    """The hosted zone the tests query, and the health the server sees."""

    r53: Any
    zone_id: str
    checks: dict[str, str]  # name -> health check id
    unhealthy: set[str] = field(default_factory=set)

    def healthy(self, health_check_id: str) -> bool:
        return health_check_id not in self.unhealthy

    def check(self, name: str) -> str:
        if name not in self.checks:
            self.checks[name] = self.r53.create_health_check(
                CallerReference=name,
                HealthCheckConfig={"Type": "HTTP", "IPAddress": "127.0.0.1", "Port": 9},
            )["HealthCheck"]["Id"]
        return self.checks[name]

    def change(self, *record_sets: dict[str, Any], action: str = "UPSERT") -> None:
        self.r53.change_resource_record_sets(
            HostedZoneId=self.zone_id,
            ChangeBatch={
                "Changes": [{"Action": action, "ResourceRecordSet": rs} for rs in record_sets]
            },
        )


def record(name: str, rtype: str, *values: str, ttl: int = 60, **extra: Any) -> dict[str, Any]:
    """A ResourceRecordSet as boto3 takes it."""
    return {
        "Name": name,
        "Type": rtype,
        "TTL": ttl,
        "ResourceRecords": [{"Value": v} for v in values],
        **extra,
    }


@pytest.fixture(scope="module")
def route53() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client(
            "route53",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )


@pytest.fixture
def shop(route53: Any) -> Iterator[Shop]:
    r53 = route53
    try:
        zone_id = r53.create_hosted_zone(Name=ZONE, CallerReference="shop")["HostedZone"]["Id"]
        shop = Shop(r53, zone_id.rsplit("/", 1)[-1], {})
        shop.change(
            record(f"api.{ZONE}", "CNAME", EAST, SetIdentifier="us-east-1", Weight=100),
            record(f"api.{ZONE}", "CNAME", WEST, SetIdentifier="us-west-2", Weight=0),
            record(
                f"www.{ZONE}",
                "CNAME",
                EAST,
                SetIdentifier="us-east-1",
                Failover="PRIMARY",
                HealthCheckId=shop.check("east"),
            ),
            record(
                f"www.{ZONE}",
                "CNAME",
                WEST,
                SetIdentifier="us-west-2",
                Failover="SECONDARY",
                HealthCheckId=shop.check("west"),
            ),
            record(f"static.{ZONE}", "A", "192.0.2.10", "192.0.2.11", ttl=120),
            record(f"host.deep.{ZONE}", "A", "192.0.2.20"),
            record(f"*.apps.{ZONE}", "TXT", '"wildcard"'),
            action="CREATE",
        )
        yield shop
    finally:
        moto_backend().reset()  # every test starts from the same zone


@pytest.fixture
def answers(shop: Shop) -> Route53Answers:
    return Route53Answers(moto_backend, shop.healthy, rng=random.Random(7))


def _dns_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dns-")]


@pytest.fixture
def server(answers: Route53Answers) -> Iterator[DnsServer]:
    srv = DnsServer(answers)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
    assert not _dns_threads()


def ask(server: DnsServer, name: str, rtype: str = "A", tcp: bool = False) -> dns.message.Message:
    """Query the server for real; check what every response must have."""
    query = dns.message.make_query(name, rtype)
    send = dns.query.tcp if tcp else dns.query.udp
    response = send(query, "127.0.0.1", port=server.port, timeout=3)
    assert response.id == query.id
    assert response.question == query.question
    assert response.flags & dns.flags.QR
    return response


def answer_texts(response: dns.message.Message) -> list[str]:
    return sorted(line for rrset in response.answer for line in rrset.to_text().splitlines())


def targets(response: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in response.answer for rd in rrset)


def is_authoritative(response: dns.message.Message) -> bool:
    return bool(response.flags & dns.flags.AA)


# ------------------------------------------------------------------------------- routing
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_weight_100_and_0_always_answers_the_first(server: DnsServer, tcp: bool) -> None:
    for _ in range(20):
        response = ask(server, f"api.{ZONE}", "A", tcp=tcp)
        assert response.rcode() == dns.rcode.NOERROR
        assert is_authoritative(response)
        assert answer_texts(response) == [f"api.{ZONE} 60 IN CNAME {EAST}"]


def test_weights_50_50_answer_both_one_set_at_a_time(shop: Shop, server: DnsServer) -> None:
    shop.change(
        record(f"api.{ZONE}", "CNAME", EAST, SetIdentifier="us-east-1", Weight=50),
        record(f"api.{ZONE}", "CNAME", WEST, SetIdentifier="us-west-2", Weight=50),
    )
    seen: Counter[str] = Counter()
    for _ in range(100):
        response = ask(server, f"api.{ZONE}", "CNAME")
        assert len(response.answer) == 1 and len(response.answer[0]) == 1
        seen.update(targets(response))
    assert set(seen) == {EAST, WEST}
    assert min(seen.values()) > 20


def test_failover_follows_health(shop: Shop, server: DnsServer) -> None:
    east, west = shop.checks["east"], shop.checks["west"]
    cases = [(set(), EAST), ({east}, WEST), ({west}, EAST), ({east, west}, EAST)]
    for unhealthy, expected in cases:
        shop.unhealthy = unhealthy
        for tcp in (False, True):
            assert targets(ask(server, f"www.{ZONE}", "A", tcp=tcp)) == [expected], unhealthy


def test_failover_without_health_checks_is_healthy(shop: Shop, answers: Route53Answers) -> None:
    shop.change(
        record(f"solo.{ZONE}", "A", "192.0.2.1", SetIdentifier="p", Failover="PRIMARY"),
        record(f"solo.{ZONE}", "A", "192.0.2.2", SetIdentifier="s", Failover="SECONDARY"),
    )
    shop.unhealthy = set(shop.checks.values())
    assert [rd.to_text() for rd in answers.answer(f"solo.{ZONE}", "A").answer[0]] == ["192.0.2.1"]


def _pool(shop: Shop, weights: dict[str, int], checked: set[str]) -> None:
    shop.change(
        *(
            record(
                f"pool.{ZONE}",
                "A",
                f"192.0.2.{i + 1}",
                SetIdentifier=name,
                Weight=weight,
                **({"HealthCheckId": shop.check(name)} if name in checked else {}),
            )
            for i, (name, weight) in enumerate(weights.items())
        )
    )


def _draws(answers: Route53Answers, n: int = 200) -> set[str]:
    out = set()
    for _ in range(n):
        result = answers.answer(f"pool.{ZONE}", "A")
        assert len(result.answer) == 1 and len(result.answer[0]) == 1
        out.add(result.answer[0][0].to_text())
    return out


# Route 53's table (routing-policy-weighted): records 1 and 2 weigh 1, record 3 weighs 0.
@pytest.mark.parametrize(
    ("unhealthy", "answered"),
    [
        (set(), {"192.0.2.1", "192.0.2.2"}),
        ({"c"}, {"192.0.2.1", "192.0.2.2"}),
        ({"a"}, {"192.0.2.2"}),
        ({"a", "b"}, {"192.0.2.3"}),  # the healthy zero weight is considered
        ({"a", "b", "c"}, {"192.0.2.1", "192.0.2.2"}),  # none healthy: non-zero weights
    ],
)
def test_weighted_health_as_route53_documents(
    shop: Shop, answers: Route53Answers, unhealthy: set[str], answered: set[str]
) -> None:
    _pool(shop, {"a": 1, "b": 1, "c": 0}, checked={"a", "b", "c"})
    shop.unhealthy = {shop.checks[name] for name in unhealthy}
    assert _draws(answers) == answered


def test_all_weighted_unhealthy_still_answers_by_weight(shop: Shop, server: DnsServer) -> None:
    _pool(shop, {"a": 100, "b": 0}, checked={"a", "b"})
    shop.unhealthy = {shop.checks["a"], shop.checks["b"]}
    for _ in range(10):
        response = ask(server, f"pool.{ZONE}")
        assert response.rcode() == dns.rcode.NOERROR
        assert targets(response) == ["192.0.2.1"]


def test_all_weights_zero_answers_each_with_equal_chance(
    shop: Shop, answers: Route53Answers
) -> None:
    _pool(shop, {"a": 0, "b": 0, "c": 0}, checked={"a"})
    assert _draws(answers) == {"192.0.2.1", "192.0.2.2", "192.0.2.3"}
    shop.unhealthy = {shop.checks["a"]}
    assert _draws(answers) == {"192.0.2.2", "192.0.2.3"}


def test_multivalue_latency_and_geolocation(shop: Shop, answers: Route53Answers) -> None:
    shop.change(
        *(
            record(
                f"mv.{ZONE}",
                "A",
                f"192.0.2.{i}",
                SetIdentifier=f"m{i}",
                MultiValueAnswer=True,
                HealthCheckId=shop.check(f"m{i}"),
            )
            for i in range(1, 4)
        ),
        record(f"lat.{ZONE}", "A", "192.0.2.1", SetIdentifier="e", Region="us-east-1"),
        record(
            f"lat.{ZONE}",
            "A",
            "192.0.2.2",
            SetIdentifier="w",
            Region="us-west-2",
            HealthCheckId=shop.check("lat-w"),
        ),
        record(
            f"geo.{ZONE}", "A", "192.0.2.1", SetIdentifier="d", GeoLocation={"CountryCode": "*"}
        ),
        record(
            f"geo.{ZONE}",
            "A",
            "192.0.2.2",
            SetIdentifier="us",
            GeoLocation={"CountryCode": "US"},
            HealthCheckId=shop.check("geo-us"),
        ),
    )

    def values(name: str) -> list[str]:
        return sorted(rd.to_text() for rd in answers.answer(name, "A").answer[0])

    assert values(f"mv.{ZONE}") == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    shop.unhealthy = {shop.checks["m2"]}
    assert values(f"mv.{ZONE}") == ["192.0.2.1", "192.0.2.3"]
    assert values(f"lat.{ZONE}") == ["192.0.2.1"]  # the resolver is in us-east-1
    assert values(f"geo.{ZONE}") == ["192.0.2.2"]  # and in the US
    shop.unhealthy = {shop.checks["geo-us"]}
    assert values(f"geo.{ZONE}") == ["192.0.2.1"]


def test_alias_to_a_record_in_the_zone(shop: Shop, server: DnsServer) -> None:
    def alias(name: str, target: str, **extra: Any) -> dict[str, Any]:
        return {
            "Name": name,
            "Type": "A",
            "AliasTarget": {
                "HostedZoneId": shop.zone_id,
                "DNSName": target,
                "EvaluateTargetHealth": True,
            },
            **extra,
        }

    shop.change(
        record(f"east.{ZONE}", "A", "192.0.2.1", HealthCheckId=shop.check("east")),
        record(f"west.{ZONE}", "A", "192.0.2.2"),
        alias(f"edge.{ZONE}", f"east.{ZONE}", SetIdentifier="e", Failover="PRIMARY"),
        alias(f"edge.{ZONE}", f"west.{ZONE}", SetIdentifier="w", Failover="SECONDARY"),
        alias(ZONE, f"static.{ZONE}"),
    )
    assert answer_texts(ask(server, f"edge.{ZONE}")) == [f"edge.{ZONE} 60 IN A 192.0.2.1"]
    shop.unhealthy = {shop.checks["east"]}  # the primary's target is unhealthy
    assert answer_texts(ask(server, f"edge.{ZONE}")) == [f"edge.{ZONE} 60 IN A 192.0.2.2"]
    assert targets(ask(server, ZONE)) == ["192.0.2.10", "192.0.2.11"]  # alias at the apex


# ------------------------------------------------------------------------- DNS behaviour
def test_cname_answers_every_type(server: DnsServer) -> None:
    for rtype in ("A", "AAAA", "TXT", "MX", "CNAME", "ANY"):
        response = ask(server, f"www.{ZONE}", rtype)
        assert response.rcode() == dns.rcode.NOERROR
        assert answer_texts(response) == [f"www.{ZONE} 60 IN CNAME {EAST}"], rtype
        assert response.authority == []


def test_simple_records_and_case_insensitive_names(server: DnsServer) -> None:
    response = ask(server, "STATIC.Shop.Example.")
    assert response.rcode() == dns.rcode.NOERROR
    assert answer_texts(response) == [
        "STATIC.Shop.Example. 120 IN A 192.0.2.10",
        "STATIC.Shop.Example. 120 IN A 192.0.2.11",
    ]


def test_apex_ns_and_soa_as_stored(server: DnsServer) -> None:
    ns = ask(server, ZONE, "NS")
    assert is_authoritative(ns)
    assert ns.answer[0].ttl == 172800
    assert targets(ns) == [
        "ns-2048.awsdns-64.com.",
        "ns-2049.awsdns-65.net.",
        "ns-2050.awsdns-66.org.",
        "ns-2051.awsdns-67.co.uk.",
    ]
    soa = ask(server, ZONE, "SOA", tcp=True)
    assert answer_texts(soa) == [
        f"{ZONE} 900 IN SOA ns-2048.awsdns-64.com. hostmaster.example.com. 1 7200 900 1209600 86400"
    ]


SOA = f"{ZONE} 900 IN SOA ns-2048.awsdns-64.com. hostmaster.example.com. 1 7200 900 1209600 86400"


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_nxdomain_and_nodata_carry_the_soa(server: DnsServer, tcp: bool) -> None:
    nx = ask(server, f"nope.{ZONE}", tcp=tcp)
    assert nx.rcode() == dns.rcode.NXDOMAIN
    assert is_authoritative(nx)
    assert nx.answer == []
    assert [rrset.to_text() for rrset in nx.authority] == [SOA]
    for name, rtype in [(f"static.{ZONE}", "AAAA"), (f"deep.{ZONE}", "A"), (ZONE, "MX")]:
        nodata = ask(server, name, rtype, tcp=tcp)  # deep.: an empty non-terminal
        assert nodata.rcode() == dns.rcode.NOERROR, name
        assert is_authoritative(nodata)
        assert nodata.answer == []
        assert [rrset.to_text() for rrset in nodata.authority] == [SOA]


def test_wildcard(server: DnsServer) -> None:
    response = ask(server, f"Cart.apps.{ZONE}", "TXT")
    assert answer_texts(response) == [f'Cart.apps.{ZONE} 60 IN TXT "wildcard"']
    assert ask(server, f"a.b.apps.{ZONE}", "TXT").answer[0].name == dns.name.from_text(
        f"a.b.apps.{ZONE}"
    )
    assert ask(server, f"cart.apps.{ZONE}", "A").rcode() == dns.rcode.NOERROR  # NODATA
    assert ask(server, f"apps.{ZONE}", "TXT").rcode() == dns.rcode.NOERROR  # non-terminal
    assert ask(server, f"x.static.{ZONE}", "TXT").rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("name", ["example.org.", "shop.example.com.", "example."])
def test_outside_every_zone_is_refused(server: DnsServer, name: str) -> None:
    for tcp in (False, True):
        response = ask(server, name, tcp=tcp)
        assert response.rcode() == dns.rcode.REFUSED
        assert not is_authoritative(response)
        assert response.answer == [] and response.authority == []


def test_delegation_is_a_referral(shop: Shop, server: DnsServer) -> None:
    shop.change(record(f"eu.{ZONE}", "NS", "ns1.eu.example.", "ns2.eu.example."))
    response = ask(server, f"www.eu.{ZONE}")
    assert response.rcode() == dns.rcode.NOERROR
    assert not is_authoritative(response)
    assert response.answer == []
    assert sorted(rd.to_text() for rd in response.authority[0]) == [
        "ns1.eu.example.",
        "ns2.eu.example.",
    ]


def test_answers_follow_live_changes(shop: Shop, server: DnsServer) -> None:
    assert targets(ask(server, f"static.{ZONE}")) == ["192.0.2.10", "192.0.2.11"]
    shop.change(record(f"static.{ZONE}", "A", "198.51.100.7", ttl=30))
    assert answer_texts(ask(server, f"static.{ZONE}")) == [f"static.{ZONE} 30 IN A 198.51.100.7"]
    shop.change(
        record(f"api.{ZONE}", "CNAME", EAST, SetIdentifier="us-east-1", Weight=0),
        record(f"api.{ZONE}", "CNAME", WEST, SetIdentifier="us-west-2", Weight=100),
    )
    assert targets(ask(server, f"api.{ZONE}", tcp=True)) == [WEST]
    shop.change(record(f"static.{ZONE}", "A", "198.51.100.7", ttl=30), action="DELETE")
    assert ask(server, f"static.{ZONE}").rcode() == dns.rcode.NXDOMAIN
    other = shop.r53.create_hosted_zone(Name="other.test", CallerReference="o")["HostedZone"]
    shop.r53.change_resource_record_sets(
        HostedZoneId=other["Id"],
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": record("a.other.test.", "A", "192.0.2.99"),
                }
            ]
        },
    )
    assert targets(ask(server, "a.other.test.")) == ["192.0.2.99"]


def test_big_answer_truncated_on_udp_whole_on_tcp(shop: Shop, server: DnsServer) -> None:
    values = [f'"{i:03d} {"x" * 60}"' for i in range(30)]
    shop.change(record(f"big.{ZONE}", "TXT", *values))
    udp = ask(server, f"big.{ZONE}", "TXT")
    assert udp.flags & dns.flags.TC
    tcp = ask(server, f"big.{ZONE}", "TXT", tcp=True)
    assert not tcp.flags & dns.flags.TC
    assert len(tcp.answer[0]) == 30


def test_query_id_flags_and_malformed_messages(server: DnsServer) -> None:
    query = dns.message.make_query(f"static.{ZONE}", "A")
    query.id = 4242
    query.flags |= dns.flags.RD
    response = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=3)
    assert response.id == 4242
    assert response.flags & dns.flags.AA and response.flags & dns.flags.RD
    assert not response.flags & dns.flags.RA
    garbage = struct.pack("!H", 777) + b"\x01\x00\x00\x01" + b"\xff" * 10
    formerr = dns.message.from_wire(server.respond(garbage) or b"")
    assert formerr.id == 777 and formerr.rcode() == dns.rcode.FORMERR
    assert server.respond(b"\x00") is None
    chaos = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    reply = dns.message.from_wire(server.respond(chaos.to_wire()) or b"")
    assert reply.rcode() == dns.rcode.REFUSED


def test_a_failing_health_function_is_servfail(shop: Shop) -> None:
    def broken(health_check_id: str) -> bool:
        raise RuntimeError("checker down")

    with DnsServer(Route53Answers(moto_backend, broken)) as srv:
        assert ask(srv, f"www.{ZONE}").rcode() == dns.rcode.SERVFAIL
        assert ask(srv, f"static.{ZONE}").rcode() == dns.rcode.NOERROR


# ---------------------------------------------------------------------------- lifecycle
def test_tcp_connection_serves_several_queries(server: DnsServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        for name in (f"static.{ZONE}", f"api.{ZONE}", f"nope.{ZONE}"):
            wire = dns.message.make_query(name, "A").to_wire()
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            size = struct.unpack("!H", _recv(sock, 2))[0]
            assert dns.message.from_wire(_recv(sock, size)).question[0].name.to_text() == name


def _recv(sock: socket.socket, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        assert chunk
        buf += chunk
    return buf


def test_stop_ends_the_threads_and_frees_the_port(answers: Route53Answers) -> None:
    srv = DnsServer(answers)
    srv.start()
    port = srv.port
    assert port != 0
    idle = socket.create_connection(("127.0.0.1", port), timeout=3)  # a connection left open
    try:
        assert ask(srv, f"static.{ZONE}").rcode() == dns.rcode.NOERROR
        started = time.monotonic()
        srv.stop()
        assert time.monotonic() - started < 2
        assert not _dns_threads()
        assert idle.recv(1) == b""  # the server closed it
    finally:
        idle.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", port))
        tcp.listen()
    again = DnsServer(answers, port=port)  # and it can serve the same port again
    with again:
        assert again.port == port
        assert ask(again, f"static.{ZONE}", tcp=True).rcode() == dns.rcode.NOERROR
    assert not _dns_threads()


def test_health_cache_probes_in_the_background(shop: Shop) -> None:
    probed: list[str] = []
    down = {shop.checks["east"]}

    def probe(check: Any) -> bool:
        probed.append(check.id)
        if check.id == shop.checks["west"]:
            raise OSError("unreachable")
        return check.id not in down

    cache = HealthCache(lambda: moto_backend().health_checks, probe, interval=0.05)
    assert cache.healthy(shop.checks["east"])  # never evaluated: healthy
    cache.start()
    try:
        assert not cache.healthy(shop.checks["east"])
        assert not cache.healthy(shop.checks["west"])  # the probe raised
        down.clear()
        deadline = time.monotonic() + 3
        while not cache.healthy(shop.checks["east"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cache.healthy(shop.checks["east"])
    finally:
        cache.stop()
    count = len(probed)
    time.sleep(0.15)
    assert len(probed) == count  # stopped
    assert not [
        t for t in threading.enumerate() if t.name.startswith(("r53-health", "r53-checker"))
    ]


def test_health_cache_slow_probe_holds_no_other_back() -> None:
    """A probe that hangs (a region blackholed) does not delay the others' results."""
    checks = {"slow": SimpleNamespace(id="slow"), "down": SimpleNamespace(id="down")}
    release = threading.Event()

    def probe(check: SimpleNamespace) -> bool:
        if check.id == "slow":
            release.wait(1.5)  # hangs until released (at most 1.5 s)
            return True
        return False

    cache = HealthCache(lambda: checks, probe, interval=60)
    refreshing = threading.Thread(target=cache.refresh, daemon=True)
    refreshing.start()
    try:
        deadline = time.monotonic() + 0.5
        while cache.healthy("down") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cache.healthy("down"), "the failed check is still healthy while one hangs"
    finally:
        release.set()
        refreshing.join(timeout=3)
