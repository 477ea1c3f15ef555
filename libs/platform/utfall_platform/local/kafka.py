"""A real Apache Kafka (KRaft, each node broker and controller) as plain `java -cp` processes: one node, or a
cluster of three.

The jars come from Maven Central through `deploy/local/kafka/pom.xml` and are cached by the pom's hash,
so only the first start downloads anything.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from utfall_events.topics import replication_for

from ..kafka_access import MECHANISM, ClusterAccess, KafkaAccess
from .paths import cache_dir, free_port, maven_copy_dependencies, repo_root, write_secret
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
    tmp = target.with_suffix(".tmp")
    maven_copy_dependencies(pom, tmp, "Apache Kafka's jars")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    marker.write_text("ok\n")
    return target


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


# Every principal the local cluster starts with; providers get theirs when an operator registers them.
LOCAL_PRINCIPALS = ("admin", "controller", "ingest", "measures", "contracts", "gateway", "finance")


class KafkaNode:
    """One KRaft process (broker and controller combined) of the local cluster."""

    def __init__(self, node_id: int, data_dir: Path, port: int, controller_port: int) -> None:
        self.node_id = node_id
        self.data_dir = data_dir
        self.port = port
        self.controller_port = controller_port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = data_dir / "kafka.log"
        self.config = data_dir / "server.properties"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "logs" / "meta.properties").exists()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self, java: str, libs: Path, heap: str) -> None:
        self.log_file.unlink(missing_ok=True)
        stdout = (self.data_dir / "kafka.stdout").open("ab")
        self.proc = spawn(
            [
                java,
                f"-Xms{heap}",
                f"-Xmx{heap}",
                "-XX:+UseG1GC",
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.Kafka",
                str(self.config),
            ],
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )

    def started(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"Kafka node {self.node_id} exited with {self.proc.returncode}; see {self.log_file}"
            )
        return self.log_file.exists() and "Kafka Server started" in self.log_file.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=30)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL, for fault-injection tests."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def pause(self) -> None:
        """SIGSTOP: the node stays a member of nothing until `resume` (its sessions time out meanwhile)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def quorum_state(self) -> tuple[int, int] | None:
        """(leader epoch, leader id) of the controller quorum as this node last wrote it, if it knows one."""
        path = self.data_dir / "logs" / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        leader = state.get("leaderId", -1)
        return (int(state.get("leaderEpoch", -1)), int(leader)) if leader >= 0 else None


