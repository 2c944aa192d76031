"""AWS accounts: a step that names an account acts with that account's assumed role.

On the sandbox, moto's STS answers `AssumeRole` with temporary keys (ASIA...) of the role's
account, and moto keeps each account's resources apart, so a call made with them lands in that
account. The sandbox's call log records the access key id every AWS call was signed with: the
proof of which credentials made each call.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from temporalio.client import Client

from activities.accounts import AwsSessions, refresh_windows
from activities.arns import Arns
from activities.base import StepContext
from activities.clients import Clients
from activities.errors import StepError
from orchestrator import permissions
from orchestrator.client import connect
from orchestrator.config import AWSConfig, Config, ConfigError, from_sandbox, load
from orchestrator.logs import configure
from orchestrator.plan import make_plan
from orchestrator.runbook.loader import RunbookError, load_text
from orchestrator.runbook.modes import select
from orchestrator.runbook.resolve import resolve
from orchestrator.runs import RunState
from orchestrator.sandbox.calls import Call
from orchestrator.sandbox.control import SandboxControl
from orchestrator.sandbox.faults import FaultRule
from orchestrator.sandbox.manager import SandboxEnv
from orchestrator.worker import build_worker, executor
from tests.cli import failover
from tests.sandbox.helpers import aws
from tests.workflows.helpers import drive, run, start

BASE_KEY = "sandbox"  # the sandbox configuration's own (long-term) access key id
DR = "111111111111"  # the account the DR role lives in (the sandbox's own is 123456789012)
EXTERNAL_ID = "ext-7f3a9c-never-printed"
PARAM = "/failover/accounts/flag"

RUNBOOK = """
apiVersion: failover.dev/v1
kind: Runbook
name: accounts-drill
regions: [us-east-1, us-west-2]
steps:
  - id: flag-in-dr
    type: ssm_parameter
    account: dr
    params: {name: /failover/accounts/flag, value: "on", region: us-west-2}
  - id: flag-here
    type: ssm_parameter
    depends_on: [flag-in-dr]
    params: {name: /failover/accounts/flag, value: here, region: us-west-2}
"""


# ------------------------------------------------------------------------------- helpers
def create_role(env: SandboxEnv, account: str = DR, name: str | None = None) -> str:
    """A role created in `account` (IAM CreateRole, with credentials of that account: moto's
    STS lets a bootstrap role into an account that has nothing yet), trusting the sandbox's own
    account with the external id; its ARN."""
    boot = aws(env, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/bootstrap", RoleSessionName="bootstrap"
    )["Credentials"]
    iam = boto3.session.Session(
        aws_access_key_id=boot["AccessKeyId"],
        aws_secret_access_key=boot["SecretAccessKey"],
        aws_session_token=boot["SessionToken"],
    ).client("iam", region_name="us-east-1", endpoint_url=env.aws_endpoint_url)
    trust = permissions.trust_policy("arn:aws:iam::123456789012:root", True, "dr")
    trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] = EXTERNAL_ID
    role = iam.create_role(
        RoleName=name or f"failover-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps(trust),
    )["Role"]
    assert role["Arn"].split(":")[4] == account
    return str(role["Arn"])


def with_accounts(env: SandboxEnv, accounts: dict[str, Any], **aws_extra: Any) -> Config:
    """The sandbox's configuration with these accounts (validated as a config file would be)."""
    cfg = from_sandbox(env)
    data = cfg.aws.model_dump()
    data.update(accounts=accounts, **aws_extra)
    cfg.aws = AWSConfig.model_validate(data)
    return cfg


def calls(control: SandboxControl, since: float, operation: str) -> list[Call]:
    return [c for c in control.calls(since) if c.operation == operation]


def access_key(clients: Clients, account: str) -> str:
    """The access key id an account's session signs with now."""
    frozen = clients.aws_session(account).get_credentials().get_frozen_credentials()
    return str(frozen.access_key)


@asynccontextmanager
async def worker_with(clients: Clients) -> AsyncIterator[tuple[Client, str]]:
    """An in-process worker whose activities use these very clients."""
    client = await connect(clients.config.temporal)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with executor() as pool:
        async with build_worker(client, clients.config, pool, queue, clients=clients):
            yield client, queue


