"""A real single-node Apache Kafka (KRaft, combined broker+controller) as a plain `java -cp` process.

The jars come from Maven Central through `deploy/local/kafka/pom.xml` and are cached by the pom's hash,
so only the first start downloads anything.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ..kafka_access import MECHANISM, ClusterAccess, KafkaAccess
from .paths import cache_dir, free_port, repo_root, write_secret
from .procs import spawn, terminate

log = logging.getLogger(__name__)

LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
"""


def pom_path() -> Path:
    return repo_root() / "deploy" / "local" / "kafka" / "pom.xml"


def fetch_jars() -> Path:
    """Copy Kafka and its runtime dependencies into a cache folder keyed by the pom's hash."""
    pom = pom_path()
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"kafka-libs-{digest}"
    marker = target / ".complete"
    if marker.exists():
        return target
    if shutil.which("mvn") is None:
        raise RuntimeError("Maven (mvn) is needed to fetch Kafka from Maven Central")
    tmp = target.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"fetching Apache Kafka jars from Maven Central into {target} ...", file=sys.stderr, flush=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ],
        check=True,
    )
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    marker.write_text("ok\n")
    return target


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


# Every principal the local cluster starts with; providers get theirs when an operator registers them.
LOCAL_PRINCIPALS = ("admin", "controller", "ingest", "measures", "contracts", "gateway", "finance")


class LocalKafka:
    """Clients authenticate with SASL/SCRAM-SHA-512 and are authorised by ACLs (KRaft's StandardAuthorizer);
    `admin` is the only super user besides the controller's own (PLAIN) principal. Passwords are generated once
    per data folder and kept in `credentials.json` there, readable by its owner only."""

    def __init__(self, data_dir: Path, port: int | None = None, heap: str = "768m") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = data_dir / "kafka.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    def passwords(self) -> dict[str, str]:
        if self.credentials_file.exists():
            return dict(json.loads(self.credentials_file.read_text()))
        if (self.data_dir / "logs" / "meta.properties").exists():
            raise RuntimeError(
                f"the Kafka data in {self.data_dir} predates authentication; delete the local state "
                "(make clean, or utfall-local run --fresh) to start with credentials"
            )
        from ..kafka_acl import new_password

        self.data_dir.mkdir(parents=True, exist_ok=True)
        passwords = {name: new_password() for name in LOCAL_PRINCIPALS}
        write_secret(self.credentials_file, json.dumps(passwords, indent=2))
        return passwords

    @property
    def cluster(self) -> ClusterAccess:
        passwords = self.passwords()
        admin = KafkaAccess(self.bootstrap, "admin", passwords["admin"])
        services = {k: v for k, v in passwords.items() if k not in ("admin", "controller")}
        return ClusterAccess(admin, services)

    def _write_config(self, passwords: dict[str, str]) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        controller = passwords["controller"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        write_secret(
            config,
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
                    "inter.broker.listener.name=SASL_PLAINTEXT",
                    # Clients and the broker itself: SCRAM, whose credentials live in the cluster metadata.
                    f"sasl.enabled.mechanisms={MECHANISM}",
                    f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
                    f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config={scram} required "
                    f'username="admin" password="{passwords["admin"]}";',
                    # The controller listener cannot use SCRAM (it serves the metadata SCRAM is stored in): PLAIN.
                    "sasl.mechanism.controller.protocol=PLAIN",
                    "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
                    f"listener.name.controller.plain.sasl.jaas.config={plain} required "
                    f'username="controller" password="{controller}" user_controller="{controller}";',
                    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                    "super.users=User:admin;User:controller",
                    "allow.everyone.if.no.acl.found=false",
                    f"log.dirs={self.data_dir / 'logs'}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=3",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms=5000",
                    "",
                ]
            ),
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2.format(log_file=self.log_file))
        return config

    def start(self, timeout: float = 90.0) -> str:
        libs = fetch_jars()
        passwords = self.passwords()
        config = self._write_config(passwords)
        java = shutil.which("java") or "java"
        classpath = f"{libs}/*"
        log4j = f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            subprocess.run(
                [
                    java,
                    log4j,
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    f"--cluster-id={_cluster_id()}",  # an id may start with '-': never a separate argument
                    f"--config={config}",
                    # The administrator exists from the first start on; it creates every other principal.
                    f"--add-scram={MECHANISM}=[name=admin,password={passwords['admin']}]",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self.log_file.unlink(missing_ok=True)
        stdout = (self.data_dir / "kafka.stdout").open("ab")
        self.proc = spawn(
            [
                java,
                f"-Xms{self.heap}",
                f"-Xmx{self.heap}",
                "-XX:+UseG1GC",
                log4j,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {self.proc.returncode}; see {self.log_file}")
            if self.log_file.exists() and "Kafka Server started" in self.log_file.read_text(errors="replace"):
                return self.bootstrap
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"Kafka did not start within {timeout}s; see {self.log_file}")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=30)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait()
        self.proc = None


def local_admin(bootstrap: str) -> KafkaAccess | None:
    """The administrator of the local stack's Kafka (`make run`), if there is one on this machine."""
    from .paths import state_dir

    credentials = state_dir() / "local" / "kafka" / "credentials.json"
    if not credentials.exists():
        return None
    return KafkaAccess(bootstrap, "admin", json.loads(credentials.read_text())["admin"])


def main() -> None:
    """`python -m utfall_platform.local.kafka fetch`: download the jars only (used by .ci/run)."""
    if sys.argv[1:] == ["fetch"]:
        print(fetch_jars())
        return
    raise SystemExit("usage: python -m utfall_platform.local.kafka fetch")


if __name__ == "__main__":
    main()
