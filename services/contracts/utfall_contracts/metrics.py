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
WEBHOOK_DELIVERIES = Counter(
    "utfall_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered: a 2xx; failed: anything else)",
    ["outcome"],
)
WEBHOOK_PENDING = Gauge(
    "utfall_webhook_pending_messages",
    "Payment messages an endpoint has not acknowledged yet",
    ["endpoint", "contract"],
)
WEBHOOK_FAILING = Gauge(
    "utfall_webhook_failing_seconds",
    "How long an endpoint has failed every attempt since its last delivery (0: healthy)",
    ["endpoint", "contract"],
)
