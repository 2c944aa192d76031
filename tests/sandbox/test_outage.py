"""Region outages in the sandbox, over real sockets.

`SandboxControl.set_outage` takes a region down: `app` (its app answers 503), `full` (its
Kubernetes API, its app and its AWS endpoint refuse connections, or with a hang hold each request
that long and then fail it), or brings it back (`None`). What must keep answering does: the other
region, the main AWS endpoint, the region's control endpoint, the DNS server and the ARC cluster
endpoints outside the two regions. Route 53's health checks and its failover answers follow.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from kubernetes import client as k8s

from orchestrator.sandbox.aws.seed import SANDBOX_CREDENTIALS, ZONE
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.manager import SandboxEnv, SandboxError, http_json
from tests.sandbox.helpers import aws, kube, wait_for

ACTIVE, STANDBY = "us-east-1", "us-west-2"
HANG = 1.0


# ---------------------------------------------------------------------------------- helpers
def no_retry_client(endpoint: str, service: str, region: str, read_timeout: float = 5.0) -> Any:
    """A boto3 client on one endpoint that tries once and gives up quickly."""
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=1,
            read_timeout=read_timeout,
        ),
        **SANDBOX_CREDENTIALS,
    )


def regional(env: SandboxEnv, region: str, service: str, read_timeout: float = 5.0) -> Any:
    """A no-retry client on a region's own AWS endpoint (the one that goes down with it)."""
    return no_retry_client(env.aws_endpoints[region], service, region, read_timeout)


def refuses(url: str) -> bool:
    """True if a TCP connection to the URL's host:port is refused; False if it is accepted."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def http_status(url: str, method: str = "GET", timeout: float = 5.0) -> int:
    """The HTTP status of a request (an error status is returned, not raised)."""
    data = b"{}" if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def kube_version(env: SandboxEnv, region: str) -> str:
    """The region's Kubernetes API version (a real client call)."""
    with kube(env, region) as api:
        return str(k8s.VersionApi(api).get_code(_request_timeout=3).git_version)


def aws_answers(env: SandboxEnv, region: str) -> bool:
    """The region's own AWS endpoint serves a call."""
    regional(env, region, "ssm").describe_parameters()
    return True


def cname(env: SandboxEnv, name: str) -> list[str]:
    """The CNAME targets the sandbox's DNS server answers for a name (over UDP)."""
    assert env.dns_server is not None
    host, port = env.dns_server.rsplit(":", 1)
    query = dns.message.make_query(name, dns.rdatatype.A)
    response = dns.query.udp(query, host, port=int(port), timeout=2)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())
    return [
        rdata.target.to_text().rstrip(".")
        for rrset in response.answer
        if rrset.rdtype == dns.rdatatype.CNAME
        for rdata in rrset
    ]


def lb_dns(env: SandboxEnv, region: str) -> str:
    return str(env.topology["regions"][region]["load_balancer_dns"]).rstrip(".")


def aws_down(env: SandboxEnv) -> dict[str, float]:
    """The AWS server's own view of which region endpoints are down (and their hang)."""
    down: dict[str, float] = http_json(f"{env.aws_endpoint_url}/_sandbox/outage")["down"]
    return down