class LocalKafka:
    """A local Kafka of one node, or a cluster of `nodes` (three KRaft voters, each broker and controller).

    Clients authenticate with SASL/SCRAM-SHA-512 and are authorised by ACLs (KRaft's StandardAuthorizer);
    `admin` is the only super user besides the controllers' own (PLAIN) principal. Passwords are generated once
    per data folder and kept in `credentials.json` there, readable by its owner only. On a cluster the internal
    topics get three replicas with two in sync, as every Utfall topic does (`utfall_events.topics.replication_for`).
    """

    def __init__(self, data_dir: Path, port: int | None = None, heap: str = "768m", nodes: int = 1) -> None:
        if nodes < 1:
            raise ValueError("a Kafka cluster has at least one node")
        self.data_dir = data_dir
        self.heap = heap
        first = port or free_port()
        self.nodes = [
            KafkaNode(
                i + 1,
                data_dir if nodes == 1 else data_dir / f"node-{i + 1}",
                first if i == 0 else (first + i if port else free_port()),
                free_port(),
            )
            for i in range(nodes)
        ]

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def log_file(self) -> Path:
        return self.nodes[0].log_file

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    def passwords(self) -> dict[str, str]:
        if self.credentials_file.exists():
            return dict(json.loads(self.credentials_file.read_text()))
        if any(node.formatted for node in self.nodes):
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

    def _quorum(self) -> list[str]:
        if len(self.nodes) == 1:
            return [f"controller.quorum.bootstrap.servers=127.0.0.1:{self.nodes[0].controller_port}"]
        # A static quorum of every node: the cluster keeps a controller while two of three are up.
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        return [f"controller.quorum.voters={voters}"]

    def _write_config(self, node: KafkaNode, passwords: dict[str, str]) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        controller = passwords["controller"]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        replication = replication_for(len(self.nodes))
        factor, in_sync = replication.factor, replication.min_insync
        write_secret(
            node.config,
            "\n".join(
                [
                    "process.roles=broker,controller",
                    f"node.id={node.node_id}",
                    *self._quorum(),
                    f"listeners=SASL_PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                    f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{node.port}",
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
                    f"log.dirs={node.data_dir / 'logs'}",
                    "num.partitions=6",
                    f"default.replication.factor={factor}",
                    f"min.insync.replicas={in_sync}",
                    "unclean.leader.election.enable=false",
                    f"offsets.topic.replication.factor={factor}",
                    "offsets.topic.num.partitions=3",
                    f"transaction.state.log.replication.factor={factor}",
                    f"transaction.state.log.min.isr={in_sync}",
                    "transaction.state.log.num.partitions=3",
                    f"share.coordinator.state.topic.replication.factor={factor}",
                    f"share.coordinator.state.topic.min.isr={in_sync}",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms=5000",
                    "",
                ]
            ),
        )
        (node.data_dir / "log4j2.properties").write_text(LOG4J2.format(log_file=node.log_file))

    def _format(
        self, node: KafkaNode, java: str, libs: Path, cluster_id: str, passwords: dict[str, str]
    ) -> None:
        quorum = ["--standalone"] if len(self.nodes) == 1 else []
        subprocess.run(
            [
                java,
                f"-Dlog4j2.configurationFile={node.data_dir / 'log4j2.properties'}",
                "-cp",
                f"{libs}/*",
                "kafka.tools.StorageTool",
                "format",
                *quorum,
                f"--cluster-id={cluster_id}",  # an id may start with '-': never a separate argument
                f"--config={node.config}",
                # The administrator exists from the first start on; it creates every other principal.
                f"--add-scram={MECHANISM}=[name=admin,password={passwords['admin']}]",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self, timeout: float = 90.0) -> str:
        libs = fetch_jars()
        passwords = self.passwords()
        java = shutil.which("java") or "java"
        cluster_id = _cluster_id()
        for node in self.nodes:
            self._write_config(node, passwords)
            if not node.formatted:
                self._format(node, java, libs, cluster_id, passwords)
        for node in self.nodes:  # all at once: a node of a cluster waits for a quorum before it starts
            node.spawn(java, libs, self.heap)
        try:
            self.wait_started(self.nodes, timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def wait_started(self, nodes: list[KafkaNode], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(node.started() for node in nodes):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka did not start within {timeout}s; see {nodes[0].log_file}")
            time.sleep(0.2)

    def start_node(self, node: KafkaNode, timeout: float = 90.0) -> None:
        """Start one node again (after `kill`, `stop`) with the configuration it had."""
        node.spawn(shutil.which("java") or "java", fetch_jars(), self.heap)
        self.wait_started([node], timeout)

    def active_controller(self) -> KafkaNode:
        """The node leading the controller quorum, as the running nodes last recorded it."""
        known = [state for node in self.nodes if node.running and (state := node.quorum_state())]
        if not known:
            raise RuntimeError("no running node knows a quorum leader")
        _, leader = max(known)
        return next(node for node in self.nodes if node.node_id == leader)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def stop(self) -> None:
        """All nodes at once: stopped one by one, the last two would each wait out a controlled shutdown that
        cannot complete once the quorum is gone."""
        for node in self.nodes:
            if node.running:
                assert node.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        """SIGKILL every node, for fault-injection tests."""
        for node in self.nodes:
            node.kill()


def local_admin(bootstrap: str) -> KafkaAccess | None:
    """The administrator of the local stack's Kafka (`make run`), if there is one on this machine."""
    from .paths import state_dir

    for folder in ("kafka", "kafka-cluster"):
        credentials = state_dir() / "local" / folder / "credentials.json"
        if credentials.exists():
            return KafkaAccess(bootstrap, "admin", json.loads(credentials.read_text())["admin"])
    return None


def main() -> None:
    """`python -m utfall_platform.local.kafka fetch`: download the jars only (used by .ci/run)."""
    if sys.argv[1:] == ["fetch"]:
        print(fetch_jars())
        return
    raise SystemExit("usage: python -m utfall_platform.local.kafka fetch")


if __name__ == "__main__":
    main()