# ------------------------------------------------------------------ a drill in an account
def test_a_drill_step_naming_an_account_is_signed_with_that_account_s_assumed_role(
    fresh: SandboxEnv, control: SandboxControl
) -> None:
    role = create_role(fresh)
    cfg = with_accounts(fresh, {"dr": {"role_arn": role, "external_id": EXTERNAL_ID}})
    clients = Clients(cfg)
    inp = resolve(load_text(RUNBOOK), "us-east-1", "us-west-2", requester="alice")
    assert [(s.id, s.account) for s in inp.steps] == [("flag-in-dr", "dr"), ("flag-here", None)]
    since = time.time() - 1

    async def scenario() -> tuple[Any, str]:
        async with worker_with(clients) as (client, queue):
            h = await start(client, queue, inp)
            result = await drive(h)
            history = (await h.fetch_history()).to_json()
            return result, history

    result, history = run(scenario())
    assert result.state == RunState.SUCCEEDED, result.steps

    # The call log: the step naming the account was signed with the role's temporary key,
    # the other one with the base credentials; the role was assumed with the base credentials,
    # through the regional STS of the configuration, and the external id is not in the log.
    puts = {c.params["Value"]: c for c in calls(control, since, "ssm:PutParameter")}
    assumed = access_key(clients, "dr")
    assert assumed.startswith("ASIA")
    assert puts["on"].access_key_id == assumed
    assert puts["here"].access_key_id == BASE_KEY
    assumes = [c for c in calls(control, since, "sts:AssumeRole") if c.params["RoleArn"] == role]
    assert len(assumes) == 1  # once for the whole run: the session is cached
    assert assumes[0].access_key_id == BASE_KEY
    assert assumes[0].params["ExternalId"] == "***"
    assert assumes[0].params["RoleSessionName"] == "failover-dr"
    logged = [c.model_dump() for c in control.calls(since) if c.operation != "iam:CreateRole"]
    assert EXTERNAL_ID not in json.dumps(logged)  # (the test's trust policy names it)

    # Each write landed in its own account: the DR account's parameter is not the other one.
    mine = aws(fresh, "ssm", "us-west-2").get_parameter(Name=PARAM)["Parameter"]["Value"]
    theirs = clients.aws("ssm", "us-west-2", account="dr").get_parameter(Name=PARAM)
    assert (mine, theirs["Parameter"]["Value"]) == ("here", "on")
    who = clients.aws("sts", "us-west-2", account="dr").get_caller_identity()
    assert who["Account"] == DR and "/failover-dr" in who["Arn"]

    # The workflow's history names the account, never its secret.
    payloads = "".join(base64.b64decode(d).decode(errors="replace")
                       for d in re.findall(r'"data": "([A-Za-z0-9+/=]+)"', history))  # fmt: skip
    assert '"account":"dr"' in payloads.replace(" ", "")
    assert EXTERNAL_ID not in payloads + history


def test_a_replaced_step_and_a_game_day_action_carry_their_account() -> None:
    rb = load_text(
        RUNBOOK.replace(
            "    account: dr\n",
            "    account: dr\n    unplanned:\n      replace: {type: noop}\n",
        )
    )
    unplanned = select(rb, "unplanned").steps
    assert [(s.id, s.account) for s in unplanned] == [("flag-in-dr", "dr"), ("flag-here", None)]
    with pytest.raises(RunbookError, match="account"):
        load_text(RUNBOOK.replace("account: dr", "account: Not_A_Name"))


