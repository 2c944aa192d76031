"""Start, stop and inspect the sandbox's processes: `failover sandbox up | down | status`.

Each component runs as a background process on 127.0.0.1 with a pid file and a log under the
sandbox home (default `.failover/sandbox/`). `up` is idempotent: running components are kept,
dead ones restarted (and the AWS topology re-seeded if the AWS server was restarted). It writes
the connection file `env.json`, which the CLI and the worker read when nothing else is configured.

Each region's Kubernetes stand-in also serves a secure port (HTTPS, a certificate of the
sandbox's own CA, `kube-ca.crt` in the home): the endpoint of that region's EKS cluster, where
requests are authenticated (static, ServiceAccount and EKS tokens: `/_sandbox/auth`, which `up` and
`reset` configure with the seeded clusters' names, the sandbox's STS endpoints and AWS keys).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from orchestrator import search_attributes
from orchestrator.connection import DEFAULT_HOME, ConnectionFile, RegionEnv
from orchestrator.sandbox import INSTALL
from orchestrator.sandbox.k8s import tls
from orchestrator.sandbox.latency import LatencyModel

DEFAULT_REGIONS = ("us-east-1", "us-west-2")
DEFAULT_PORTS: dict[str, int | None] = {
    "temporal": 7233,
    "temporal-ui": 8233,
    # Pinned too (free ones): left to itself the dev server picks random ports for these,
    # which could collide with a port handed to another component.
    "temporal-http": None,
    "temporal-metrics": None,
    "aws": 5055,
    "dns": None,  # a free one (UDP and TCP)
    "notify": None,  # the notification sink (a free one)
}
TEMPORAL_PORTS = ("temporal", "temporal-ui", "temporal-http", "temporal-metrics")
#: The dev server's settings for a cluster's throughput, not one shard's. It runs ONE history
#: shard, and a shard loads the tasks it writes (a workflow task to dispatch, an activity, a
#: child to start or a parent to tell, a visibility record) at most 20 times a second: every
#: workflow task then waited 30-40 ms for the next load (50 ms an activity end to end, 12 ms
#: without the cap; `bench/engine.py`). A production cluster has hundreds of shards, each with
#: that budget, and a workflow's tasks share its shard with few others: raised to 1,000 here so
#: the sandbox's one shard is not the bottleneck no real cluster has. Timers keep the server's
#: default (they fire on the second, as in production).
TEMPORAL_DYNAMIC_CONFIG: dict[str, str] = {
    "history.transferProcessorMaxPollRPS": "1000",
    "history.visibilityProcessorMaxPollRPS": "1000",
}
START_ATTEMPTS = 3
KUBE_PORT_BASE, APP_PORT_BASE, CONTROL_PORT_BASE, AWS_PORT_BASE = 16443, 18081, 19081, 5056
KUBE_TLS_PORT_BASE = 17443
#: What env.json describes: per-region AWS endpoints, DNS, region control ports; 3: the
#: stand-ins' secure ports and the EKS clusters they serve.
ENV_VERSION = 3
#: The AWS keys the sandbox's clients sign with (`orchestrator.config.from_sandbox`): the ones
#: its STS knows, for EKS tokens; and the sandbox kubeconfig's token.
SANDBOX_AWS_KEYS = {"sandbox": "sandbox"}
SANDBOX_KUBE_TOKEN = "sandbox"
EMPTY_LOG = "(empty log)"
MARKER = "failover-sandbox"  # in every component's command line, to recognise our processes
NOTIFY_TOPIC = "failover-notifications"
NOTIFY_SECRET_ENV = "FAILOVER_NOTIFY_SECRET"  # the sink's webhook key (as notify_sink reads it)

Progress = Callable[[str], None]


class SandboxError(RuntimeError):
    """The sandbox could not be brought up or reached (message is one line, for the user)."""


class PortTaken(SandboxError):
    """A component died at start because one of its ports was taken in the meantime."""

    def __init__(self, component: str, message: str) -> None:
        super().__init__(message)
        self.component = component


class ComponentInfo(BaseModel):
    """One running component, as recorded in env.json."""

    name: str
    pid: int
    ports: dict[str, int]
    log: str
    started_at: float


class SandboxEnv(ConnectionFile):
    """The connection file as the sandbox writes it: what clients need (`ConnectionFile`) and
    the sandbox's own bookkeeping (its processes, its latency model)."""

    version: int = ENV_VERSION

    latency: LatencyModel = Field(default_factory=LatencyModel)
    components: dict[str, ComponentInfo] = Field(default_factory=dict)
    #: Each region's secure Kubernetes port (https://...), its EKS cluster's endpoint.
    kube_secure: dict[str, str] = Field(default_factory=dict)
    #: The CA (PEM file) of the secure ports' certificate.
    kube_ca: str = ""


