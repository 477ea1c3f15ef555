"""Measures' domain metrics."""

from prometheus_client import Counter, Gauge

FACT_CHANGES = Counter(
    "utfall_outcome_fact_changes_total",
    "Outcome facts published, by measure and new status",
    ["measure", "status"],
)
FACTS = Gauge("utfall_outcome_facts", "Outcome facts by measure and status (sampled)", ["measure", "status"])
DATA_ERRORS = Gauge("utfall_measures_data_errors", "Episodes set aside as data errors (sampled)", ["error"])
