"""Contracts' domain metrics."""

from prometheus_client import Counter, Gauge

PAYMENTS = Counter(
    "utfall_payments_total", "Ledger entries written, by contract and kind", ["contract", "kind"]
)
PAYMENT_AMOUNT = Counter(
    "utfall_payment_amount_ore_total",
    "Amounts of ledger entries in öre, by contract and kind",
    ["contract", "kind"],
)
ENROLMENTS = Counter("utfall_enrolments_total", "Participants enrolled by rule", ["contract"])
CAP_UTILISATION = Gauge(
    "utfall_contract_cap_utilisation_ratio", "Paid net divided by the total cap", ["contract"]
)
PAID_NET = Gauge("utfall_contract_paid_net_ore", "Paid net in öre", ["contract"])
