"""Writes the provisioned Grafana dashboards (JSON) from the panel lists below: `python build_dashboards.py`.

Every PromQL expression here is evaluated against a real Prometheus scraping the running stack in
tests/e2e/test_observability.py; an expression that errors or returns no series fails the build.
"""

from __future__ import annotations

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "prometheus"}
HERE = Path(__file__).parent / "dashboards"

Panel = tuple[str, str, list[tuple[str, str]]]  # title, type, [(expr, legend)]


def dashboard(uid: str, title: str, panels: list[Panel], tags: list[str]) -> dict[str, object]:
    out = []
    for index, (panel_title, kind, targets) in enumerate(panels):
        width = 8 if kind == "stat" else 12
        out.append(
            {
                "id": index + 1,
                "type": kind,
                "title": panel_title,
                "datasource": DS,
                "gridPos": {"h": 8, "w": width, "x": (index % 2) * 12, "y": (index // 2) * 8},
                "targets": [
                    {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(targets)
                ],
                "fieldConfig": {"defaults": {}, "overrides": []},
                "options": {},
            }
        )
    return {
        "uid": uid,
        "title": title,
        "tags": ["utfall", *tags],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "panels": out,
        "templating": {"list": []},
        "annotations": {"list": []},
    }


def p(q: float, metric: str, by: str, where: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) (rate({metric}_bucket{where}[1m])))"


OVERVIEW: list[Panel] = [
    ("Services up", "stat", [('up{job="utfall"}', "{{service}}")]),
    (
        "Care events received per second, by outcome",
        "timeseries",
        [("sum by (outcome) (rate(utfall_ingest_events_total[1m]))", "{{outcome}}")],
    ),
    (
        "Consumer lag (records)",
        "timeseries",
        [("sum by (service, topic) (utfall_consumer_lag)", "{{service}} {{topic}}")],
    ),
    (
        "Event to read model, p95 (s)",
        "timeseries",
        [(p(0.95, "utfall_event_to_read_model_seconds", "service"), "{{service}}")],
    ),
    ("Outbox backlog (rows)", "timeseries", [("sum by (schema) (utfall_outbox_backlog)", "{{schema}}")]),
    (
        "Payments per 5 minutes",
        "timeseries",
        [("sum by (contract, kind) (increase(utfall_payments_total[5m]))", "{{contract}} {{kind}}")],
    ),
    (
        "Gateway latency p95 (s)",
        "timeseries",
        [(p(0.95, "utfall_http_request_seconds", "", '{service="gateway"}'), "p95")],
    ),
    (
        "Dead letters per second",
        "timeseries",
        [
            (
                "sum by (service, reason) (rate(utfall_dead_letters_total[5m])) or vector(0)",
                "{{service}} {{reason}}",
            )
        ],
    ),
]

INGEST: list[Panel] = [
    (
        "Events by type and outcome (per second)",
        "timeseries",
        [
            (
                "sum by (type, outcome, channel) (rate(utfall_ingest_events_total[1m]))",
                "{{channel}} {{type}} {{outcome}}",
            )
        ],
    ),
    (
        "Rejections by reason (5 min)",
        "timeseries",
        [("sum by (code) (increase(utfall_ingest_rejection_reasons_total[5m])) or vector(0)", "{{code}}")],
    ),
    (
        "POST /v1/events latency (s)",
        "timeseries",
        [
            (p(0.5, "utfall_http_request_seconds", "", '{service="ingest", route="/v1/events"}'), "p50"),
            (p(0.99, "utfall_http_request_seconds", "", '{service="ingest", route="/v1/events"}'), "p99"),
        ],
    ),
    (
        "Raw topic consumer lag",
        "timeseries",
        [('sum by (partition) (utfall_consumer_lag{service="ingest"})', "partition {{partition}}")],
    ),
    (
        "Outbox backlog and oldest unsent (s)",
        "timeseries",
        [
            ('utfall_outbox_backlog{schema="ingest"}', "rows"),
            ('utfall_outbox_oldest_unsent_age_seconds{schema="ingest"}', "oldest (s)"),
        ],
    ),
    (
        "Published per second",
        "timeseries",
        [('sum by (topic) (rate(utfall_outbox_published_total{schema="ingest"}[1m]))', "{{topic}}")],
    ),
]

MEASURES: list[Panel] = [
    (
        "Care events projected per second",
        "timeseries",
        [('sum(rate(utfall_messages_consumed_total{service="measures"}[1m]))', "events/s")],
    ),
    (
        "Batch handling time p95 (s)",
        "timeseries",
        [(p(0.95, "utfall_handler_seconds", "", '{service="measures"}'), "p95")],
    ),
    (
        "Lag per partition",
        "timeseries",
        [('sum by (partition) (utfall_consumer_lag{service="measures"})', "partition {{partition}}")],
    ),
    (
        "Event to read model (s)",
        "timeseries",
        [
            (p(0.5, "utfall_event_to_read_model_seconds", "", '{service="measures"}'), "p50"),
            (p(0.99, "utfall_event_to_read_model_seconds", "", '{service="measures"}'), "p99"),
        ],
    ),
    (
        "Outcome facts by measure and status",
        "timeseries",
        [("sum by (measure, status) (utfall_outcome_facts)", "{{measure}} {{status}}")],
    ),
    (
        "Outcome facts published per 5 minutes",
        "timeseries",
        [("sum by (status) (increase(utfall_outcome_fact_changes_total[5m]))", "{{status}}")],
    ),
    (
        "Data errors set aside",
        "timeseries",
        [("sum by (error) (utfall_measures_data_errors) or vector(0)", "{{error}}")],
    ),
    (
        "Outbox oldest unsent (s)",
        "timeseries",
        [('utfall_outbox_oldest_unsent_age_seconds{schema="measures"}', "age")],
    ),
]

CONTRACTS: list[Panel] = [
    (
        "Records consumed per second",
        "timeseries",
        [('sum by (topic) (rate(utfall_messages_consumed_total{service="contracts"}[1m]))', "{{topic}}")],
    ),
    (
        "Batch handling time p95 (s)",
        "timeseries",
        [(p(0.95, "utfall_handler_seconds", "topic", '{service="contracts"}'), "{{topic}}")],
    ),
    (
        "Lag by topic",
        "timeseries",
        [('sum by (topic) (utfall_consumer_lag{service="contracts"})', "{{topic}}")],
    ),
    (
        "Redelivered records skipped (5 min)",
        "timeseries",
        [("sum by (topic) (increase(utfall_messages_redelivered_total[5m])) or vector(0)", "{{topic}}")],
    ),
    ("Outbox backlog", "timeseries", [('utfall_outbox_backlog{schema="contracts"}', "rows")]),
]

PAYMENTS: list[Panel] = [
    (
        "Paid net per contract (kr)",
        "timeseries",
        [("sum by (contract) (utfall_contract_paid_net_ore) / 100", "{{contract}}")],
    ),
    (
        "Cap utilisation",
        "timeseries",
        [("max by (contract) (utfall_contract_cap_utilisation_ratio)", "{{contract}}")],
    ),
    (
        "Payments triggered and reversed (5 min)",
        "timeseries",
        [("sum by (contract, kind) (increase(utfall_payments_total[5m]))", "{{contract}} {{kind}}")],
    ),
    (
        "Amounts (kr per 5 min)",
        "timeseries",
        [
            (
                "sum by (contract, kind) (increase(utfall_payment_amount_ore_total[5m])) / 100",
                "{{contract}} {{kind}}",
            )
        ],
    ),
    (
        "Participants enrolled (total)",
        "stat",
        [("sum by (contract) (utfall_enrolments_total)", "{{contract}}")],
    ),
    (
        "Gateway requests by route and status",
        "timeseries",
        [
            (
                'sum by (route, status) (rate(utfall_http_request_seconds_count{service="gateway"}[1m]))',
                "{{route}} {{status}}",
            )
        ],
    ),
]

DASHBOARDS = {
    "utfall-overview.json": dashboard("utfall-overview", "Utfall: overview", OVERVIEW, ["overview"]),
    "utfall-ingest.json": dashboard("utfall-ingest", "Utfall: ingest pipeline", INGEST, ["pipeline"]),
    "utfall-measures.json": dashboard("utfall-measures", "Utfall: measures pipeline", MEASURES, ["pipeline"]),
    "utfall-contracts.json": dashboard(
        "utfall-contracts", "Utfall: contracts pipeline", CONTRACTS, ["pipeline"]
    ),
    "utfall-payments.json": dashboard(
        "utfall-payments", "Utfall: contracts and payments", PAYMENTS, ["finance"]
    ),
}


if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    for name, model in DASHBOARDS.items():
        (HERE / name).write_text(json.dumps(model, indent=2) + "\n")
        print(HERE / name)
