"""The measure catalogue is part of the public contract (utfall_events.catalogue): ingest validates aggregated
submissions against it, the gateway publishes it, and measures evaluates its rules (`facts.py`)."""

from utfall_events.catalogue import BY_ID, CATALOGUE, MEASURE_IDS, MeasureDefinition, RuleKind

__all__ = ["BY_ID", "CATALOGUE", "MEASURE_IDS", "MeasureDefinition", "RuleKind"]