# ------------------------------------------------------------------------- the clients
def test_clients_are_cached_per_account_and_a_step_context_acts_in_its_account(
    env: SandboxEnv,
) -> None:
    role = create_role(env)
    cfg = with_accounts(env, {"dr": {"role_arn": role, "external_id": EXTERNAL_ID}})
    clients = Clients(cfg)
    base = clients.aws("ssm", "us-east-1")
    dr = clients.aws("ssm", "us-east-1", account="dr")
    assert dr is not base
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(clients.aws("ssm", "us-east-1",
                                                                     account="dr")))
               for _ in range(8)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is dr for c in got)
    assert clients.aws("ssm", "us-east-1", retry=False, account="dr") is not dr
    assert ("ssm", "us-east-1", True, "dr") in clients._aws

    # A step's context: its account's clients (sharing the cache); none named: the base.
    ctx = StepContext("run", "s", "us-east-1", "us-west-2", None, "drill", clients, account="dr")
    assert ctx.clients.aws("ssm", "us-east-1") is dr
    plain = StepContext("run", "s", "us-east-1", "us-west-2", None, "drill", clients)
    assert plain.clients.aws("ssm", "us-east-1") is base
    # With a default account, a step naming none acts in it.
    cfg.aws.default_account = "dr"
    dflt = StepContext("run", "s", "us-east-1", "us-west-2", None, "drill", clients)
    assert dflt.clients.account == "dr" and dflt.clients.aws("ssm", "us-east-1") is dr
    assert clients.aws("ssm", "us-east-1") is base  # the worker's own calls: the base

    # An account the configuration lacks: a non-retryable Validation error, at the first call.
    with pytest.raises(StepError) as err:
        clients.aws("ssm", "us-east-1", account="nope")
    assert err.value.kind == "Validation" and not err.value.retryable
    assert "account 'nope' is not in the configuration's aws.accounts (dr)" in str(err.value)


def test_warming_assumes_each_account_s_role_once_and_builds_its_clients(
    env: SandboxEnv, control: SandboxControl
) -> None:
    role = create_role(env)
    cfg = with_accounts(env, {"dr": {"role_arn": role}, "gone": {"role_arn": role}})
    clients = Clients(cfg)
    control.add_fault(FaultRule(target="aws:sts:AssumeRole", error="AccessDenied", count=1,
                                message="not authorized to perform sts:AssumeRole"))  # fmt: skip
    warmed = clients.warm(["ssm"], regions=["us-east-1"])
    # "dr" came first (sorted) and met the fault; "gone" was assumed
    assert warmed.accounts == ["gone"]
    assert "AccessDenied" in warmed.failed["account:dr"]
    assert ("ssm", "us-east-1", False, "gone") in clients._aws