@dataclass
class ComponentStatus:
    name: str
    state: str  # "running" | "unhealthy" | "dead" | "not started"
    pid: int | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.state == "running"


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _listening_inodes() -> dict[int, set[str]]:
    """The inodes of the TCP sockets listening, by port (/proc/net/tcp and tcp6)."""
    inodes: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A":  # LISTEN
                    inodes.setdefault(int(f[1].rsplit(":", 1)[1], 16), set()).add(f[9])
    return inodes


def listens_on(pid: int, ports: list[int]) -> bool:
    """Whether process `pid` itself listens on every one of `ports`: a free port handed out can
    be taken by another process before the component binds it (then that process, perhaps
    another sandbox's server, answers the health probe). True where /proc cannot tell."""
    if not Path("/proc/net/tcp").exists():
        return True
    fds: set[str] = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed since listed
                fds.add(os.readlink(fd))
    except OSError:  # gone
        return False
    listening = _listening_inodes()
    return all(any(f"socket:[{i}]" in fds for i in listening.get(p, ())) for p in ports)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pick(port: int | None, taken: set[int]) -> int:
    """The default port if free, else a free one; never one already handed out."""
    if port is not None and port not in taken and port_free(port):
        taken.add(port)
        return port
    while True:
        p = free_port()
        if p not in taken:
            taken.add(p)
            return p


