"""Gateway's domain metrics."""

from prometheus_client import Counter

SOURCE_DIFFERENCES = Counter(
    "utfall_self_reported_differences_total",
    "Cells where a provider's self-reported figures differ from its event-based ones (non-overlapping intervals)",
)