def timed(fn: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """How long fn took, and what it raised (None if it returned)."""
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def assert_region_answers(env: SandboxEnv, region: str) -> None:
    assert http_status(f"{env.regions[region].app_url}/health") == 200
    assert kube_version(env, region)
    assert aws_answers(env, region)


# ------------------------------------------------------------------------------------ tests
def test_full_outage_refuses_connections_and_comes_back(
    env: SandboxEnv, control: SandboxControl
) -> None:
    down = env.regions[STANDBY]
    urls = {"kube": down.kube_api, "app": down.app_url, "aws": env.aws_endpoints[STANDBY]}
    assert_region_answers(env, STANDBY)
    pooled = regional(env, STANDBY, "ssm")  # its connection is kept open between calls ...
    pooled.describe_parameters()

    control.set_outage(STANDBY, "full")

    state = control.outages()
    assert state[STANDBY]["outage"] == "full" and state[STANDBY]["hang"] == 0
    assert state[STANDBY]["healthy"] is False
    assert state[ACTIVE]["outage"] is None and state[ACTIVE]["healthy"] is True
    assert aws_down(env) == {STANDBY: 0.0}
    # Every listener of the region refuses connections ...
    for name, url in urls.items():
        assert refuses(url), f"{name} ({url}) still accepts connections"
    # ... and real clients fail accordingly.
    with pytest.raises(urllib.error.URLError) as refused:
        http_status(f"{down.app_url}/health")
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        kube_version(env, STANDBY)
    with pytest.raises(EndpointConnectionError):
        aws_answers(env, STANDBY)
    with pytest.raises(EndpointConnectionError):  # ... and closed by the outage: not served
        pooled.describe_parameters()
    # The other region, the main AWS endpoint and the region's control endpoint keep answering.
    assert_region_answers(env, ACTIVE)
    assert (
        aws(env, "ssm", STANDBY).describe_parameters()["ResponseMetadata"]["HTTPStatusCode"] == 200
    )
    assert http_json(f"{down.control}/_sandbox/health")["ok"] is True

    control.set_outage(STANDBY, None)

    assert control.outages()[STANDBY]["outage"] is None
    assert aws_down(env) == {}
    for name, url in urls.items():  # the same ports as before
        assert not refuses(url), f"{name} ({url}) does not accept connections again"
    assert_region_answers(env, STANDBY)


def test_us_east_1_down_keeps_dns_and_outer_arc_endpoints(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    env = fresh
    endpoints = {e["Region"]: e["Endpoint"] for e in env.arc_clusters["shop-arc"]}
    outer = next(r for r in endpoints if r not in env.regions)
    assert outer not in env.aws_endpoints and endpoints[outer].startswith(env.aws_endpoint_url)

    control.set_outage(ACTIVE, "full")

    # Route 53's API is served from us-east-1's endpoint: it is gone with the region.
    with pytest.raises(EndpointConnectionError):
        regional(env, ACTIVE, "route53").list_hosted_zones()
    # Route 53's data plane still answers (ARC still says us-east-1 for the weighted record).
    assert cname(env, f"api.{ZONE}") == [lb_dns(env, ACTIVE)]
    # The ARC endpoint in us-east-1 went down with it; one outside the two regions answers.
    with pytest.raises(EndpointConnectionError):
        no_retry_client(
            endpoints[ACTIVE], "route53-recovery-cluster", ACTIVE
        ).list_routing_controls()
    arc = no_retry_client(endpoints[outer], "route53-recovery-cluster", outer)
    controls = {
        c["RoutingControlName"]: c["RoutingControlState"]
        for c in arc.list_routing_controls()["RoutingControls"]
    }
    assert controls == {f"shop-{ACTIVE}": "On", f"shop-{STANDBY}": "Off"}
    # us-west-2 is untouched, its own ARC endpoint included.
    assert_region_answers(env, STANDBY)
    standby_arc = no_retry_client(endpoints[STANDBY], "route53-recovery-cluster", STANDBY)
    assert len(standby_arc.list_routing_controls()["RoutingControls"]) == 2


def test_full_outage_with_hang_holds_then_fails(env: SandboxEnv, control: SandboxControl) -> None:
    down = env.regions[STANDBY]
    control.set_outage(STANDBY, "full", hang=HANG)
    state = control.outages()[STANDBY]
    assert state["outage"] == "full" and state["hang"] == HANG
    assert aws_down(env) == {STANDBY: HANG}

    calls: dict[str, Callable[[], Any]] = {
        "app": lambda: http_status(f"{down.app_url}/health", timeout=10),
        "orders": lambda: http_status(f"{down.app_url}/api/orders", "POST", timeout=10),
        "kube": lambda: http_status(f"{down.kube_api}/version", timeout=10),
        "aws": lambda: regional(env, STANDBY, "ssm", read_timeout=10).describe_parameters(),
    }
    started = time.monotonic()
    with ThreadPoolExecutor(len(calls)) as pool:
        results = dict(zip(calls, pool.map(timed, calls.values()), strict=True))
    assert time.monotonic() - started < 10
    for name, (elapsed, _) in results.items():
        assert elapsed >= 0.8 * HANG, f"{name} answered after {elapsed:.2f}s, before the hang"
        assert elapsed < 10, f"{name} took {elapsed:.2f}s"
    for name in ("app", "orders", "kube"):  # the connection is dropped unanswered
        assert isinstance(results[name][1], OSError), results[name]
    assert isinstance(results["aws"][1], ClientError | BotoCoreError), results["aws"]
    # Meanwhile the control endpoint answers at once.
    elapsed, error = timed(lambda: http_json(f"{down.control}/_sandbox/outage"))
    assert error is None and elapsed < 0.8 * HANG

    control.set_outage(STANDBY, None)
    assert_region_answers(env, STANDBY)


def test_full_outage_then_hang_hangs_the_aws_endpoint_too(
    env: SandboxEnv, control: SandboxControl
) -> None:
    control.set_outage(STANDBY, "full")
    control.set_outage(STANDBY, "full", hang=HANG)

    assert control.outages()[STANDBY]["hang"] == HANG and aws_down(env) == {STANDBY: HANG}
    assert not refuses(env.regions[STANDBY].app_url)  # the region's listeners hang now ...
    assert not refuses(env.aws_endpoints[STANDBY])  # ... and so should its AWS endpoint
    elapsed, error = timed(lambda: regional(env, STANDBY, "ssm").describe_parameters())
    assert isinstance(error, ClientError) and elapsed >= 0.8 * HANG


def test_app_outage_answers_503_and_leaves_the_rest_up(
    env: SandboxEnv, control: SandboxControl
) -> None:
    app = env.regions[ACTIVE].app_url
    control.set_outage(ACTIVE, "app")

    state = control.outages()
    assert state[ACTIVE]["outage"] == "app" and state[ACTIVE]["hang"] == 0
    assert state[STANDBY]["outage"] is None
    assert aws_down(env) == {}
    assert http_status(f"{app}/health") == 503
    req = urllib.request.Request(f"{app}/api/orders", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 503
    assert b"region down" in refused.value.read()
    assert kube_version(env, ACTIVE)
    assert aws_answers(env, ACTIVE)
    assert http_status(f"{env.regions[STANDBY].app_url}/health") == 200

    control.set_outage(ACTIVE, None)
    assert http_status(f"{app}/health") == 200


def test_bad_outage_requests_raise_and_change_nothing(
    env: SandboxEnv, control: SandboxControl
) -> None:
    control.set_outage(STANDBY, "app")
    before, aws_before = control.outages(), aws_down(env)

    with pytest.raises(SandboxError, match="outage must be app or full"):
        control.set_outage(ACTIVE, "bogus")
    with pytest.raises(SandboxError, match="outage must be app or full"):
        control.set_outage(ACTIVE, "FULL")
    with pytest.raises(SandboxError, match="unknown region 'eu-west-1'"):
        control.set_outage("eu-west-1", "full")
    with pytest.raises(SandboxError, match="unknown region"):
        control.set_outage("eu-west-1", None)
    # The servers refuse bad requests on their own too.
    with pytest.raises(urllib.error.HTTPError) as bad_outage:
        http_json(f"{env.regions[ACTIVE].control}/_sandbox/outage", "PUT", {"outage": "bogus"})
    assert bad_outage.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as bad_region:
        http_json(
            f"{env.aws_endpoint_url}/_sandbox/outage", "PUT", {"region": "eu-west-1", "down": True}
        )
    assert bad_region.value.code == 404

    assert control.outages() == before
    assert aws_down(env) == aws_before == {}
    assert http_status(f"{env.regions[ACTIVE].app_url}/health") == 200
    assert http_status(f"{env.regions[STANDBY].app_url}/health") == 503


def _health_check_id(env: SandboxEnv, region: str) -> str:
    """The region's HTTP health check (tagged Name=<region>), found through Route 53's API."""
    r53 = aws(env, "route53")
    http_checks = [
        hc["Id"]
        for hc in r53.list_health_checks()["HealthChecks"]
        if hc["HealthCheckConfig"]["Type"] == "HTTP"
    ]
    tags = r53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=http_checks)
    named = [
        t["ResourceId"]
        for t in tags["ResourceTagSets"]
        if {"Key": "Name", "Value": region} in t["Tags"]
    ]
    assert len(named) == 1, named
    assert named[0] == env.topology["regions"][region]["health_check_id"]
    return str(named[0])


def _statuses(env: SandboxEnv, health_check_id: str) -> set[str]:
    """The health check's observations, each reduced to Success or Failure."""
    observations = aws(env, "route53").get_health_check_status(HealthCheckId=health_check_id)[
        "HealthCheckObservations"
    ]
    assert observations
    return {o["StatusReport"]["Status"].split(":")[0] for o in observations}


@pytest.mark.parametrize("outage", ["app", "full"])
def test_health_check_and_failover_follow_an_outage(
    fresh: SandboxEnv, control: SandboxControl, outage: str
) -> None:
    env = fresh
    active_hc, standby_hc = _health_check_id(env, ACTIVE), _health_check_id(env, STANDBY)
    www = f"www.{ZONE}"
    assert _statuses(env, active_hc) == {"Success"}
    assert wait_for(lambda: cname(env, www) == [lb_dns(env, ACTIVE)])

    control.set_outage(ACTIVE, outage)

    wait_for(lambda: _statuses(env, active_hc) == {"Failure"}, timeout=10)
    assert _statuses(env, standby_hc) == {"Success"}
    wait_for(lambda: cname(env, www) == [lb_dns(env, STANDBY)], timeout=10)

    control.set_outage(ACTIVE, None)

    wait_for(lambda: _statuses(env, active_hc) == {"Success"}, timeout=10)
    wait_for(lambda: cname(env, www) == [lb_dns(env, ACTIVE)], timeout=10)