def pid_alive(pid: int) -> bool:
    """True if pid runs and is one of ours (its command line carries the marker)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            raw = cmdline.read_bytes()
        except OSError:
            return False
        if not raw:
            # Empty for a zombie, but also for a moment while the process is in execve (after
            # Popen returned, before the kernel set the new command line): only a zombie is dead.
            return _state(pid) not in ("Z", "X", "")
        return MARKER.encode() in raw
    return True


def _state(pid: int) -> str:
    """The process state letter from /proc (R, S, Z, ...), "" if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 5.0) -> Any:
    """A small JSON-over-HTTP call to a sandbox control endpoint."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def temporal_flags() -> list[str]:
    """`temporal server start-dev` flags for TEMPORAL_DYNAMIC_CONFIG."""
    return [
        arg for key, value in TEMPORAL_DYNAMIC_CONFIG.items()
        for arg in ("--dynamic-config-value", f"{key}={value}")
    ]  # fmt: skip


def _bin(name: str) -> str:
    """A console script of this environment (venv bin/ first, then PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise SandboxError(f"'{name}' not found: {INSTALL} (python3 dev.py drill does)")
    return found


class Sandbox:
    """The sandbox under one home directory."""

    def __init__(
        self,
        home: Path | str = DEFAULT_HOME,
        regions: tuple[str, ...] = DEFAULT_REGIONS,
        latency: LatencyModel | None = None,
        free_ports: bool = False,
        watch_history: int = 5000,
        worker: bool = True,
    ) -> None:
        self.home = Path(home).resolve()
        #: Run a worker as a component (`failover worker` on the default task queue), so that
        #: schedules, game days and guards fire with nothing else started; tests that bring
        #: their own workers leave it out.
        self.worker = worker
        self.watch_history = watch_history
        self.regions = regions
        self.latency = latency or LatencyModel()
        self.free_ports = free_ports
        self._notify_secret = secrets.token_hex(16)
        #: The secure ports' CA and certificate (made by `up`).
        self._tls = tls.files(self.home)
        if len(regions) < 2 or len(set(regions)) != len(regions):
            raise SandboxError("the sandbox needs at least two distinct regions")

    @property
    def env_file(self) -> Path:
        return self.home / "env.json"

    def load_env(self) -> SandboxEnv | None:
        if not self.env_file.exists():
            return None
        return SandboxEnv.model_validate_json(self.env_file.read_text())

    # ------------------------------------------------------------------------------- up
    def up(self, progress: Progress = lambda _: None, timeout: float = 60.0) -> SandboxEnv:
        """Start what is not running, wait until healthy, seed, write env.json."""
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        previous = self.load_env()
        if previous is not None and previous.version < ENV_VERSION:
            raise SandboxError(
                f"a sandbox of an older version is up in {self.home}; "
                "run 'failover sandbox down' first"
            )
        if previous is not None and list(previous.regions) != list(self.regions):
            raise SandboxError(
                f"a sandbox with regions {', '.join(previous.regions)} is already in {self.home}; "
                "run 'failover sandbox down' first"
            )
        tls.ensure(self.home)
        ports = self._ports(previous)
        topology = previous.topology if previous else {}
        components = dict(previous.components) if previous else {}
        # The worker starts last (it needs the rest): it is checked apart from the others.
        worker = components.pop("worker", None)
        # The sink's webhook key: the sandbox's own, kept across `up`s.
        if previous is not None and previous.notify_secret:
            self._notify_secret = previous.notify_secret
        topic = previous.notify_topic_arn if previous else None
        for attempt in range(1, START_ATTEMPTS + 1):
            started = self._start_missing(ports, components, progress)
            if "aws" in started:
                topology = {}  # a new AWS server is empty: seed it
                topic = None
            env = self._env(ports, components, topology)
            env.notify_topic_arn = topic
            self._write_kubeconfig(env)
            self._write_env(env)  # written early so that `down` can stop a half-started sandbox
            try:
                self._wait_healthy(env, progress, timeout, started=set(started))
                break
            except PortTaken as clash:
                if attempt == START_ATTEMPTS:
                    raise
                progress(f"{clash.component}: {clash}; retrying on free ports")
                taken = set(ports.values())
                failed = components.pop(clash.component)
                _terminate(failed.pid, 5.0)  # if it lives after all, it must not be left behind
                for key in failed.ports:
                    ports[key] = _pick(None, taken)
        self._ensure_search_attributes(env, progress)
        if not env.topology:
            progress("seeding the shop topology (Route 53, Aurora, RDS, ELB, ASG, SSM, ARC, GA)")
            from orchestrator.sandbox.aws.seed import seed

            app_ports = {r: ports[f"app:{r}"] for r in self.regions}
            env.topology = seed(env.aws_endpoint_url, list(self.regions), app_ports)
            env.arc_clusters = _arc_clusters(env.topology)
            self._write_env(env)
        configure_kube_auth(env)
        if not env.notify_topic_arn:
            env.notify_topic_arn = _seed_notify(env, self.regions)
            self._write_env(env)
        if worker is not None and pid_alive(worker.pid):
            env.components["worker"] = worker
            self._write_env(env)
        if self.worker:
            self._ensure_worker(env, progress, timeout)
        return env

    def _ensure_worker(self, env: SandboxEnv, progress: Progress, timeout: float) -> None:
        """Start the sandbox's worker if it is not running (last: it needs Temporal, its search
        attributes and env.json), and wait until it polls."""
        current = env.components.get("worker")
        if current is not None and pid_alive(current.pid):
            return
        argv = [sys.executable, "-m", "orchestrator", "worker", "--log-format", "json",
                "--tag", MARKER]  # fmt: skip
        env.components["worker"] = self._spawn("worker", argv, {})
        self._write_env(env)
        self._wait_healthy(env, progress, timeout)

    def _ensure_search_attributes(self, env: SandboxEnv, progress: Progress) -> None:
        """Add the search attributes a Temporal database made by an older version lacks (the
        start-dev flags only apply to a new database)."""
        temporal = _bin("temporal")
        where = ["--address", env.temporal_address, "--namespace", env.temporal_namespace]

        last = {"error": ""}

        def have() -> set[str] | None:
            listed = subprocess.run(
                [temporal, "operator", "search-attribute", "list", *where, "-o", "json"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if listed.returncode != 0:  # a server still warming up (or a busy machine)
                lines = (listed.stderr or listed.stdout or "").strip().splitlines()
                last["error"] = lines[-1][:300] if lines else f"exit {listed.returncode}"
                return None
            return set(json.loads(listed.stdout or "{}").get("customAttributes", {}))

        for attempt in range(10):
            known = have()
            if known is None:
                time.sleep(0.5 * (attempt + 1))
                continue
            missing = [key.name for key in search_attributes.ALL if key.name not in known]
            if not missing:
                return
            for name in missing:
                progress(f"adding search attribute {name}")
                subprocess.run(
                    [temporal, "operator", "search-attribute", "create", *where,
                     "--name", name, "--type", "Keyword"],
                    capture_output=True,
                    timeout=30,
                )  # fmt: skip
        raise SandboxError(
            f"Temporal at {env.temporal_address} did not take the search attributes "
            f"{', '.join(k.name for k in search_attributes.ALL)}"
            + (f" (its last answer: {last['error']})" if last["error"] else "")
        )

    def _start_missing(
        self, ports: dict[str, int], components: dict[str, ComponentInfo], progress: Progress
    ) -> list[str]:
        """Spawn every planned component that is not running; returns their names."""
        started: list[str] = []
        for name, argv, cports in self._plan(ports):
            current = components.get(name)
            if current is not None and pid_alive(current.pid):
                continue
            progress(f"starting {name}")
            components[name] = self._spawn(name, argv, cports)
            started.append(name)
        return started

    def _env(
        self,
        ports: dict[str, int],
        components: dict[str, ComponentInfo],
        topology: dict[str, Any],
    ) -> SandboxEnv:
        return SandboxEnv(
            home=str(self.home),
            temporal_address=f"127.0.0.1:{ports['temporal']}",
            temporal_ui_url=f"http://127.0.0.1:{ports['temporal-ui']}",
            aws_endpoint_url=f"http://127.0.0.1:{ports['aws']}",
            aws_endpoints={r: f"http://127.0.0.1:{ports[f'aws:{r}']}" for r in self.regions},
            dns_server=f"127.0.0.1:{ports['dns']}",
            kubeconfig=str(self.home / "kubeconfig"),
            regions={
                r: RegionEnv(
                    role="active" if i == 0 else "standby",
                    kube_context=r,
                    kube_api=f"http://127.0.0.1:{ports[f'kube:{r}']}",
                    app_url=f"http://127.0.0.1:{ports[f'app:{r}']}",
                    control=f"http://127.0.0.1:{ports[f'control:{r}']}",
                )
                for i, r in enumerate(self.regions)
            },
            topology=topology,
            arc_clusters=_arc_clusters(topology),
            latency=self.latency,
            components=dict(components),
            kube_secure={r: f"https://127.0.0.1:{ports[f'kubetls:{r}']}" for r in self.regions},
            kube_ca=str(self._tls.ca),
            notify_url=f"http://127.0.0.1:{ports['notify']}",
            notify_secret=self._notify_secret,
        )

    def _ports(self, env: SandboxEnv | None) -> dict[str, int]:
        if env is not None:
            ports: dict[str, int] = {}
            for c in env.components.values():
                ports.update(c.ports)
            taken = set(ports.values())
            for key in DEFAULT_PORTS:  # a component newer than the running sandbox
                if key not in ports:
                    ports[key] = _pick(None, taken)
            return ports
        taken = set()
        wanted: dict[str, int | None] = {
            k: (None if self.free_ports else v) for k, v in DEFAULT_PORTS.items()
        }
        for i, r in enumerate(self.regions):
            wanted[f"kube:{r}"] = None if self.free_ports else KUBE_PORT_BASE + i
            wanted[f"kubetls:{r}"] = None if self.free_ports else KUBE_TLS_PORT_BASE + i
            wanted[f"app:{r}"] = None if self.free_ports else APP_PORT_BASE + i
            wanted[f"control:{r}"] = None if self.free_ports else CONTROL_PORT_BASE + i
            wanted[f"aws:{r}"] = None if self.free_ports else AWS_PORT_BASE + i
        return {k: _pick(v, taken) for k, v in wanted.items()}

    def _plan(self, ports: dict[str, int]) -> list[tuple[str, list[str], dict[str, int]]]:
        latency = self.latency.model_dump_json()
        py = sys.executable
        plan = [
            (
                "temporal",
                [
                    _bin("temporal"),
                    "server",
                    "start-dev",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(ports["temporal"]),
                    "--ui-port",
                    str(ports["temporal-ui"]),
                    "--http-port",
                    str(ports["temporal-http"]),
                    "--metrics-port",
                    str(ports["temporal-metrics"]),
                    "--db-filename",
                    str(self.home / "temporal.db"),
                    # A write-ahead log, synced at checkpoints: a commit is one append to the
                    # log instead of a journal's several fsyncs. It survives the server's
                    # death (a kill, as the crash tests do), not the machine's: a sandbox's.
                    *("--sqlite-pragma", "journal_mode=wal"),
                    *("--sqlite-pragma", "synchronous=normal"),
                    "--log-level",
                    "warn",
                    "--namespace",
                    MARKER,
                    *search_attributes.cli_flags(),
                    *temporal_flags(),
                ],
                {k: ports[k] for k in TEMPORAL_PORTS},
            ),
            (
                "aws",
                [py, "-m", "orchestrator.sandbox.aws.server", "--port", str(ports["aws"]),
                 *(a for r in self.regions for a in ("--region-port", f"{r}={ports[f'aws:{r}']}")),
                 *(a for r in self.regions
                   for a in ("--kube-endpoint", f"{r}=https://127.0.0.1:{ports[f'kubetls:{r}']}")),
                 "--kube-ca", str(self._tls.ca),
                 "--dns-port", str(ports["dns"]), "--latency", latency, "--tag", MARKER],
                {k: ports[k] for k in ("aws", "dns", *(f"aws:{r}" for r in self.regions))},
            ),
        ]  # fmt: skip
        for i, r in enumerate(self.regions):
            peer = self.regions[1] if i == 0 else self.regions[0]
            argv = [
                py, "-m", "orchestrator.sandbox.region", "--region", r, "--peer", peer,
                "--kube-port", str(ports[f"kube:{r}"]), "--app-port", str(ports[f"app:{r}"]),
                "--control-port", str(ports[f"control:{r}"]),
                "--peer-app", f"http://127.0.0.1:{ports[f'app:{peer}']}",
                *(a for o in self.regions if o != r
                  for a in ("--region-app", f"{o}=http://127.0.0.1:{ports[f'app:{o}']}")),
                "--latency", latency, "--watch-history", str(self.watch_history), "--tag", MARKER,
                "--kube-tls-port", str(ports[f"kubetls:{r}"]),
                "--tls-cert", str(self._tls.cert), "--tls-key", str(self._tls.key),
            ]  # fmt: skip
            if i == 0:
                argv.append("--active")
            region_ports = {
                f"{k}:{r}": ports[f"{k}:{r}"] for k in ("kube", "kubetls", "app", "control")
            }
            plan.append((f"region:{r}", argv, region_ports))
        plan.append(
            (
                "notify",
                [py, "-m", "orchestrator.sandbox.notify_sink", "--port", str(ports["notify"]),
                 "--tag", MARKER],
                {"notify": ports["notify"]},
            )
        )  # fmt: skip
        return plan

    def _spawn(self, name: str, argv: list[str], ports: dict[str, int]) -> ComponentInfo:
        log = self.home / "logs" / f"{name.replace(':', '-')}.log"
        env = dict(os.environ)
        if name == "notify":  # by environment, not on its command line
            env[NOTIFY_SECRET_ENV] = self._notify_secret
        if name == "worker":  # the product's worker, configured from this sandbox's env.json
            env["FAILOVER_SANDBOX_HOME"] = str(self.home)
            if log.exists():  # its health is read from its log: the previous one's set aside
                log.replace(log.with_suffix(".log.1"))
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal must not kill the sandbox
            )
        (self.home / f"{name.replace(':', '-')}.pid").write_text(str(proc.pid))
        return ComponentInfo(
            name=name, pid=proc.pid, ports=ports, log=str(log), started_at=time.time()
        )

    def _wait_healthy(
        self, env: SandboxEnv, progress: Progress, timeout: float, started: set[str] | None = None
    ) -> None:
        """Wait until every component answers; one `started` just now must also hold its
        ports itself (see `listens_on`)."""
        deadline = time.monotonic() + timeout
        pending = set(env.components)
        while pending:
            for st in self.check(env, only=pending):
                comp = env.components[st.name]
                fresh = st.name in (started or ())
                if st.ok and fresh and not listens_on(comp.pid, list(comp.ports.values())):
                    continue  # not bound yet, or another process answered in its place
                if st.ok:
                    pending.discard(st.name)
                    progress(f"{st.name} ready ({st.detail})")
                elif st.state == "dead":
                    log = env.components[st.name].log
                    tail = _tail(log)
                    message = f"{st.name} exited while starting: {tail} (log: {log})"
                    # A port taken meanwhile (Temporal may report it, then crash on it: the
                    # last lines are its panic), or a death before the first line of output
                    # (a signal): both are worth another start, on fresh ports.
                    recent = _tail(log, 80).lower()
                    if "address already in use" in recent or tail == EMPTY_LOG:
                        raise PortTaken(st.name, message)
                    raise SandboxError(message)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise SandboxError(
                    f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))} "
                    f"(logs in {self.home / 'logs'})"
                )
            time.sleep(0.2)

    def _write_env(self, env: SandboxEnv) -> None:
        tmp = self.env_file.with_suffix(".tmp")
        tmp.write_text(env.model_dump_json(indent=2))
        tmp.replace(self.env_file)

    def _write_kubeconfig(self, env: SandboxEnv) -> None:
        import yaml

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [
                {"name": r, "cluster": {"server": e.kube_api}} for r, e in env.regions.items()
            ],
            "users": [{"name": "sandbox", "user": {"token": SANDBOX_KUBE_TOKEN}}],
            "contexts": [
                {
                    "name": e.kube_context,
                    "context": {"cluster": r, "user": "sandbox", "namespace": "shop"},
                }
                for r, e in env.regions.items()
            ],
            "current-context": next(iter(env.regions)),
        }
        Path(env.kubeconfig).write_text(yaml.safe_dump(config, sort_keys=False))

    # ----------------------------------------------------------------------------- status
    def check(self, env: SandboxEnv, only: set[str] | None = None) -> list[ComponentStatus]:
        out = []
        for name, comp in env.components.items():
            if only is not None and name not in only:
                continue
            if not pid_alive(comp.pid):
                out.append(
                    ComponentStatus(name, "dead", comp.pid, f"process {comp.pid} is not running")
                )
                continue
            ok, detail = self._probe(name, comp, env)
            out.append(ComponentStatus(name, "running" if ok else "unhealthy", comp.pid, detail))
        return out

    def _probe(self, name: str, comp: ComponentInfo, env: SandboxEnv) -> tuple[bool, str]:
        try:
            if name == "temporal":
                port = comp.ports["temporal"]
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
                urllib.request.urlopen(env.temporal_ui_url, timeout=2).close()
                return True, f"{env.temporal_address}, UI {env.temporal_ui_url}"
            if name == "aws":
                http_json(f"{env.aws_endpoint_url}/_sandbox/health", timeout=2)
                return True, env.aws_endpoint_url
            if name == "notify":
                http_json(f"{env.notify_url}/_sandbox/health", timeout=2)
                return True, f"notification sink {env.notify_url}"
            if name == "worker":  # it says so once it polls
                polling = "worker on" in Path(comp.log).read_text(errors="replace")
                return polling, f"worker polling (log {comp.log})" if polling else "starting"
            region = name.split(":", 1)[1]
            r = env.regions[region]
            control = env.control_url(region)
            http_json(f"{control}/_sandbox/health", timeout=2)
            state = http_json(f"{control}/_sandbox/region", timeout=2)
            if state.get("outage") == "full":
                hang = f", calls hang {state['hang']:g}s" if state.get("hang") else ""
                return True, f"region DOWN (full outage{hang}): control {control}"
            app = "app up" if state.get("healthy") else "app DOWN (region down)"
            return True, f"kube-apiserver {r.kube_api}, {app} {r.app_url}"
        except (OSError, urllib.error.URLError, ValueError) as exc:
            return False, f"not answering: {exc}"

    def status(self) -> tuple[SandboxEnv | None, list[ComponentStatus]]:
        env = self.load_env()
        if env is None:
            return None, [ComponentStatus("sandbox", "not started", None, f"no {self.env_file}")]
        return env, self.check(env)

    def reset(self, progress: Progress = lambda _: None) -> SandboxEnv:
        """Back to the seeded state: AWS and every region reset, faults and calls cleared."""
        env = self.load_env()
        if env is None:
            raise SandboxError("the sandbox is not up: run 'failover sandbox up'")
        progress("resetting aws and regions")
        # A reset drops every resource: seconds on a loaded machine, more than a control call.
        http_json(f"{env.aws_endpoint_url}/_sandbox/reset", "POST", {}, timeout=60)
        for r in env.regions:
            http_json(f"{env.control_url(r)}/_sandbox/reset", "POST", {}, timeout=60)
        from orchestrator.sandbox.aws.seed import seed

        progress("re-seeding the shop topology")
        app_ports = {name: int(r.app_url.rsplit(":", 1)[1]) for name, r in env.regions.items()}
        env.topology = seed(env.aws_endpoint_url, list(env.regions), app_ports)
        env.arc_clusters = _arc_clusters(env.topology)
        configure_kube_auth(env)
        if env.notify_url and "notify" in env.components:
            http_json(f"{env.notify_url}/_sandbox/reset", "POST", {})
            env.notify_topic_arn = _seed_notify(env, tuple(env.regions))
        self._write_env(env)
        return env

    # ------------------------------------------------------------------------------- down
    def down(self, progress: Progress = lambda _: None, timeout: float = 10.0) -> list[str]:
        """Stop every component this sandbox started; returns their names."""
        env = self.load_env()
        stopped: list[str] = []
        pids: dict[str, int] = {}
        if env is not None:
            pids = {n: c.pid for n, c in env.components.items()}
        for pidfile in self.home.glob("*.pid"):  # also what a half-written env.json missed
            with contextlib.suppress(ValueError):
                pids.setdefault(pidfile.stem, int(pidfile.read_text().strip()))
        # The worker first: it would only complain about a Temporal that went away.
        for name, pid in sorted(pids.items(), key=lambda item: item[0] != "worker"):
            if pid_alive(pid):
                progress(f"stopping {name} (pid {pid})")
                _terminate(pid, timeout)
                stopped.append(name)
        for pidfile in self.home.glob("*.pid"):
            pidfile.unlink(missing_ok=True)
        self.env_file.unlink(missing_ok=True)
        return stopped


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        except ChildProcessError:
            if not pid_alive(pid):
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or EMPTY_LOG


