"""The real clients steps act with: boto3 per (service, region), kubernetes per region (a kubeconfig
context, this pod's ServiceAccount or an EKS cluster: `activities.kube_auth`).

Clients are created once per worker and reused (boto3 clients are thread-safe; each Kubernetes
ApiClient has its own connection pool). A worker warms them when it starts (`warm`, in the
background): the kubernetes package and the API classes the steps use are imported, the AWS
session resolves its credentials, and every client the registered step types can ask for in the
configured regions is built, so the first step of a run costs what the tenth does.

AWS uses the standard credential chain (or a profile, or keys from the config), adaptive retries
for throttling, and botocore's parameter validation, so a call that is wrong for AWS is wrong
here too. An endpoint override per region is how the sandbox is reached; nothing else differs.
A step that names an account (`aws.accounts`) acts with that account's assumed role
(`activities.accounts`): `aws(..., account=NAME)`, or the clients of a step's context, bound to
its account by `for_account` (which shares every cache with the clients it was made from).

Every call is bounded: connect and read timeouts come from the configuration (AWS and Kubernetes
alike), so an endpoint that hangs fails the call in seconds. A write that must not be sent twice
(`StateStep.idempotent_write = False`) goes through a client that never resends on its own
(`aws(..., retry=False)`): after an error the step observes and decides (`StateStep.drive`).
"""

from __future__ import annotations

import copy
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from activities import kube_auth
from activities.accounts import AwsSessions
from activities.errors import StepError
from orchestrator.config import Config, EksCluster

T = TypeVar("T")

#: IAM service prefixes (of the step types' `actions`) whose boto3 client has another name.
BOTO3_NAMES = {"elasticloadbalancing": "elbv2"}
#: Connections each client keeps open for reuse (botocore's default is 10; the kubernetes
#: client's, 5 per CPU). The worker runs up to 200 activities at once, and the steps of an
#: evacuation's 25 switches call the same few clients (one Route 53 client for every change):
#: past the pool's size each call opened a connection and closed it after, a TLS handshake each
#: on AWS and EKS (on the sandbox, a new connection and server thread per call).
POOL_CONNECTIONS = 50
#: Services reached at one endpoint per call (`aws_at`): nothing to build ahead.
PER_ENDPOINT = frozenset({"route53-recovery-cluster"})
#: The kubernetes client's API classes the step types (and readiness checks) use. The package
#: imports each on first use, with every model it names (`CoreV1Api` alone takes about a second
#: of CPU), so warming imports them too: else the first Kubernetes step of a run pays for it.
KUBE_APIS = (
    "AppsV1Api",
    "AuthorizationV1Api",
    "BatchV1Api",
    "CoreV1Api",
    "CustomObjectsApi",
    "VersionApi",
)


