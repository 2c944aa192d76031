"""`failover iam` / `failover rbac`: least privilege scoped to what a runbook names.

IAM: each action on the resources the runbook's params name (hosted zone, record names, global
cluster, Auto Scaling group, ...), "*" only for actions AWS does not scope; the configuration's
report bucket and SNS topics; the document is one IAM accepts (the sandbox's IAM, over its
socket). RBAC: a Role per namespace with the kinds, verbs and objects the steps need, a
ClusterRole only for cluster-scoped resources."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from activities import registry
from activities.arns import Arns, Grant
from orchestrator import permissions
from orchestrator.config import Config, NotifyChannel, NotifyConfig, ReportsConfig
from orchestrator.notifications import NotifyRoute
from orchestrator.runbook.loader import load_file, load_text
from orchestrator.sandbox.manager import SandboxEnv
from tests.cli import failover
from tests.sandbox.helpers import aws

ROOT = Path(__file__).resolve().parents[1]
SHOP = ROOT / "runbooks/shop-region-switch.yaml"
ACCOUNT = "111122223333"

#: Actions with no resource-level permission (the Service Authorization Reference lists no
#: resource type for them): "*" is the only Resource they take.
UNSCOPABLE = {
    "autoscaling:DescribeAutoScalingGroups",
    "cloudwatch:GetMetricData",
    "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeTargetGroups",
    "fis:ListExperimentTemplates",
    "fis:ListExperiments",
    "globalaccelerator:ListAccelerators",
    "route53-recovery-cluster:ListRoutingControls",
    "route53-recovery-control-config:ListClusters",
    "route53-recovery-control-config:ListControlPanels",
    "route53:ListHealthChecks",
    "route53:ListHostedZonesByName",
}
#: Reads on "*" although their type can be scoped: `failover readiness` lists every global
#: cluster to find a replica's, and reads the clusters and instances the runbook names.
READS_OF_ALL = {"rds:DescribeGlobalClusters", "rds:DescribeDBClusters", "rds:DescribeDBInstances"}

#: A runbook with the step types the example runbooks do not use, so each one's ARNs are built.
EVERY_TYPE = """
apiVersion: failover.dev/v1
kind: Runbook
name: every-type
regions: [us-east-1, us-west-2]
approvers: [alice, bob]
steps:
  - id: flag
    type: ssm_parameter
    params: {name: /shop/active, value: "${{ to_region }}", region: "${{ to_region }}"}
  - id: service
    type: ecs_service
    params: {cluster: shop, service: api, desired: 2, region: "${{ to_region }}"}
  - id: dial
    type: ga_traffic_dial
    params: {accelerator: shop-ga, region: "${{ to_region }}", dial: 100}
  - id: check
    type: route53_health_check
    params: {name: "shop-${{ from_region }}", inverted: true}
  - id: alarms
    type: cloudwatch_alarm
    params: {alarms: [shop-5xx, shop-latency], region: "${{ to_region }}", state: OK}
  - id: view
    type: dns_view
    params: {zone: Z0123456789ABC, record: api.shop.example., expect: ["${{ to_region }}"]}
  - id: patch
    type: k8s_patch
    region: ${{ to_region }}
    params: {api_version: networking.k8s.io/v1, kind: NetworkPolicy, namespace: edge,
             name: allow-all, patch: {metadata: {labels: {active: "true"}}}}
  - id: smoke
    type: k8s_job
    region: ${{ to_region }}
    params: {namespace: smoke, name: smoke, image: example/smoke:1}
  - id: approve
    type: approval
    depends_on: [flag, service, dial, check, alarms, view, patch, smoke]
    params: {approvals: 1}
  - id: promote
    type: rds_promote_replica
    depends_on: [approve]
    irreversible: true
    params: {db_instance: "shop-db-${{ to_region }}", region: "${{ to_region }}"}
gameday:
  unattended: true
  fault:
    type: fis_experiment
    params: {template: EXT1a2b3c4d5e6f7, region: "${{ from_region }}"}
  slo: {url: "http://shop.example/health"}
gamedays:
  pods:
    unattended: true
    fault:
      type: chaos_mesh
      region: ${{ from_region }}
      params: {kind: PodChaos, namespace: shop, name: kill, spec: {action: pod-kill}}
    slo: {url: "http://shop.example/health"}
