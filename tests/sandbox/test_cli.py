"""`failover sandbox ...` from the command line: faults, regions, calls, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.sandbox.manager import Sandbox

FAILOVER = [sys.executable, "-m", "orchestrator"]


def sandbox_cmd(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FAILOVER, "sandbox", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_json_and_exit_code(sandbox: Sandbox) -> None:
    proc = sandbox_cmd(sandbox.home, "status", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["up"] is True and len(data["components"]) == 5


def test_status_when_not_up(tmp_path: Path) -> None:
    proc = sandbox_cmd(tmp_path, "status", "-o", "json")
    assert proc.returncode == 5
    assert json.loads(proc.stdout)["up"] is False


def test_fault_add_fails_exactly_n_k8s_calls(sandbox: Sandbox) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from tests.sandbox.helpers import kube

    env = sandbox.load_env()
    assert env is not None
    proc = sandbox_cmd(
        sandbox.home,
        "fault",
        "add",
        "--target",
        "k8s:us-east-1:get:configmaps",
        "--error",
        "ServiceUnavailable",
        "--count",
        "3",
        "-o",
        "json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["count"] == 3
    core = client.CoreV1Api(kube(env, "us-east-1"))
    statuses = []
    for _ in range(5):
        try:
            core.read_namespaced_config_map("shop-flags", "shop")
            statuses.append(200)
        except ApiException as exc:
            statuses.append(exc.status)
    assert statuses == [503, 503, 503, 200, 200]
    listed = json.loads(sandbox_cmd(sandbox.home, "fault", "list", "-o", "json").stdout)
    assert listed[0]["hits"] == 3
    assert sandbox_cmd(sandbox.home, "fault", "clear").returncode == 0


def test_region_down_and_calls(sandbox: Sandbox) -> None:
    env = sandbox.load_env()
    assert env is not None
    import urllib.error
    import urllib.request

    assert sandbox_cmd(sandbox.home, "region", "down", "us-west-2").returncode == 0
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(env.regions["us-west-2"].app_url + "/health")
    assert err.value.code == 503
    assert sandbox_cmd(sandbox.home, "region", "up", "us-west-2").returncode == 0
    assert urllib.request.urlopen(env.regions["us-west-2"].app_url + "/health").status == 200
    calls = json.loads(sandbox_cmd(sandbox.home, "calls", "-o", "json").stdout)
    assert any(c["operation"] == "rds:CreateGlobalCluster" for c in calls)


def test_quota_throttles_a_service_until_lifted(sandbox: Sandbox) -> None:
    from tests.sandbox.aws.test_quota import no_retry

    env = sandbox.load_env()
    assert env is not None
    proc = sandbox_cmd(sandbox.home, "quota", "route53", "--rate", "1", "--burst", "1", "-o",
                       "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["route53"]["rate"] == 1
    r53 = no_retry(env, "route53")
    try:
        codes = []
        for _ in range(3):
            try:
                r53.list_hosted_zones()
                codes.append("ok")
            except r53.exceptions.ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
        assert codes[0] == "ok" and "Throttling" in codes[1:], codes
        listed = json.loads(sandbox_cmd(sandbox.home, "quota", "-o", "json").stdout)
        assert listed["route53"]["throttled"] == codes.count("Throttling")
    finally:
        assert sandbox_cmd(sandbox.home, "quota", "route53", "--rate", "0").returncode == 0
    assert json.loads(sandbox_cmd(sandbox.home, "quota", "-o", "json").stdout) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("quota", "route53"), "--rate N"),
        (("quota", "--rate", "5"), "go with a service"),
        (("fault", "add", "--target", "bogus"), "target must be"),
        (("region", "down", "eu-nowhere-1"), "unknown region 'eu-nowhere-1'"),
        (("fault", "add", "--target", "k8s:eu-nowhere-1:get:pods"), "unknown region"),
        (("fault", "add", "--target", "aws:ssm:GetParameter", "--when", "later"), "--when"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(
    sandbox: Sandbox, args: tuple[str, ...], message: str
) -> None:
    proc = sandbox_cmd(sandbox.home, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_commands_without_a_sandbox_say_so(tmp_path: Path) -> None:
    proc = sandbox_cmd(tmp_path, "fault", "list")
    assert proc.returncode == 5 and "not up" in proc.stderr and "Traceback" not in proc.stderr