@dataclass
class Warmed:
    """What `Clients.warm` built, and what it could not."""

    aws: list[tuple[str, str]] = field(default_factory=list)
    #: Accounts whose role was assumed and whose clients were built too.
    accounts: list[str] = field(default_factory=list)
    kube: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class Clients:
    """A cache of clients built from one configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        #: (service, region, retry, account) -> boto3 client.
        self._aws: dict[tuple[str, str, bool, str | None], Any] = {}
        self._kube: dict[str, Any] = {}
        self._sessions = AwsSessions(config.aws)
        self._kube_building: dict[str, threading.Lock] = {}
        #: EKS clusters' (endpoint, CA) by (name, region), described once.
        self._eks: dict[tuple[str, str], tuple[str, str]] = {}
        #: The clock EKS tokens are dated and renewed by.
        self.clock: Callable[[], float] = time.time
        #: The account AWS clients act in when a call names none (None: the base credentials).
        self.account: str | None = None
        #: (account, key) -> what `recall` looked up, kept for the worker's life.
        self._recalled: dict[tuple[str | None, Any], Any] = {}

    def for_account(self, account: str | None) -> Clients:
        """These clients acting in `account`, else `aws.default_account` (None: the base
        credentials): what a step's context uses. Every cache is shared (one client per service,
        region, retry mode and account; one session per account); an account the configuration
        lacks fails the first AWS call that needs it (a non-retryable Validation error)."""
        name = self.config.aws.account(account)
        if name == self.account:
            return self
        view = copy.copy(self)
        view.account = name
        return view

    def recall(self, key: Any, lookup: Callable[[], T]) -> T:
        """`lookup()` the first time `key` is asked for in this view's account, the same answer
        after, in every activity of the worker: for an id that never changes while its resource
        exists (a hosted zone's id from its name). The caller `forget`s it when the id is
        refused as unknown (the resource was deleted and made again). A lookup that raises is
        not kept."""
        at = (self.account, key)
        with self._lock:
            if at in self._recalled:
                return cast(T, self._recalled[at])
        value = lookup()  # (outside the lock: two first lookups at once both ask, harmlessly)
        with self._lock:
            self._recalled[at] = value
        return value

    def forget(self, key: Any) -> None:
        """Drop what `recall` kept for `key` in this view's account."""
        with self._lock:
            self._recalled.pop((self.account, key), None)

    def aws_session(self, account: str | None = None) -> Any:
        """The boto3 session of an account (default: this view's)."""
        return self._sessions.session(account or self.account)

    # ------------------------------------------------------------------------- warming
    def regions(self) -> list[str]:
        """The regions the configuration names (AWS endpoints, Kubernetes contexts, endpoints)."""
        named = set(self.config.aws.endpoints) | self.config.kubernetes.regions()
        for urls in self.config.endpoints.values():
            named |= set(urls)
        return sorted(named)

    def warm(self, services: Iterable[str], regions: Iterable[str] | None = None) -> Warmed:
        """Build ahead the clients steps will ask for: for each region, a boto3 client per
        service (both the retrying and the single-request one) and the Kubernetes client of
        its context; for each account of `aws.accounts`, its role assumed and the same AWS
        clients. Never raises: what cannot be built now is built (or fails) when a step asks,
        as before."""
        started = time.monotonic()
        out = Warmed()
        todo = sorted({BOTO3_NAMES.get(s, s) for s in services} - PER_ENDPOINT)
        where = self.regions() if regions is None else sorted(set(regions))
        for region in where:
            out.aws += self._warm_aws(todo, region, out.failed)
            try:
                self.kube(region)
                out.kube.append(region)
            except Exception as exc:  # no such context: a step that needs it will say so
                out.failed[f"kube:{region}"] = f"{type(exc).__name__}: {exc}"
        for account in sorted(self.config.aws.accounts):
            try:  # the role is assumed now, once: its credentials are refreshed from here on
                self.aws_session(account).get_credentials().get_frozen_credentials()
            except Exception as exc:  # not allowed to assume it (yet): a step will say so
                out.failed[f"account:{account}"] = f"{type(exc).__name__}: {exc}"
                continue
            view = self._in(account)
            for region in where:
                view._warm_aws(todo, region, out.failed)
            out.accounts.append(account)
        if out.kube:
            out.failed.update(_import_kube_apis())
        out.seconds = round(time.monotonic() - started, 3)
        return out

    def _warm_aws(
        self, services: list[str], region: str, failed: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Build this view's clients of `services` in `region`; what was built."""
        built = []
        at = f"{region}@{self.account}" if self.account else region
        for service in services:
            try:
                self.aws(service, region)
                self.aws(service, region, retry=False)
                built.append((service, region))
            except Exception as exc:  # an unknown service name, no credentials, ...
                failed[f"aws:{service}:{at}"] = f"{type(exc).__name__}: {exc}"
        return built

    # ---------------------------------------------------------------------------- AWS
    def aws(self, service: str, region: str, retry: bool = True, account: str | None = None) -> Any:
        """A boto3 client for a service in a region; `retry=False`: one request per call (for
        writes that are not idempotent); `account`: acting in that account of `aws.accounts`
        (default: this view's account; on the worker's own clients, the base credentials)."""
        who = self if account is None or account == self.account else self._in(account)
        key = (service, region, retry, who.account)
        return self._cached(key, lambda: who._new_aws(service, region, None, retry))

    def aws_at(self, service: str, region: str, endpoint_url: str) -> Any:
        """A boto3 client for one of several endpoints of a service (Route 53 ARC's cluster
        endpoints): one attempt with short timeouts, so that a caller moves on to the next
        endpoint quickly when this one's region is down (AWS's advice for ARC)."""
        cfg = self.config.aws
        timeouts = (min(cfg.connect_timeout, 2.0), min(cfg.read_timeout, 5.0))
        key = (service, f"{region}@{endpoint_url}", False, self.account)
        return self._cached(
            key, lambda: self._new_aws(service, region, endpoint_url, False, timeouts)
        )

    def aws_probe(self, service: str, region: str, connect: float, read: float) -> Any:
        """A client for a quick look at a region: short timeouts, a single attempt."""
        key = (service, f"{region}~probe", False, self.account)
        return self._cached(
            key, lambda: self._new_aws(service, region, None, False, (connect, read))
        )

    def _in(self, account: str) -> Clients:
        """A view acting in exactly `account` (no default applied)."""
        view = copy.copy(self)
        view.account = account
        return view

    def _cached(self, key: tuple[str, str, bool, str | None], make: Any) -> Any:
        with self._lock:
            if key not in self._aws:
                self._aws[key] = make()
            return self._aws[key]

    def _new_aws(
        self,
        service: str,
        region: str,
        endpoint_url: str | None = None,
        retry: bool = True,
        timeouts: tuple[float, float] | None = None,
    ) -> Any:
        from botocore.config import Config as BotoConfig

        cfg = self.config.aws
        session = self._sessions.session(self.account)
        retries = (
            {"total_max_attempts": cfg.max_attempts, "mode": "adaptive"}
            if retry
            else {"total_max_attempts": 1, "mode": "standard"}
        )
        return session.client(
            service,
            region_name=region,
            endpoint_url=endpoint_url or cfg.endpoint(region),
            config=BotoConfig(
                retries=retries,
                parameter_validation=True,
                connect_timeout=timeouts[0] if timeouts else cfg.connect_timeout,
                read_timeout=timeouts[1] if timeouts else cfg.read_timeout,
                max_pool_connections=POOL_CONNECTIONS,
            ),
        )

    # ---------------------------------------------------------------------- Kubernetes
    def kube(self, region: str) -> Any:
        """A kubernetes ApiClient for the region's cluster (a kubeconfig context, this pod's
        ServiceAccount, or an EKS cluster: `kubernetes.clusters`), its calls bounded by the
        configured timeouts."""
        return self._kube_client(region, lambda: self._new_kube(region))

    def kube_probe(self, region: str) -> Any:
        """A kubernetes ApiClient for a quick look at a region: a single attempt (urllib3
        retries a connection or a read three times by default)."""
        return self._kube_client(f"{region}~probe", lambda: self._new_kube(region, retries=False))

    def _kube_client(self, key: str, make: Callable[[], Any]) -> Any:
        """The client cached under `key`, built once (building one can take a call, EKS's
        DescribeCluster: other keys' clients are not held up meanwhile)."""
        with self._lock:
            if key in self._kube:
                return self._kube[key]
            building = self._kube_building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                if key in self._kube:
                    return self._kube[key]
            made = make()
            with self._lock:
                self._kube[key] = made
            return made

    def _new_kube(self, region: str, retries: bool = True) -> Any:
        from kubernetes import client as k8s
        from kubernetes.client import rest

        cfg = self.config.kubernetes
        timeout = (cfg.connect_timeout, cfg.read_timeout)

        class BoundedREST(rest.RESTClientObject):
            """Every request gets the configured timeouts unless it names its own."""

            def request(
                self,
                method: str,
                url: str,
                headers: Any = None,
                body: Any = None,
                post_params: Any = None,
                _request_timeout: Any = None,
            ) -> Any:
                return super().request(
                    method, url, headers=headers, body=body, post_params=post_params,
                    _request_timeout=_request_timeout or timeout,
                )  # fmt: skip

        configuration = k8s.Configuration()
        cluster = cfg.cluster(region)
        if cluster.eks is not None:
            self._configure_eks(configuration, region, cluster.eks, probe=not retries)
        elif cluster.in_cluster is not None:
            kube_auth.configure_in_cluster(configuration, region, cluster.in_cluster.token_dir)
        else:
            self._configure_context(configuration, region, cluster.context or region)
        if not retries:
            configuration.retries = False
        configuration.connection_pool_maxsize = POOL_CONNECTIONS
        api = k8s.ApiClient(configuration=configuration)
        api.rest_client = BoundedREST(configuration)
        return api

    def _configure_context(self, configuration: Any, region: str, context: str) -> None:
        """The kubeconfig context's server, CA and credentials."""
        from kubernetes import config as kube_config
        from kubernetes.config.config_exception import ConfigException

        cfg = self.config.kubernetes
        try:
            kube_config.load_kube_config(
                config_file=cfg.kubeconfig, context=context, client_configuration=configuration
            )
        except ConfigException as exc:
            where = (
                f"kubernetes.clusters.{region}"
                if region in cfg.clusters
                else (f"kubernetes.contexts.{region}" if region in cfg.contexts else "kubernetes")
            )
            first = (str(exc).strip().splitlines() or ["invalid"])[0]
            raise StepError(
                "Validation",
                f"Kubernetes in {region}: kubeconfig context {context!r}: {first} ({where})",
                retryable=False,
            ) from None

    def _configure_eks(self, configuration: Any, region: str, eks: EksCluster, probe: bool) -> None:
        """The EKS cluster's endpoint and CA (DescribeCluster, once per cluster: a probe's with
        short timeouts) and tokens signed with the worker's AWS credentials in its region."""
        eks_region = eks.region or region
        key = (eks.name, eks_region)
        with self._lock:
            described = self._eks.get(key)
        # Kubernetes clients are shared by every account's view: EKS is reached in the default
        # account (`aws.default_account`, else the worker's own credentials).
        who = self.for_account(None)
        if described is None:
            aws = self.config.aws
            client = (
                who.aws_probe("eks", eks_region, min(aws.connect_timeout, 2.0),
                              min(aws.read_timeout, 5.0))
                if probe else who.aws("eks", eks_region)
            )  # fmt: skip
            described = kube_auth.describe_eks(client, region, eks.name, eks_region)
            with self._lock:
                self._eks[key] = described
        sts = who.aws("sts", eks_region)
        tokens = kube_auth.EksTokens(
            eks.name, eks_region, str(sts.meta.endpoint_url), who._aws_keys, clock=self.clock
        )
        kube_auth.configure_eks(configuration, described[0], described[1], tokens)

    def _aws_keys(self) -> kube_auth.AwsKeys:
        """This view's AWS credentials now (refreshed by botocore when they expire)."""
        credentials = self.aws_session().get_credentials()
        if credentials is None:
            raise StepError(
                "AccessDenied", "no AWS credentials to sign EKS tokens with", retryable=False
            )
        frozen = credentials.get_frozen_credentials()
        return kube_auth.AwsKeys(frozen.access_key, frozen.secret_key, frozen.token)

    # ---------------------------------------------------------------------------- HTTP
    def endpoint(self, name: str, region: str) -> str:
        """The URL of a named endpoint in a region (from the config)."""
        from activities.errors import StepError

        urls = self.config.endpoints.get(name)
        if not urls or region not in urls:
            raise StepError(
                "Validation",
                f"no endpoint {name!r} for region {region} in the configuration",
                retryable=False,
            )
        return urls[region]

    def http(self) -> urllib.request.OpenerDirector:
        """An HTTP opener that ignores proxy settings (checks go straight to the endpoint)."""
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _import_kube_apis() -> dict[str, str]:
    """Import the kubernetes client's API classes the steps use (`KUBE_APIS`) and its dynamic
    client; what could not be imported, by name (never raises)."""
    from kubernetes import client as k8s

    failed: dict[str, str] = {}
    for name in KUBE_APIS:
        try:
            getattr(k8s, name)
        except Exception as exc:  # a client version without it: the step will say so
            failed[f"kube:{name}"] = f"{type(exc).__name__}: {exc}"
    try:
        import kubernetes.dynamic  # noqa: F401  (k8s_patch)
    except Exception as exc:
        failed["kube:dynamic"] = f"{type(exc).__name__}: {exc}"
    return failed