# ---------------------------------------------------------------------------- refreshing
class Clock:
    """Now, plus however far a test moves it."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


def test_credentials_are_refreshed_before_they_expire_by_one_thread(
    env: SandboxEnv, control: SandboxControl
) -> None:
    role = create_role(env)
    cfg = with_accounts(env, {"dr": {"role_arn": role, "duration_s": 900}}, max_attempts=1)
    clock = Clock()
    sessions = AwsSessions(cfg.aws, clock=clock)
    advisory, mandatory = refresh_windows(900)
    assert (advisory, mandatory) == (225, 150)  # not botocore's 15 and 10 minutes: 900 s long
    since = time.time() - 1
    creds = sessions.session("dr").get_credentials()

    def key() -> str:
        return str(creds.get_frozen_credentials().access_key)

    def assumed() -> int:
        return len([c for c in calls(control, since, "sts:AssumeRole")
                    if c.params["RoleArn"] == role])  # fmt: skip

    first = key()
    assert first.startswith("ASIA") and assumed() == 1
    clock.ahead = timedelta(seconds=900 - advisory - 20)  # not yet due: the same keys
    assert key() == first and assumed() == 1

    # Due (inside the advisory window): one thread refreshes, the others sign with the
    # current keys meanwhile instead of waiting (the refresh is held 1 s by the sandbox).
    control.add_fault(FaultRule(target="aws:sts:AssumeRole", error="none", delay=1.0))
    clock.ahead = timedelta(seconds=900 - advisory + 20)
    barrier, seen = threading.Barrier(8), []

    def use() -> None:
        barrier.wait()
        seen.append(key())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clock.ahead = timedelta(0)
    second = key()
    assert second != first and second.startswith("ASIA")
    assert assumed() == 2  # one refresh for the eight threads
    assert seen.count(first) == 7 and seen.count(second) == 1

    # Clients sign with the refreshed keys (they share the session's credentials).
    ssm = sessions.session("dr").client("ssm", region_name="us-east-1",
                                        endpoint_url=cfg.aws.endpoint("us-east-1"))  # fmt: skip
    ssm.put_parameter(Name=f"/refresh/{uuid.uuid4().hex[:6]}", Value="x", Type="String")
    assert calls(control, since, "ssm:PutParameter")[-1].access_key_id == second

    # STS failing: in the advisory window the current keys go on; in the mandatory one
    # (they would expire soon) the failure is raised rather than signing with them.
    control.add_fault(FaultRule(target="aws:sts:AssumeRole", error="ServiceUnavailable",
                                count=None))  # fmt: skip
    clock.ahead = timedelta(seconds=900 - advisory + 20)
    assert key() == second
    clock.ahead = timedelta(seconds=900 - mandatory + 20)
    with pytest.raises(Exception, match="ServiceUnavailable"):
        key()
    control.clear_faults()
    third = key()
    assert third not in (first, second)


def test_a_role_is_assumed_through_the_configured_region_s_sts_while_another_is_down(
    env: SandboxEnv, control: SandboxControl
) -> None:
    role = create_role(env)
    cfg = with_accounts(env, {"dr": {"role_arn": role}}, sts_region="us-west-2", max_attempts=1)
    control.set_outage("us-east-1", "full")
    since = time.time() - 1
    clients = Clients(cfg)
    assert access_key(clients, "dr").startswith("ASIA")
    assume = [c for c in calls(control, since, "sts:AssumeRole") if c.params["RoleArn"] == role]
    assert [c.region for c in assume] == ["us-west-2"]


def test_a_role_assumed_from_another_account_s_role_or_from_a_profile(
    env: SandboxEnv, control: SandboxControl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, spoke, mine = create_role(env), create_role(env, "222222222222"), create_role(env)
    (tmp_path / "credentials").write_text(
        "[ops]\naws_access_key_id = AKIAOPSPROFILE000001\naws_secret_access_key = ops\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    cfg = with_accounts(env, {
        "hub": {"role_arn": hub},
        "spoke": {"role_arn": spoke, "base": "hub", "session_name": "spoke-run"},
        "ops": {"role_arn": mine, "profile": "ops"},
    })  # fmt: skip
    clients = Clients(cfg)
    since = time.time() - 1
    spoke_key, hub_key = access_key(clients, "spoke"), access_key(clients, "hub")
    ops_key = access_key(clients, "ops")
    by_role = {c.params["RoleArn"]: c for c in calls(control, since, "sts:AssumeRole")}
    assert by_role[hub].access_key_id == BASE_KEY
    assert by_role[spoke].access_key_id == hub_key  # chained: the hub's role assumed it
    assert by_role[spoke].params["RoleSessionName"] == "spoke-run"
    assert by_role[mine].access_key_id == "AKIAOPSPROFILE000001"
    assert len({spoke_key, hub_key, ops_key}) == 3
    who = clients.aws("sts", "us-east-1", account="spoke").get_caller_identity()
    assert who["Account"] == "222222222222"


# ------------------------------------------------------------------ configuration, errors
def config_file(env: SandboxEnv, path: Path, **aws_extra: Any) -> Path:
    """A config file that reaches the sandbox, as written for real infrastructure."""
    data = from_sandbox(env).model_dump(
        mode="json", exclude={"notify", "reports", "sandbox", "source"}
    )
    data["aws"].update(access_key_id=BASE_KEY, secret_access_key=BASE_KEY, **aws_extra)
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_external_id_is_never_shown_and_bad_accounts_are_one_line_errors(
    env: SandboxEnv, tmp_path: Path
) -> None:
    role = "arn:aws:iam::111111111111:role/failover"
    good = config_file(env, tmp_path / "good.yaml", default_account="dr",
                       accounts={"dr": {"role_arn": role, "external_id": EXTERNAL_ID}})  # fmt: skip
    shown = failover(env, "config", "show", "--config", str(good))
    assert shown.returncode == 0, shown.stderr
    assert EXTERNAL_ID not in shown.stdout + shown.stderr
    aws_shown = yaml.safe_load(shown.stdout)["aws"]
    assert aws_shown["accounts"]["dr"]["external_id"] == "**********"
    assert aws_shown["accounts"]["dr"]["role_arn"] == role
    assert aws_shown["default_account"] == "dr"

    cases = {
        "default_account 'nope' is not among accounts (dr)": {
            "default_account": "nope", "accounts": {"dr": {"role_arn": role}}},
        "aws.accounts.dr.role_arn: 'arn:aws:iam::1:user/x' is not an IAM role ARN": {
            "accounts": {"dr": {"role_arn": "arn:aws:iam::1:user/x"}}},
        "aws.accounts.dr.duration_s: Input should be less than or equal to 43200": {
            "accounts": {"dr": {"role_arn": role, "duration_s": 50000}}},
        "role chaining limit": {"accounts": {
            "hub": {"role_arn": role},
            "dr": {"role_arn": role, "base": "hub", "duration_s": 7200}}},
        "base accounts form a cycle (a -> b -> a)": {"accounts": {
            "a": {"role_arn": role, "base": "b"}, "b": {"role_arn": role, "base": "a"}}},
    }  # fmt: skip
    for expected, extra in cases.items():
        bad = config_file(env, tmp_path / "bad.yaml", **extra)
        with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            load(bad)
        out = failover(env, "config", "show", "--config", str(bad))
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_an_account_the_configuration_lacks_is_a_one_line_error_at_plan_and_drill(
    env: SandboxEnv, tmp_path: Path
) -> None:
    runbook = tmp_path / "accounts.yaml"
    runbook.write_text(RUNBOOK)
    cfg = config_file(env, tmp_path / "failover.yaml", accounts={
        "prod": {"role_arn": "arn:aws:iam::111111111111:role/failover"}})  # fmt: skip
    expected = (f"error: step flag-in-dr: account 'dr' is not defined in aws.accounts of {cfg} "
                "(defined: prod)")  # fmt: skip
    for command in ("plan", "drill", "state"):
        where = ["--region", "us-east-1"] if command == "state" else [
            "--from", "us-east-1", "--to", "us-west-2"]  # fmt: skip
        out = failover(env, command, str(runbook), *where, "--config", str(cfg))
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert out.stderr.strip() == expected, command
    iam = failover(env, "iam", str(runbook), "--config", str(cfg))
    assert iam.returncode == 2
    assert iam.stderr.strip() == expected

    # An evacuation whose service's runbook names it: the same, naming the service.
    evac = tmp_path / "evac.yaml"
    evac.write_text(
        "apiVersion: failover.dev/v1\nkind: Evacuation\nname: accounts\n"
        "services:\n  - name: flags\n    runbook: accounts.yaml\n"
    )
    out = failover(env, "plan", str(evac), "--from", "us-east-1", "--config", str(cfg))
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.strip() == expected.replace("error: ", "error: service flags: ")

    # A worker whose configuration lacks it: the step fails at once (not retried), saying so.
    inp = resolve(load_text(RUNBOOK), "us-east-1", "us-west-2", requester="alice")
    plan = make_plan(inp, Clients(from_sandbox(env)))
    row = next(r for r in plan.steps if r.id == "flag-in-dr")
    assert row.error_kind == "Validation"
    assert "account 'dr' is not in the configuration's aws.accounts (none)" in row.preflight


def test_nothing_logs_the_external_id_or_the_temporary_secret(
    env: SandboxEnv, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    role = create_role(env)
    cfg = with_accounts(env, {"dr": {"role_arn": role, "external_id": EXTERNAL_ID}})
    clients = Clients(cfg)
    configure("json", level=logging.DEBUG)  # the orchestrator's own lines, to stderr
    with caplog.at_level(logging.DEBUG):  # botocore too: it logs requests and answers
        frozen = clients.aws_session("dr").get_credentials().get_frozen_credentials()
        clients.aws("ssm", "us-east-1", account="dr").put_parameter(
            Name=f"/logs/{uuid.uuid4().hex[:6]}", Value="x", Type="String"
        )
    text = caplog.text + "".join(capsys.readouterr())
    assert "AssumeRole" in text and "Response body" in text  # botocore did log the exchange
    assert "role assumed" in text and role in text  # and so did the orchestrator
    assert EXTERNAL_ID not in text
    leaks = [
        line for line in text.splitlines() if frozen.secret_key in line or frozen.token in line
    ]
    assert not leaks, leaks


# ------------------------------------------------------------------------------------ IAM
IAM_RUNBOOK = """
apiVersion: failover.dev/v1
kind: Runbook
name: accounts-iam
regions: [us-east-1, us-west-2]
steps:
  - id: flag
    type: ssm_parameter
    account: dr
    params: {name: /flag, value: "on"}
    guards: [{type: cloudwatch_alarm, params: {alarms: [ok]}}]
  - id: dns
    type: route53_weighted
    params: {zone: z., record: r.z., weights: {us-east-1: 0, us-west-2: 100}}