"""


def _iam(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "orchestrator", "iam", *args], capture_output=True,
                         text=True, timeout=60, check=True, cwd=ROOT)  # fmt: skip
    return dict(json.loads(out.stdout))


def _allowed(policy: dict[str, Any]) -> dict[str, set[str]]:
    """Action -> the resources it is allowed on."""
    out: dict[str, set[str]] = {}
    for st in policy["Statement"]:
        assert st["Effect"] == "Allow" and re.fullmatch(r"[A-Za-z0-9]+", st["Sid"]), st
        resources = [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for action in st["Action"]:
            out.setdefault(action, set()).update(resources)
    return out


def _is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(("Describe", "List", "Get"))


def _check_least_privilege(policy: dict[str, Any]) -> None:
    """No action on "*" unless AWS cannot scope it (or it is one of readiness' reads); never a
    write; every ARN well formed."""
    for action, resources in _allowed(policy).items():
        if "*" in resources:
            assert resources == {"*"}, (action, resources)
            assert action in UNSCOPABLE or action in READS_OF_ALL, f"{action} on *"
            assert _is_read(action) or action in UNSCOPABLE, f"write {action} on *"
        for arn in resources - {"*"}:
            assert re.fullmatch(r"arn:aws:[a-z0-9-]+:[a-z0-9-]*:(\d{12}|\*)?:\S+", arn), arn


# ------------------------------------------------------------------------------ IAM
def test_the_shop_policy_names_the_resources_of_its_params() -> None:
    policy = _iam(str(SHOP), "--account", ACCOUNT)
    allowed = _allowed(policy)
    every = {a for t in permissions.step_types(load_file(SHOP)) for a in t.actions}
    assert every <= set(allowed), every - set(allowed)  # nothing the runbook does is missing
    assert "ssm:PutParameter" not in allowed, "the shop runbook uses no SSM step"
    _check_least_privilege(policy)
    glob = f"arn:aws:rds::{ACCOUNT}:global-cluster:shop-global"
    assert glob in allowed["rds:SwitchoverGlobalCluster"] and glob in allowed[
        "rds:FailoverGlobalCluster"]  # fmt: skip
    # the member cluster it promotes: in the target region, either way
    assert {f"arn:aws:rds:{r}:{ACCOUNT}:cluster:*" for r in ("us-east-1", "us-west-2")} <= allowed[
        "rds:SwitchoverGlobalCluster"]  # fmt: skip
    assert allowed["autoscaling:UpdateAutoScalingGroup"] == {
        f"arn:aws:autoscaling:{r}:{ACCOUNT}:autoScalingGroup:*:autoScalingGroupName/shop-asg"
        for r in ("us-east-1", "us-west-2")
    }
    assert allowed["elasticloadbalancing:ModifyListener"] == {
        f"arn:aws:elasticloadbalancing:{r}:{ACCOUNT}:listener/app/shop-alb/*"
        for r in ("us-east-1", "us-west-2")
    }
    # the recovery rejoins the failed region's cluster, and only that one, by name
    assert allowed["rds:DeleteDBCluster"] == {
        f"arn:aws:rds:{r}:{ACCOUNT}:{kind}" for r in ("us-east-1", "us-west-2")
        for kind in (f"cluster:shop-aurora-{r}", f"cluster-snapshot:shop-aurora-{r}-before-rejoin-*")
    }  # fmt: skip
    # record sets: only the records the runbook names may be changed (no zone id offline)
    (change,) = [st for st in policy["Statement"]
                 if st["Action"] == ["route53:ChangeResourceRecordSets"]]  # fmt: skip
    assert change["Resource"] == "arn:aws:route53:::hostedzone/*"
    assert change["Condition"] == {"ForAllValues:StringEquals": {
        "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["api.shop.example",
                                                                  "www.shop.example"]}}  # fmt: skip
    # one statement per set of resources, and small enough for a managed policy
    keys = [(json.dumps(st["Resource"]), json.dumps(st.get("Condition"))) for st in
            policy["Statement"]]  # fmt: skip
    assert len(keys) == len(set(keys))
    assert len(re.sub(r"\s", "", json.dumps(policy))) <= 6144


def test_every_step_type_scopes_its_actions_to_arns_built_from_its_params() -> None:
    rb = load_text(EVERY_TYPE)
    policy = permissions.iam_policy(permissions.runbook_grants(rb, Arns(account=ACCOUNT)))
    _check_least_privilege(policy)
    allowed = _allowed(policy)
    for r in ("us-east-1", "us-west-2"):
        assert f"arn:aws:ssm:{r}:{ACCOUNT}:parameter/shop/active" in allowed["ssm:PutParameter"]
        assert f"arn:aws:ecs:{r}:{ACCOUNT}:service/shop/api" in allowed["ecs:UpdateService"]
        assert f"arn:aws:rds:{r}:{ACCOUNT}:db:shop-db-{r}" in allowed["rds:PromoteReadReplica"]
        assert allowed["fis:StartExperiment"] >= {
            f"arn:aws:fis:{r}:{ACCOUNT}:experiment-template/EXT1a2b3c4d5e6f7",
            f"arn:aws:fis:{r}:{ACCOUNT}:experiment/*"}  # fmt: skip
        for alarm in ("shop-5xx", "shop-latency"):
            assert f"arn:aws:cloudwatch:{r}:{ACCOUNT}:alarm:{alarm}" in allowed[
                "cloudwatch:DescribeAlarms"]  # fmt: skip
    assert allowed["route53:ListResourceRecordSets"] == {
        "arn:aws:route53:::hostedzone/Z0123456789ABC"
    }  # an id in the runbook: no wildcard
    assert allowed["globalaccelerator:UpdateEndpointGroup"] == {
        f"arn:aws:globalaccelerator::{ACCOUNT}:accelerator/*/listener/*/endpoint-group/*"
    }
    # what a type scopes are its own actions, and its rules its own verbs
    for use in permissions.uses(rb):
        for g in use.stype.iam_resources(use.params, use.region, Arns()):
            assert set(g.actions) <= set(use.stype.actions), (use.stype.name, g.actions)
        declared = {(g, r, v) for g, r, v in use.stype.verbs}
        for rule in use.stype.k8s_rules(use.params):
            for verb in rule.verbs:
                assert (rule.group, rule.resource, verb) in declared or ("*", "*", verb) in \
                    declared, (use.stype.name, rule)  # fmt: skip


def test_grants_merge_per_action_and_group_by_resources() -> None:
    zone = "arn:aws:route53:::hostedzone/Z1"
    key = "route53:ChangeResourceRecordSetsNormalizedRecordNames"

    def names(*records: str) -> dict[str, dict[str, tuple[str, ...]]]:
        return {"ForAllValues:StringEquals": {key: records}}

    change, lst = "route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"
    policy = permissions.iam_policy([
        Grant((change,), (zone,), names("a.example")),
        Grant((change,), (zone,), names("b.example")),  # same key: the values merge
        Grant((lst,), (zone,)),
        Grant(("rds:DescribeDBClusters",), ("arn:aws:rds:us-east-1:1:cluster:x",)),
        Grant(("rds:DescribeDBClusters", "route53:ListHostedZonesByName"), ("*",)),  # "*" wins
    ])  # fmt: skip
    st = {tuple(s["Action"]): s for s in policy["Statement"]}
    assert st[(change,)]["Condition"] == {"ForAllValues:StringEquals": {key: ["a.example",
                                                                              "b.example"]}}  # fmt: skip
    assert st[(lst,)]["Resource"] == zone and "Condition" not in st[(lst,)]
    assert st[("rds:DescribeDBClusters", "route53:ListHostedZonesByName")]["Resource"] == "*"
    assert len(policy["Statement"]) == 3
    other = {"StringEquals": {"route53:ChangeResourceRecordSetsActions": ("UPSERT",)}}
    loose = permissions.iam_policy([Grant((change,), (zone,), names("a.example")),
                                    Grant((change,), (zone,), other)])  # fmt: skip
    assert "Condition" not in loose["Statement"][0]  # no one condition says both: none


def test_the_report_bucket_and_the_runbook_s_sns_topics_are_in_the_policy() -> None:
    topic = "arn:aws:sns:us-east-1:111122223333:pages"
    config = Config(
        reports=ReportsConfig(s3_bucket="dr-reports", s3_prefix="failover/reports/"),
        notify=NotifyConfig(channels={
            "pages": NotifyChannel(type="sns", topic_arn=topic),
            "other": NotifyChannel(type="sns", topic_arn=topic.replace("pages", "other")),
            "chat": NotifyChannel(type="slack", url=SecretStr("https://hooks.example/x")),
        }),
    )  # fmt: skip
    rb = load_file(SHOP)
    routed = rb.model_copy(update={"notify": [NotifyRoute(channel="pages")]})
    arns = Arns(account=ACCOUNT)
    policy = permissions.iam_policy(permissions.config_grants(config, routed, arns))
    by_action = {a: st for st in policy["Statement"] for a in st["Action"]}
    assert by_action["s3:PutObject"]["Resource"] == "arn:aws:s3:::dr-reports/failover/reports/*"
    assert by_action["s3:GetObject"] is by_action["s3:PutObject"]
    assert by_action["s3:ListBucket"]["Resource"] == "arn:aws:s3:::dr-reports"
    assert by_action["s3:ListBucket"]["Condition"] == {
        "StringLike": {"s3:prefix": ["failover/reports/*"]}
    }
    assert by_action["sns:Publish"]["Resource"] == topic  # the routed channel's topic only
    unrouted = permissions.iam_policy(permissions.config_grants(config, rb, arns))
    publish = next(st for st in unrouted["Statement"] if st["Action"] == ["sns:Publish"])
    assert sorted(publish["Resource"]) == sorted([topic, topic.replace("pages", "other")])


def test_bad_input_is_one_line() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True,
                              text=True, timeout=60, cwd=ROOT)  # fmt: skip

    for args, words in (
        (("iam", str(SHOP), "--account", "12"), "--account: '12' is not an AWS account id"),
        (("iam", str(SHOP), "--partition", "aws-x"), "--partition"),
        (("iam", str(SHOP), "--param", "nope=1"), "--param nope: unknown parameter"),
        (("rbac", str(SHOP), "--param", "x"), "--param 'x': expected NAME=VALUE"),
    ):
        p = run(*args)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and words in p.stderr, p.stderr


def test_the_policy_with_ids_looked_up_is_one_the_sandbox_s_iam_accepts(env: SandboxEnv) -> None:
    """Against the sandbox (its AWS over a socket): the hosted zone's and the health checks'
    ids and the account asked of AWS; the sandbox's SNS topic; IAM takes the document."""
    got = failover(env, "iam", str(SHOP), "--lookup")
    assert got.returncode == 0, got.stderr
    policy = json.loads(got.stdout)
    _check_least_privilege(policy)
    allowed = _allowed(policy)
    r53 = aws(env, "route53")
    zone = r53.list_hosted_zones_by_name(DNSName="shop.example.")["HostedZones"][0]
    zone_arn = f"arn:aws:route53:::hostedzone/{zone['Id'].rsplit('/', 1)[-1]}"
    assert allowed["route53:ChangeResourceRecordSets"] == {zone_arn}
    assert allowed["route53:ListResourceRecordSets"] == {zone_arn}
    account = aws(env, "sts").get_caller_identity()["Account"]
    assert f"arn:aws:rds::{account}:global-cluster:shop-global" in allowed[
        "rds:SwitchoverGlobalCluster"]  # fmt: skip
    # the game day's detector reads the health check of each region, by id
    ids = {h["Id"] for h in r53.list_health_checks()["HealthChecks"]}
    status = allowed["route53:GetHealthCheckStatus"]
    assert status and {a.rsplit("/", 1)[-1] for a in status} <= ids, status
    assert allowed["sns:Publish"] == {env.notify_topic_arn}
    iam = aws(env, "iam")
    created = iam.create_policy(PolicyName=f"failover-{zone['Id'][-6:]}",
                                PolicyDocument=json.dumps(policy))["Policy"]  # fmt: skip
    version = iam.get_policy_version(PolicyArn=created["Arn"],
                                     VersionId=created["DefaultVersionId"])["PolicyVersion"]  # fmt: skip
    stored = version["Document"]
    assert (json.loads(stored) if isinstance(stored, str) else stored) == policy
    # ... and it does check: a Resource that is not an ARN is refused
    broken = {**policy, "Statement": [{**policy["Statement"][-1], "Resource": "hostedzone/x"}]}
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.create_policy(PolicyName="failover-broken", PolicyDocument=json.dumps(broken))


# ----------------------------------------------------------------------------- RBAC
def _rbac(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run([sys.executable, "-m", "orchestrator", "rbac", *args],
                         capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_rbac_of_the_shop_runbook_is_a_role_in_its_namespace_with_only_what_it_needs() -> None:
    docs = _rbac(str(SHOP), "--service-account", "dr-worker", "--sa-namespace", "dr")
    kinds = [(d["kind"], d["metadata"].get("namespace")) for d in docs]
    assert kinds == [("ClusterRole", None), ("ClusterRoleBinding", None), ("Role", "shop"),
                     ("RoleBinding", "shop")]  # fmt: skip
    cluster_role, _, role, binding = docs
    # cluster-wide: access reviews only (`failover readiness`)
    assert cluster_role["rules"] == [{"apiGroups": ["authorization.k8s.io"],
                                      "resources": ["selfsubjectaccessreviews"],
                                      "verbs": ["create"]}]  # fmt: skip
    rules = {(r["apiGroups"][0], r["resources"][0]): r for r in role["rules"]}
    # Deployments only (the runbook scales no StatefulSet), the three it names
    assert set(rules) == {("", "configmaps"), ("apps", "deployments"),
                          ("apps", "deployments/scale"), ("postgresql.cnpg.io", "clusters")}  # fmt: skip
    assert rules[("apps", "deployments/scale")] == {
        "apiGroups": ["apps"], "resources": ["deployments/scale"],
        "resourceNames": ["cart", "catalog", "checkout"], "verbs": ["get", "patch"]}  # fmt: skip
    assert rules[("", "configmaps")]["resourceNames"] == ["shop-flags"]
    assert rules[("postgresql.cnpg.io", "clusters")]["resourceNames"] == ["shop-db"]
    for doc in (binding, docs[1]):
        assert doc["subjects"] == [{"kind": "ServiceAccount", "name": "dr-worker",
                                    "namespace": "dr"}]  # fmt: skip
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "failover-orchestrator"}  # fmt: skip


def test_rbac_gives_each_namespace_its_role_and_names_objects_only_where_it_can(
    tmp_path: Path,
) -> None:
    every = tmp_path / "every.yaml"
    every.write_text(EVERY_TYPE)
    docs = _rbac(str(every), str(SHOP))
    roles = {d["metadata"]["namespace"]: d["rules"] for d in docs if d["kind"] == "Role"}
    assert sorted(roles) == ["edge", "shop", "smoke"]
    # k8s_patch: the kind it patches (its resource as Kubernetes guesses it), that object only
    assert roles["edge"] == [{"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                              "resourceNames": ["allow-all"], "verbs": ["get", "patch"]}]  # fmt: skip
    # Jobs and Chaos Mesh objects are named from the run: any of their kind (create cannot be
    # limited to names anyway)
    assert roles["smoke"] == [{"apiGroups": ["batch"], "resources": ["jobs"],
                               "verbs": ["create", "delete", "get"]}]  # fmt: skip
    assert {"apiGroups": ["chaos-mesh.org"], "resources": ["podchaos"],
            "verbs": ["create", "delete", "get"]} in roles["shop"]  # fmt: skip
    assert not any(r["resources"] == ["networkchaos"] for r in roles["shop"])
    # the union of both runbooks' needs in shop
    assert any(r["resources"] == ["deployments/scale"] for r in roles["shop"])
    # no wildcard anywhere, and no ClusterRole rule on a namespaced kind
    for rules in roles.values():
        assert all("*" not in r["apiGroups"] + r["resources"] + r["verbs"] for r in rules)
    (cluster,) = [d for d in docs if d["kind"] == "ClusterRole"]
    assert [r["resources"] for r in cluster["rules"]] == [["selfsubjectaccessreviews"]]


def test_without_a_runbook_rbac_is_every_step_type_s_verbs() -> None:
    (role,) = _rbac()
    assert role == permissions.rbac_role(permissions.step_types(None))
    verbs = {(r["resources"][0], v) for r in role["rules"] for v in r["verbs"]}
    assert ("deployments/scale", "patch") in verbs and ("configmaps", "patch") in verbs
    assert set(registry.STEP_TYPES) >= {"k8s_patch"}  # (why it is broad: k8s_patch's */*)


def test_the_eks_clusters_of_the_configuration_may_be_described() -> None:
    cfg = Config.model_validate(
        {
            "kubernetes": {
                "clusters": {
                    "us-east-1": {"eks": {"name": "shop-use1"}},
                    "us-west-2": {"in_cluster": True},
                }
            }
        }
    )
    grants = permissions.config_grants(cfg, None, Arns(account="111122223333"))
    assert [g for g in grants if "eks:DescribeCluster" in g.actions] == [
        Grant(("eks:DescribeCluster",), ("arn:aws:eks:us-east-1:111122223333:cluster/shop-use1",))
    ]