def configure_kube_auth(env: SandboxEnv) -> None:
    """Tell each region's secure port who it lets in: the kubeconfig's token, and EKS tokens for
    the region's seeded cluster, signed with the sandbox's AWS keys at one of its STS endpoints
    (ServiceAccount tokens are left as they are: tests register their own)."""
    sts = [env.aws_endpoint_url, *env.aws_endpoints.values()]
    for region in env.regions:
        cluster = (env.topology.get("regions") or {}).get(region, {}).get("eks_cluster")
        http_json(
            f"{env.control_url(region)}/_sandbox/auth",
            "PUT",
            {
                "static_tokens": {SANDBOX_KUBE_TOKEN: "sandbox"},
                "eks_clusters": [cluster] if cluster else [],
                "sts_endpoints": sts,
                "aws_credentials": SANDBOX_AWS_KEYS,
            },
        )


def _seed_notify(env: SandboxEnv, regions: tuple[str, ...]) -> str | None:
    """The SNS topic notifications go to (in the last region: the one a demo switches to),
    subscribed by the sink over HTTP, so that moto delivers what is published there."""
    if not env.notify_url:
        return None
    from orchestrator.sandbox.aws.seed import client

    sns = client(env.aws_endpoint_url, "sns", regions[-1])
    arn = str(sns.create_topic(Name=NOTIFY_TOPIC)["TopicArn"])
    sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=f"{env.notify_url}/sns/sandbox-sns")
    return arn


def _arc_clusters(topology: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """The seeded ARC cluster's endpoints, for the connection file (none before seeding)."""
    arc = topology.get("arc") or {}
    if not arc.get("endpoints"):
        return {}
    return {str(arc["cluster"]): [dict(e) for e in arc["endpoints"]]}
