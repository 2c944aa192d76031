"""Authoritative DNS for the sandbox's Route 53 hosted zones, over UDP and TCP.

Answers real DNS queries from moto's live Route 53 state (read in-process, per query) the way
Route 53's name servers compute them:

- a name outside every hosted zone is REFUSED; a name inside a zone that does not exist is
  NXDOMAIN, a name without the asked type is NODATA (both with the zone's SOA in authority);
  wildcards (``*.zone``) and empty non-terminals behave as in RFC 4592 and RFC 8020;
- a CNAME answers every query type for its name (it is not chased);
- weighted, failover, multivalue, latency and geolocation record sets choose as Route 53 does,
  with health from a caller-supplied function (a record set without a health check is healthy,
  and when none is healthy Route 53 considers them all healthy);
- alias records to a name in a hosted zone are answered with the target's records under the
  alias's name (``EvaluateTargetHealth`` honoured); aliases to anything else have no answer;
- NS records below the apex delegate (a non-authoritative referral).

The server is a pair of daemon threads on one port (UDP and TCP, RFC 7766 framing) answering each
query in its own short-lived thread, so a slow health probe never holds up other queries.
`HealthCache` evaluates health checks in the background, as Route 53's checkers do, so that
answering never waits for a probe. Wiring (in the sandbox's AWS server process)::

    health = HealthCache(lambda: moto_backend().health_checks, lambda hc: probe(hc)[0])
    health.start()
    DnsServer(Route53Answers(moto_backend, health.healthy), host, port).start()
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from moto.route53.models import route53_backends

ACCOUNT = "123456789012"
MAX_ALIAS_DEPTH = 8  # alias -> alias -> ... chains longer than this answer nothing
MULTIVALUE_MAX = 8  # Route 53 answers up to eight multivalue records
DEFAULT_TTL = 300
# Where the sandbox's resolver "is", for latency and geolocation routing.
CLIENT_CONTINENT = "NA"
CLIENT_COUNTRY = "US"
POLL_SECONDS = 0.1  # how often the socket threads look at the stop flag
TCP_IDLE_SECONDS = 10.0  # an idle TCP connection is closed after this long
OUR_PAYLOAD = 4096  # EDNS UDP payload size we advertise

_LOG = logging.getLogger(__name__)
_CNAME = dns.rdatatype.CNAME


def moto_backend() -> Any:
    """Return the Route 53 backend of this process's moto (the sandbox's account)."""
    return route53_backends[ACCOUNT]["global"]


class HealthCache:
    """Health check results refreshed in the background, as Route 53's checkers keep them.

    Pass its `healthy` to `Route53Answers`, so that answering never waits for a probe. A health
    check not evaluated yet is healthy (as a new one is in Route 53); a probe that raises is
    unhealthy. Checks are probed concurrently, so a slow one holds no other back.
    """

    def __init__(
        self,
        checks: Callable[[], dict[str, Any]],
        probe: Callable[[Any], bool],
        interval: float = 1.0,
    ) -> None:
        """Create the cache (nothing runs until `start`).

        Args:
            checks: The health checks to keep evaluated, by id (moto's ``health_checks``).
            probe: Evaluates one health check (moto's ``HealthCheck``) now; may be slow.
            interval: Seconds between two rounds.
        """
        self.checks = checks
        self.probe = probe
        self.interval = interval
        self._status: dict[str, bool] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def healthy(self, health_check_id: str) -> bool:
        """Return the last result for a health check (healthy if never evaluated)."""
        return self._status.get(health_check_id, True)

    def refresh(self) -> None:
        """Evaluate every health check once, now; each result is published as soon as its
        probe returns (a probe that hangs holds back no other)."""
        checks = dict(self.checks())
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="r53-checker")
        futures = {self._pool.submit(self._safe, hc): hc_id for hc_id, hc in checks.items()}
        for gone in set(self._status) - set(checks):
            self._status.pop(gone, None)
        for done in as_completed(futures):
            self._status[futures[done]] = done.result()

    def start(self) -> None:
        """Evaluate once, then every `interval` seconds in a daemon thread."""
        self._stop = threading.Event()
        self.refresh()

        def loop() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.refresh()
                except Exception:  # moto's state changing under us: next round
                    _LOG.exception("refreshing health checks")

        self._thread = threading.Thread(target=loop, name="r53-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing; wait for the round under way."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _safe(self, check: Any) -> bool:
        try:
            return bool(self.probe(check))
        except Exception:
            _LOG.exception("probing health check %s", getattr(check, "id", check))
            return False


@dataclass(frozen=True)
class Answer:
    """What an authoritative server says to one question.

    Attributes:
        rcode: The response code.
        answer: Records for the answer section.
        authority: Records for the authority section (SOA, or NS for a referral).
        authoritative: Whether to set the AA flag.
    """

    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = True


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _weight(record_set: Any) -> int:
    try:
        return max(0, int(record_set.weight or 0))
    except (TypeError, ValueError):
        return 0


def _type(record_set: Any) -> dns.rdatatype.RdataType | None:
    try:
        return dns.rdatatype.RdataType.make(str(record_set.type))
    except dns.exception.DNSException:
        return None


def _values(record_set: Any) -> list[str]:
    # moto keeps plain strings, except in the SOA it creates itself ({"Value": ...}).
    out = []
    for value in record_set.records or []:
        out.append(str(value["Value"]) if isinstance(value, dict) else str(value))
    return out


class _Zone:
    """One hosted zone's records, indexed by owner name (case-insensitive)."""

    def __init__(self, apex: dns.name.Name, zone: Any) -> None:
        self.apex = apex
        self.nodes: dict[dns.name.Name, list[Any]] = {}
        self.empty_non_terminals: set[dns.name.Name] = set()
        for record_set in list(zone.rrsets):
            try:
                owner = dns.name.from_text(str(record_set.name))
            except dns.exception.DNSException:
                continue
            if owner.is_subdomain(apex) and _type(record_set) is not None:
                self.nodes.setdefault(owner, []).append(record_set)
        for owner in self.nodes:
            parent = owner
            while parent != apex:
                parent = parent.parent()
                if parent not in self.nodes:
                    self.empty_non_terminals.add(parent)

    def delegation(self, name: dns.name.Name) -> dns.name.Name | None:
        """Return the highest zone cut (NS below the apex) at or above ``name``, if any."""
        ancestors = []
        node = name
        while node != self.apex:
            ancestors.append(node)
            node = node.parent()
        for node in reversed(ancestors):
            if any(_type(rs) == dns.rdatatype.NS for rs in self.nodes.get(node, [])):
                return node
        return None

    def find(self, name: dns.name.Name) -> list[Any] | None:
        """Return the record sets answering for ``name`` (wildcards too); None if no such name."""
        if name in self.nodes:
            return self.nodes[name]
        if name in self.empty_non_terminals or name == self.apex:
            return []
        encloser = name.parent()
        while encloser != self.apex and encloser not in self.empty_non_terminals:
            if encloser in self.nodes:
                break
            encloser = encloser.parent()
        return self.nodes.get(dns.name.Name((b"*", *encloser.labels)))


class _Snapshot:
    """The hosted zones as they are now, with health results memoised for one query."""

    def __init__(self, backend: Any, healthy: Callable[[str], bool]) -> None:
        self._zones = []
        for zone in list(backend.zones.values()):
            try:
                apex = dns.name.from_text(str(zone.name))
            except dns.exception.DNSException:
                continue
            self._zones.append((apex, bool(getattr(zone, "private_zone", False)), zone))
        self._views: dict[int, _Zone] = {}
        self._healthy = healthy
        self._health: dict[str, bool] = {}

    def zone_for(self, name: dns.name.Name) -> _Zone | None:
        """Return the most specific hosted zone holding ``name`` (public before private)."""
        best: tuple[int, int, int] | None = None
        chosen: tuple[dns.name.Name, Any] | None = None
        for index, (apex, private, zone) in enumerate(self._zones):
            if name.is_subdomain(apex):
                rank = (len(apex.labels), 0 if private else 1, -index)
                if best is None or rank > best:
                    best, chosen = rank, (apex, zone)
        if chosen is None:
            return None
        apex, zone = chosen
        if id(zone) not in self._views:
            self._views[id(zone)] = _Zone(apex, zone)
        return self._views[id(zone)]

    def health_check(self, health_check_id: str) -> bool:
        """Return whether a health check is healthy (asked once per query)."""
        if health_check_id not in self._health:
            self._health[health_check_id] = bool(self._healthy(health_check_id))
        return self._health[health_check_id]


class Route53Answers:
    """Computes the answers Route 53's name servers would give, from moto's live state."""

    def __init__(
        self,
        backend: Callable[[], Any],
        healthy: Callable[[str], bool],
        rng: random.Random | None = None,
        client_region: str = "us-east-1",
    ) -> None:
        """Create the answerer.

        Args:
            backend: Returns moto's ``Route53Backend`` (read again for every query).
            healthy: Whether Route 53 would consider a health check (by id) healthy.
            rng: Random source for weighted and multivalue choices.
            client_region: The region the querying resolver is closest to (latency routing).
        """
        self._backend = backend
        self._healthy = healthy
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.client_region = client_region

    def answer(self, qname: str | dns.name.Name, qtype: str | int) -> Answer:
        """Answer one question (class IN) as Route 53 would.

        Args:
            qname: The queried name (relative names are taken as absolute).
            qtype: The queried type, as text ("A") or number.

        Returns:
            The rcode and the answer and authority records.
        """
        name = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)
        rdtype = dns.rdatatype.RdataType.make(qtype)
        snap = _Snapshot(self._backend(), self._healthy)
        zone = snap.zone_for(name)
        if zone is None:
            return Answer(dns.rcode.REFUSED, authoritative=False)
        cut = zone.delegation(name)
        if cut is not None and not (cut == name and rdtype == dns.rdatatype.DS):
            referral = self._group(snap, zone.nodes[cut], dns.rdatatype.NS, cut, 0)
            authority = [referral] if referral is not None else []
            return Answer(dns.rcode.NOERROR, authority=authority, authoritative=False)
        found = zone.find(name)
        if found is None:
            return Answer(dns.rcode.NXDOMAIN, authority=self._soa(snap, zone))
        types = sorted({t for rs in found if (t := _type(rs)) is not None})
        if _CNAME in types and rdtype != _CNAME:
            wanted = [_CNAME]
        elif rdtype == dns.rdatatype.ANY:
            wanted = types
        else:
            wanted = [rdtype] if rdtype in types else []
        answer = [
            rrset for t in wanted if (rrset := self._group(snap, found, t, name, 0)) is not None
        ]
        if not answer:
            return Answer(dns.rcode.NOERROR, authority=self._soa(snap, zone))
        return Answer(dns.rcode.NOERROR, answer=answer)

    # ---------------------------------------------------------------------------- internals
    def _soa(self, snap: _Snapshot, zone: _Zone) -> list[dns.rrset.RRset]:
        soa = self._group(snap, zone.nodes.get(zone.apex, []), dns.rdatatype.SOA, zone.apex, 0)
        return [soa] if soa is not None else []

    def _group(
        self,
        snap: _Snapshot,
        node: list[Any],
        rdtype: dns.rdatatype.RdataType,
        owner: dns.name.Name,
        depth: int,
    ) -> dns.rrset.RRset | None:
        """Route among the record sets of one type at a node and render the chosen ones."""
        sets = [rs for rs in node if _type(rs) == rdtype]
        if not sets or depth > MAX_ALIAS_DEPTH:
            return None
        result: dns.rrset.RRset | None = None
        for record_set in self._route(snap, sets, depth):
            part = self._render(snap, record_set, rdtype, owner, depth)
            if part is None:
                continue
            if result is None:
                result = part
            else:
                result.update_ttl(part.ttl)  # keeps the smaller TTL
                result.union_update(part)
        return result

    def _render(
        self,
        snap: _Snapshot,
        record_set: Any,
        rdtype: dns.rdatatype.RdataType,
        owner: dns.name.Name,
        depth: int,
    ) -> dns.rrset.RRset | None:
        alias = record_set.alias_target
        if alias:
            target = dns.name.from_text(str(alias.get("DNSName", "")))
            zone = snap.zone_for(target)
            found = zone.find(target) if zone is not None else None
            if not found:
                return None  # an AWS resource (ELB, CloudFront...) the sandbox cannot resolve
            return self._group(snap, found, rdtype, owner, depth + 1)
        rdatas = []
        for value in _values(record_set):
            try:
                rdatas.append(
                    dns.rdata.from_text(
                        dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
                    )
                )
            except dns.exception.DNSException:
                _LOG.warning("unparseable %s value %r at %s", rdtype.name, value, record_set.name)
        if not rdatas:
            return None
        ttl = int(record_set.ttl) if record_set.ttl is not None else DEFAULT_TTL
        return dns.rrset.from_rdata_list(owner, ttl, rdatas)

    def _is_healthy(self, snap: _Snapshot, record_set: Any, depth: int) -> bool:
        """Whether Route 53 considers a record set healthy (its check, and its alias target)."""
        if record_set.health_check_id and not snap.health_check(record_set.health_check_id):
            return False
        alias = record_set.alias_target
        if alias and _truthy(alias.get("EvaluateTargetHealth")) and depth < MAX_ALIAS_DEPTH:
            target = dns.name.from_text(str(alias.get("DNSName", "")))
            zone = snap.zone_for(target)
            if zone is None:
                return True  # an AWS resource: the sandbox has no view of its health
            rdtype = _type(record_set)
            sets = [rs for rs in zone.find(target) or [] if _type(rs) == rdtype]
            return any(self._is_healthy(snap, rs, depth + 1) for rs in sets)
        return True

    def _route(self, snap: _Snapshot, sets: list[Any], depth: int) -> list[Any]:
        """Choose the record sets to answer with, by the group's routing policy."""
        simple = [rs for rs in sets if not rs.set_identifier]
        if simple:
            return simple
        first = sets[0]
        if first.failover:
            return self._failover(snap, sets, depth)
        if first.weight is not None:
            return self._weighted(snap, sets, depth)
        if _truthy(first.multi_value_answer):
            return self._multivalue(snap, sets, depth)
        if first.region:
            return self._first_healthy(snap, sorted(sets, key=self._latency_rank), depth)
        if first.geo_location:
            matching = [rs for rs in sets if self._geo_rank(rs) > 0]
            ordered = sorted(matching, key=self._geo_rank, reverse=True)
            return self._first_healthy(snap, ordered, depth)
        return self._first_healthy(snap, sets, depth)

    def _first_healthy(self, snap: _Snapshot, ordered: list[Any], depth: int) -> list[Any]:
        for record_set in ordered:
            if self._is_healthy(snap, record_set, depth):
                return [record_set]
        return ordered[:1]  # none healthy: all are considered healthy

    def _failover(self, snap: _Snapshot, sets: list[Any], depth: int) -> list[Any]:
        def role(name: str) -> list[Any]:
            return [rs for rs in sets if str(rs.failover).upper() == name][:1]

        return self._first_healthy(snap, role("PRIMARY") + role("SECONDARY"), depth)

    def _weighted(self, snap: _Snapshot, sets: list[Any], depth: int) -> list[Any]:
        # Route 53 considers the healthy non-zero weights, then the healthy zero weights (with
        # equal probability); when none is healthy, all of them (the non-zero ones if any).
        # Drawing again without an unhealthy pick = drawing among the healthy by weight.
        positive = [rs for rs in sets if _weight(rs) > 0]
        zero = [rs for rs in sets if _weight(rs) == 0]
        for pool, weighted in ((positive, True), (zero, False)):
            remaining = list(pool)
            while remaining:
                pick = self._pick(remaining, weighted)
                if self._is_healthy(snap, pick, depth):
                    return [pick]
                remaining.remove(pick)
        return [self._pick(positive, True)] if positive else [self._pick(zero, False)]

    def _pick(self, pool: list[Any], weighted: bool) -> Any:
        with self._rng_lock:
            if weighted:
                return self._rng.choices(pool, weights=[_weight(rs) for rs in pool])[0]
            return self._rng.choice(pool)

    def _multivalue(self, snap: _Snapshot, sets: list[Any], depth: int) -> list[Any]:
        healthy = [rs for rs in sets if self._is_healthy(snap, rs, depth)] or sets
        with self._rng_lock:
            return self._rng.sample(healthy, min(MULTIVALUE_MAX, len(healthy)))

    def _latency_rank(self, record_set: Any) -> tuple[int, str]:
        region = str(record_set.region)
        if region == self.client_region:
            return (0, region)
        same_area = region.split("-")[0] == self.client_region.split("-")[0]
        return (1 if same_area else 2, region)

    @staticmethod
    def _geo_rank(record_set: Any) -> int:
        geo = record_set.geo_location or {}
        country = geo.get("CountryCode")
        if country == CLIENT_COUNTRY and not geo.get("SubdivisionCode"):
            return 3
        if geo.get("ContinentCode") == CLIENT_CONTINENT:
            return 2
        return 1 if country == "*" else 0


class DnsServer:
    """Serves `Route53Answers` over UDP and TCP on one local port."""

    def __init__(self, answers: Route53Answers, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create the server (nothing is bound until `start`).

        Args:
            answers: What to answer.
            host: The address to listen on.
            port: The port for both UDP and TCP; 0 picks a free one.
        """
        self.answers = answers
        self.host = host
        self._port = port
        self._stop = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._listeners: list[threading.Thread] = []
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        """The bound port once started (the same for UDP and TCP); before, the one asked for."""
        return self._port

    def __enter__(self) -> DnsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Bind UDP and TCP on the same port and start serving (daemon threads)."""
        if self._listeners:
            raise RuntimeError("DNS server already started")
        self._udp, self._tcp = self._bind()
        self._port = self._udp.getsockname()[1]
        self._stop = threading.Event()
        self._listeners = [
            threading.Thread(
                target=self._serve_udp, args=(self._udp,), name=f"dns-udp-{self._port}", daemon=True
            ),
            threading.Thread(
                target=self._serve_tcp, args=(self._tcp,), name=f"dns-tcp-{self._port}", daemon=True
            ),
        ]
        for thread in self._listeners:
            thread.start()

    def stop(self) -> None:
        """Stop serving: wait for the threads (and open connections) to end; free the port."""
        self._stop.set()
        self._wake()
        for thread in self._listeners:
            thread.join(timeout=5)
        with self._lock:
            workers = list(self._workers)
        for thread in workers:
            thread.join(timeout=5)
        for sock in (self._udp, self._tcp):
            if sock is not None:
                sock.close()
        self._udp = self._tcp = None
        self._listeners = []

    def respond(self, wire: bytes, tcp: bool = False) -> bytes | None:
        """Return the wire-format response to a wire-format query (None: send nothing)."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            if len(wire) < 12:
                return None
            error = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
            error.flags = dns.flags.QR
            error.set_rcode(dns.rcode.FORMERR)
            return error.to_wire()
        if query.flags & dns.flags.QR:
            return None
        response = dns.message.make_response(query, our_payload=OUR_PAYLOAD)
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        elif query.question[0].rdclass != dns.rdataclass.IN or query.question[0].rdtype in (
            dns.rdatatype.AXFR,
            dns.rdatatype.IXFR,
        ):
            response.set_rcode(dns.rcode.REFUSED)
        else:
            question = query.question[0]
            try:
                result = self.answers.answer(question.name, question.rdtype)
            except Exception:
                _LOG.exception("answering %s %s", question.name, question.rdtype)
                response.set_rcode(dns.rcode.SERVFAIL)
            else:
                response.set_rcode(result.rcode)
                if result.authoritative:
                    response.flags |= dns.flags.AA
                response.answer = list(result.answer)
                response.authority = list(result.authority)
        if tcp:
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        return response.to_wire(max_size=limit, prefer_truncation=True)

    # ---------------------------------------------------------------------------- internals
    def _bind(self) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                udp.bind((self.host, self._port))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, udp.getsockname()[1]))
                tcp.listen(64)
            except OSError:
                udp.close()
                tcp.close()
                if self._port:
                    raise
                continue  # the free UDP port is taken for TCP: try another
            udp.settimeout(POLL_SECONDS)
            tcp.settimeout(POLL_SECONDS)
            return udp, tcp
        raise OSError(f"no port free for both UDP and TCP on {self.host}")

    def _wake(self) -> None:
        """Wake the listeners up (otherwise they notice the stop within `POLL_SECONDS`)."""
        for sock, kind in ((self._udp, socket.SOCK_DGRAM), (self._tcp, socket.SOCK_STREAM)):
            if sock is None:
                continue
            with (
                contextlib.suppress(OSError),
                socket.socket(sock.family, kind) as poke,
            ):
                poke.settimeout(POLL_SECONDS)
                poke.connect(sock.getsockname()[:2])
                if kind == socket.SOCK_DGRAM:
                    poke.send(b"")

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception:
                _LOG.exception("DNS worker failed")
            finally:
                with self._lock:
                    self._workers.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=f"dns-query-{self._port}", daemon=True)
        with self._lock:
            self._workers.add(thread)
        thread.start()

    def _serve_udp(self, sock: socket.socket) -> None:
        for data, peer in self._accepting(lambda: sock.recvfrom(65535)):
            self._spawn(self._answer_datagram, sock, data, peer)

    def _accepting(self, take: Callable[[], Any]) -> Iterator[Any]:
        """What `take` receives until the server stops (a timeout or an error just polls on)."""
        while not self._stop.is_set():
            try:
                yield take()
            except (TimeoutError, OSError):
                continue

    def _answer_datagram(self, sock: socket.socket, data: bytes, peer: Any) -> None:
        reply = self.respond(data, tcp=False)
        if reply is not None:
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)

    def _serve_tcp(self, sock: socket.socket) -> None:
        for conn, _ in self._accepting(sock.accept):
            conn.settimeout(POLL_SECONDS)
            self._spawn(self._serve_connection, conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        with conn:
            while True:
                header = self._recv_exact(conn, 2)
                if header is None:
                    return
                body = self._recv_exact(conn, struct.unpack("!H", header)[0])
                if body is None:
                    return
                reply = self.respond(body, tcp=True)
                if reply is None:
                    continue
                try:
                    conn.settimeout(5)
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                    conn.settimeout(POLL_SECONDS)
                except OSError:
                    return

    def _recv_exact(self, conn: socket.socket, size: int) -> bytes | None:
        """Read exactly ``size`` bytes; None at EOF, on error, when idle too long or stopping."""
        buf = b""
        deadline = time.monotonic() + TCP_IDLE_SECONDS
        while len(buf) < size:
            if self._stop.is_set():
                return None
            try:
                chunk = conn.recv(size - len(buf))
            except TimeoutError:
                if time.monotonic() > deadline:
                    return None
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf
