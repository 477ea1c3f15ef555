"""The whole stack on one machine, no Docker engine: a real Apache Kafka (KRaft) and PostgreSQL, the four
services as processes, and the demo provider. `make run` runs `utfall-local run`; end-to-end tests use
LocalStack directly (random ports, throwaway data)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..kafka_access import ClusterAccess, KafkaAccess
from .kafka import LocalKafka
from .keycloak import DEMO_PASSWORD, DEMO_USERS, LocalKeycloak
from .paths import free_port, state_dir, write_secret
from .postgres import GATEWAY_ROLE, STANDBY_MODES, LocalPostgres, LocalPostgresPair
from .procs import spawn, terminate

SERVICES = ("ingest", "measures", "contracts", "gateway")
DEFAULT_PORTS = {"gateway": 8080, "ingest": 8081, "measures": 8082, "contracts": 8083}
COLOURS = {"ingest": "36", "measures": "35", "contracts": "33", "gateway": "32", "demo": "34", "kafka": "90"}
DEMO_PROVIDERS = (
    "hvb-eken",
    "hvb-bjorken",
    "hvb-granen",
    "hvb-linden",
    "familjehem-vast",
    "familjehem-norr",
    "stodboende-vast",
    "stodboende-syd",
    "sis-ljungen",
    "oppenvard-mitt",
)


def _pump(
    name: str, stream: IO[bytes], sink: IO[str] | None, colour: bool, recent: deque[str] | None = None
) -> None:
    prefix = f"\x1b[{COLOURS.get(name, '0')}m{name:>9} |\x1b[0m " if colour else f"{name:>9} | "
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        # The client library's reconnect chatter would push the lines that explain an exit out of the tail.
        if recent is not None and " aiokafka" not in line:
            recent.append(line.rstrip())
        if sink is not None:
            sink.write(prefix + line)
            sink.flush()


@dataclass
class ServiceProcess:
    name: str  # `measures`, or `measures-2` for a second replica
    port: int
    kind: str = ""  # the service it runs (its module, Kafka principal and consumer groups): `measures`
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    def __post_init__(self) -> None:
        self.kind = self.kind or self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class LocalStack:
    def __init__(
        self,
        base: Path,
        *,
        kafka_port: int | None = None,
        postgres_port: int | None = None,
        ports: dict[str, int] | None = None,
        durable: bool = True,
        log_sink: IO[str] | None = sys.stdout,
        colour: bool = False,
        extra_env: dict[str, str] | None = None,
        kafka: ClusterAccess | None = None,
        database_url: str | None = None,
        gateway_database_url: str | None = None,
        postgres_settings: Sequence[str] = (),
        kafka_brokers: int = 1,
        postgres_standby: str | None = None,
    ) -> None:
        self.base = base
        self.kafka = (
            None
            if kafka
            else LocalKafka(
                base / ("kafka" if kafka_brokers == 1 else "kafka-cluster"),
                port=kafka_port,
                nodes=kafka_brokers,
            )
        )
        self.postgres: LocalPostgres | LocalPostgresPair | None = None
        if database_url:
            pass
        elif postgres_standby:
            self.postgres = LocalPostgresPair(
                base / "postgres-pair",
                postgres_standby,
                port=postgres_port,
                durable=durable,
                settings=postgres_settings,
            )
        else:
            self.postgres = LocalPostgres(
                base / "postgres", port=postgres_port, durable=durable, settings=postgres_settings
            )
        self._cluster = kafka
        self._database_url = database_url
        self._gateway_database_url = gateway_database_url
        ports = ports or {name: free_port() for name in SERVICES}
        self.services = {name: ServiceProcess(name, ports[name]) for name in SERVICES}
        self.log_sink = log_sink
        self.colour = colour
        self.extra_env = extra_env or {}
        self.threads: list[threading.Thread] = []
        self.others: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def cluster(self) -> ClusterAccess:
        if self._cluster is None:
            assert self.kafka is not None
            self._cluster = self.kafka.cluster
        return self._cluster

    @property
    def admin(self) -> KafkaAccess:
        """The operator's access (a super user): the local stack's own tools and `utfall-admin` use it."""
        return self.cluster.admin

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def database_url(self) -> str:
        return self._database_url or (self.postgres.dsn() if self.postgres else "")

    @property
    def gateway_database_url(self) -> str:
        if self._gateway_database_url:
            return self._gateway_database_url
        if self.postgres is not None:
            return self.postgres.dsn(GATEWAY_ROLE)
        return os.environ.get("UTFALL_GATEWAY_DATABASE_URL", self.database_url)

    def start_infrastructure(self) -> None:
        if self.postgres is not None:
            self.postgres.start()
        if self.kafka is not None:
            self.kafka.start()
            from ..kafka_acl import KafkaProvisioner

            asyncio.run(KafkaProvisioner(self.admin).provision_services(self.cluster.passwords))

    def add_replica(self, kind: str) -> str:
        """Another process of a service (`ingest-2`, …): the same principal and consumer groups, its own port.
        Start it with `start_service(<the name returned>)`."""
        count = sum(1 for s in self.services.values() if s.kind == kind)
        name = f"{kind}-{count + 1}"
        self.services[name] = ServiceProcess(name, free_port(), kind)
        return name

    def service_env(self, name: str) -> dict[str, str]:
        kind = self.services[name].kind
        env = dict(os.environ)
        env.update(self.cluster.principal(kind).env())
        env.update(
            {
                "UTFALL_DATABASE_URL": self.database_url,
                "UTFALL_GATEWAY_DATABASE_URL": self.gateway_database_url,
                "UTFALL_PORT": str(self.services[name].port),
                "UTFALL_HOST": "127.0.0.1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if kind == "gateway":  # the providers' pages send uploaded sheets to ingest
            env["UTFALL_INGEST_URL"] = self.services["ingest"].url
        if kind == "ingest" and "UTFALL_PERSON_ID_KEYS" not in os.environ:
            env["UTFALL_PERSON_ID_KEYS"] = self.person_id_keys()
        env.update(self.extra_env)
        return env

    def person_id_keys(self) -> str:
        """Ingest's private keys for sealed personnummer, made once and kept owner-only in the state folder
        (every ingest process of this stack opens what providers sealed to any of them)."""
        path = self.base / "person-id-keys.json"
        if not path.exists():
            from utfall_events.sealed import new_key_set

            self.base.mkdir(parents=True, exist_ok=True)
            write_secret(path, json.dumps(new_key_set(f"local-{int(time.time())}")))
        return path.read_text()

    def start_service(self, name: str) -> ServiceProcess:
        svc = self.services[name]
        svc.env = self.service_env(name)
        svc.proc = spawn(
            [sys.executable, "-m", f"utfall_{svc.kind}.app"],
            env=svc.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        svc.recent.clear()
        self._follow(name, svc.proc, svc.recent)
        return svc

    def _follow(self, name: str, proc: subprocess.Popen[bytes], recent: deque[str] | None = None) -> None:
        assert proc.stdout is not None
        thread = threading.Thread(
            target=_pump, args=(name, proc.stdout, self.log_sink, self.colour, recent), daemon=True
        )
        thread.start()
        self.threads.append(thread)

    def wait_ready(self, names: tuple[str, ...] = SERVICES, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            svc = self.services[name]
            while True:
                if svc.proc is not None and svc.proc.poll() is not None:
                    time.sleep(0.5)  # let the pump thread read the last lines the process wrote
                    tail = "\n".join(svc.recent)
                    raise RuntimeError(f"{name} exited with {svc.proc.returncode}; its last lines:\n{tail}")
                try:
                    with urllib.request.urlopen(f"{svc.url}/ready", timeout=2) as response:  # noqa: S310
                        # the answer must come from this service: another process on the port is not it
                        if response.status == 200 and _answered_by(response.read()) == svc.kind:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout}s")
                time.sleep(0.2)

    def start(self, services: tuple[str, ...] = SERVICES) -> None:
        self.start_infrastructure()
        for name in services:
            self.start_service(name)
        self.wait_ready(services)

    def kill(self, name: str) -> None:
        """SIGKILL a service, mid-whatever it is doing."""
        svc = self.services[name]
        if svc.proc is not None and svc.proc.poll() is None:
            os.killpg(svc.proc.pid, signal.SIGKILL)
            svc.proc.wait()

    def restart(self, name: str) -> None:
        self.stop_service(name)
        self.start_service(name)
        self.wait_ready((name,))

    def stop_service(self, name: str) -> None:
        svc = self.services[name]
        if svc.proc is not None:
            terminate(svc.proc)
            svc.proc = None

    def run_other(
        self, name: str, args: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = spawn(
            args, env=env or self.service_env("gateway"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._follow(name, proc)
        self.others[name] = proc
        return proc

    def stop(self) -> None:
        for proc in self.others.values():
            terminate(proc)
        for name in reversed(list(self.services)):
            self.stop_service(name)
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _answered_by(body: bytes) -> str | None:
    try:
        service = json.loads(body).get("service")
    except (ValueError, AttributeError):
        return None
    return service if isinstance(service, str) else None


def _demo_keys(stack: LocalStack, path: Path) -> dict[str, object]:
    """Keys for the demo: one per demo provider, an operator, a municipality, a finance and an assessor key. Kept in the
    state folder, so a restarted `make run` reuses them (they live on the auth.keys.v1 topic)."""
    from ..apikeys import generate_key, publish_keys
    from ..clock import SystemClock

    now = SystemClock().now()
    register_name = "register_socialtjanstens-register"  # utfall_synthetic.registers.DEMO_REGISTER
    if path.exists():
        kept = dict(json.loads(path.read_text()))
        if register_name not in kept:  # a state folder from before register holders: add the demo's
            register = generate_key(
                "register",
                now=now,
                register_id=register_name.removeprefix("register_"),
                label="demo register",
            )
            asyncio.run(publish_keys(stack.admin, [register.record]))
            kept[register_name] = register.secret
            write_secret(path, json.dumps(kept, indent=2))
        return kept
    providers = {p: generate_key("provider", now=now, provider_id=p, label="demo") for p in DEMO_PROVIDERS}
    operator = generate_key("operator", now=now, label="demo operator")
    municipality = generate_key("municipality", now=now, municipality_code="0180", label="Stockholms stad")
    finance = generate_key("finance", now=now, funder="stiftelsen-sociala-investeringar", label="demo funder")
    assessor = generate_key(
        "assessor", now=now, contract_ids=["hvb-ungdom-stockholm"], label="demo independent assessor"
    )
    register = generate_key(
        "register", now=now, register_id=register_name.removeprefix("register_"), label="demo register"
    )
    records = [k.record for k in (*providers.values(), operator, municipality, finance, assessor, register)]
    asyncio.run(publish_keys(stack.admin, records))
    keys: dict[str, object] = {
        "providers": {p: k.secret for p, k in providers.items()},
        "operator": operator.secret,
        "municipality_0180": municipality.secret,
        "finance_stiftelsen-sociala-investeringar": finance.secret,
        "assessor_hvb-ungdom-stockholm": assessor.secret,
        register_name: register.secret,
    }
    write_secret(path, json.dumps(keys, indent=2))
    return keys


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="utfall-local run")
    parser.add_argument("--fresh", action="store_true", help="delete the local state first")
    args = parser.parse_args(argv)
    base = state_dir() / "local"
    if args.fresh:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    started = time.monotonic()
    env_port = {
        name: int(os.environ.get(f"UTFALL_{name.upper()}_PORT", DEFAULT_PORTS[name])) for name in SERVICES
    }
    brokers = int(os.environ.get("UTFALL_KAFKA_BROKERS", "1"))
    standby = os.environ.get("UTFALL_POSTGRES_STANDBY") or None
    if brokers not in (1, 3) or standby not in (None, *STANDBY_MODES):
        raise SystemExit("UTFALL_KAFKA_BROKERS is 1 or 3; UTFALL_POSTGRES_STANDBY is empty, async or sync")
    stack = LocalStack(
        base,
        kafka_port=int(os.environ.get("UTFALL_KAFKA_PORT", 9092)),
        postgres_port=int(os.environ.get("UTFALL_POSTGRES_PORT", 5433)),
        ports=env_port,
        colour=sys.stdout.isatty(),
        kafka_brokers=brokers,
        postgres_standby=standby,
    )
    stop = threading.Event()
    keycloak: LocalKeycloak | None = None

    def on_signal(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print(
            f"starting PostgreSQL ({f'with a {standby} standby' if standby else 'one server'}) and Apache Kafka "
            f"(KRaft, {brokers} {'node' if brokers == 1 else 'nodes'}) ...",
            flush=True,
        )
        stack.start_infrastructure()
        where = stack.kafka.credentials_file if stack.kafka else "UTFALL_KAFKA_*"
        print(f"  kafka     {stack.bootstrap} (SASL/SCRAM-SHA-512; principals in {where})", flush=True)
        print(f"  postgres  {stack.database_url}", flush=True)
        gateway_port = stack.services["gateway"].port
        keycloak = LocalKeycloak(
            base / "keycloak",
            int(os.environ.get("UTFALL_KEYCLOAK_PORT", 8180)),
            gateway_urls=(f"http://127.0.0.1:{gateway_port}", f"http://localhost:{gateway_port}"),
        )
        print("starting Keycloak (the demo people's identity provider) ...", flush=True)
        keycloak.start()
        stack.extra_env.update(keycloak.gateway_env())
        print(f"  keycloak  {keycloak.issuer} (admin console {keycloak.url}/admin, user admin)", flush=True)
        for name in SERVICES:
            stack.start_service(name)
        stack.wait_ready()
        # The local operator registers the demo providers before anyone may send as them.
        kafka_credentials = base / "demo-provider-kafka.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "utfall_synthetic.cli",
                "register",
                "--kafka-credentials",
                str(kafka_credentials),
            ],
            env={**os.environ, **stack.admin.env()},
            check=True,
        )
        keys = _demo_keys(stack, base / "demo-keys.json")
        provider_keys_file = base / "demo-provider-keys.json"
        write_secret(provider_keys_file, json.dumps(keys["providers"]))
        if os.environ.get("UTFALL_DEMO", "1") != "0":
            stack.run_other(
                "demo",
                [
                    sys.executable,
                    "-m",
                    "utfall_synthetic.cli",
                    "demo",
                    "--url",
                    stack.services["ingest"].url,
                    "--keys",
                    str(provider_keys_file),
                    "--kafka-credentials",
                    str(kafka_credentials),
                    "--gateway",
                    stack.services["gateway"].url,
                    "--operator-keys",
                    str(base / "demo-keys.json"),
                ],
            )
        print(
            "\nUtfall is running (started in {:.1f}s):\n"
            "  public comparison page   {}/\n"
            "  gateway API docs         {}/docs   (OpenAPI: {}/openapi.json)\n"
            "  ingest (POST /v1/events) {}/docs\n"
            "  measures, contracts      {}/ready, {}/ready\n"
            "  metrics                  /metrics on every service; `make run-observability` starts Prometheus\n"
            "  demo keys                {} (operator key: {})\n"
            "  people                   sign in at {}/signin as {} (password {!r})\n"
            "Ctrl-C stops everything.\n".format(
                time.monotonic() - started,
                stack.services["gateway"].url,
                stack.services["gateway"].url,
                stack.services["gateway"].url,
                stack.services["ingest"].url,
                stack.services["measures"].url,
                stack.services["contracts"].url,
                base / "demo-keys.json",
                keys["operator"],
                stack.services["gateway"].url,
                ", ".join(f"{user} ({what})" for user, what in DEMO_USERS.items()),
                DEMO_PASSWORD,
            ),
            flush=True,
        )
        while not stop.is_set():
            for name, svc in stack.services.items():
                if svc.proc is not None and svc.proc.poll() is not None:
                    print(f"{name} exited ({svc.proc.returncode}); restarting", flush=True)
                    stack.start_service(name)
            stop.wait(1.0)
    finally:
        print("\nstopping ...", flush=True)
        stack.stop()
        if keycloak is not None:
            keycloak.stop()
        print("stopped.", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "fetch":
        from .kafka import fetch_jars

        print(fetch_jars())
    else:
        raise SystemExit("usage: utfall-local run [--fresh] | utfall-local fetch")


if __name__ == "__main__":
    main()