"""


def test_iam_writes_each_account_s_policy_and_trust_and_the_worker_s(
    env: SandboxEnv, tmp_path: Path
) -> None:
    runbook = tmp_path / "iam.yaml"
    runbook.write_text(IAM_RUNBOOK)
    role = "arn:aws:iam::111111111111:role/failover-dr"
    hub = "arn:aws:iam::333333333333:role/failover-hub"
    worker = "arn:aws:iam::123456789012:role/failover-worker"
    cfg = config_file(env, tmp_path / "failover.yaml", accounts={
        "dr": {"role_arn": role, "external_id": EXTERNAL_ID, "base": "hub"},
        "hub": {"role_arn": hub, "duration_s": 7200},
        "unused": {"role_arn": "arn:aws:iam::444444444444:role/x"},
    })  # fmt: skip
    out = failover(env, "iam", str(runbook), "--config", str(cfg), "--worker-role", worker)
    assert out.returncode == 0, out.stderr
    assert EXTERNAL_ID not in out.stdout
    docs = json.loads(out.stdout)

    def actions(policy: dict[str, Any]) -> set[str]:
        return {a for st in policy["Statement"] for a in st["Action"]}

    dr, hub_doc = docs["accounts"]["dr"], docs["accounts"]["hub"]
    assert set(docs["accounts"]) == {"dr", "hub"}  # the accounts used, and the one assuming
    assert {"ssm:PutParameter", "cloudwatch:DescribeAlarms"} <= actions(dr["policy"])
    assert "route53:ChangeResourceRecordSets" not in actions(dr["policy"])
    assert "route53:ChangeResourceRecordSets" in actions(docs["worker"]["policy"])
    assert "ssm:PutParameter" not in actions(docs["worker"]["policy"])
    # the worker assumes the hub's role, the hub's role the DR one (with the external id)
    assume = [
        st for st in docs["worker"]["policy"]["Statement"] if st["Sid"] == "AssumeAccountRoles"
    ]
    assert assume == [{"Sid": "AssumeAccountRoles", "Effect": "Allow",
                       "Action": ["sts:AssumeRole"], "Resource": [hub]}]  # fmt: skip
    assert actions(hub_doc["policy"]) == {"sts:AssumeRole"}  # no step acts in it
    trust = dr["trust_policy"]["Statement"][0]
    assert trust["Principal"] == {"AWS": hub} and trust["Action"] == "sts:AssumeRole"
    assert trust["Condition"] == {
        "StringEquals": {"sts:ExternalId": "<aws.accounts.dr.external_id>"}
    }
    assert hub_doc["trust_policy"]["Statement"][0]["Principal"] == {"AWS": worker}
    assert "Condition" not in hub_doc["trust_policy"]["Statement"][0]
    assert hub_doc["max_session_duration"] == 7200 and "max_session_duration" not in dr

    # A runbook that names no account: the one policy, as before (no configuration needed).
    plain = tmp_path / "plain.yaml"
    plain.write_text(IAM_RUNBOOK.replace("    account: dr\n", ""))
    out = failover(env, "iam", str(plain))
    assert out.returncode == 0, out.stderr
    rb = load_text(plain.read_text())
    arns = Arns()
    grants = permissions.runbook_grants(rb, arns)
    assert json.loads(out.stdout) == permissions.iam_policy(
        [*grants, *permissions.config_grants(from_sandbox(env), rb, arns)]
    )


def test_a_default_account_takes_the_steps_that_name_none_in_the_policies() -> None:
    rb = load_text(IAM_RUNBOOK)

    def actions(policy: dict[str, Any]) -> set[str]:
        return {a for st in policy["Statement"] for a in st["Action"]}

    role = "arn:aws:iam::111111111111:role/failover-dr"
    aws = AWSConfig(accounts={"dr": {"role_arn": role}}, default_account="dr")
    docs = permissions.account_documents(rb, aws)
    assert {"ssm:PutParameter", "cloudwatch:DescribeAlarms",
            "route53:ChangeResourceRecordSets"} <= actions(docs["accounts"]["dr"]["policy"])  # fmt: skip
    assert actions(docs["worker"]["policy"]) == {"sts:AssumeRole"}  # it only assumes dr's role
    plain = permissions.account_documents(rb, AWSConfig(accounts={"dr": {"role_arn": role}}))
    assert "route53:ChangeResourceRecordSets" in actions(plain["worker"]["policy"])
    assert "ssm:PutParameter" not in actions(plain["worker"]["policy"])
