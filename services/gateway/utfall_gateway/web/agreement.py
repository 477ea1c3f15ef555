"""The agreement page (`GET /v1/measures/{id}/agreement?format=html`): how far each provider's reported
outcomes agree with the registers, as a chart one reads at a glance (each provider's share agreeing, its 95 %
interval, the overall share as a line), the table behind it and the disagreeing episodes. The same key as the
JSON answer: operators see every provider, a provider its own."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.agreement import Agreement

LABEL_WIDTH = 200
BAR_WIDTH = 400
ROW_HEIGHT = 28


@dataclass(frozen=True, slots=True)
class ChartRow:
    provider_id: str
    name: str
    y: int
    x: float
    x_low: float
    x_high: float
    share: float


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    label_width: int
    rows: list[ChartRow]
    total_x: float | None


def _x(share: float) -> float:
    return round(LABEL_WIDTH + share * BAR_WIDTH, 1)


def chart(providers: list[Agreement], total: Agreement, names: dict[str, str]) -> Chart:
    """Rows for the providers with anything compared, lowest agreement first (what needs looking at)."""
    shown = sorted(
        (p for p in providers if p.share is not None and p.interval is not None and p.provider_id),
        key=lambda p: (p.share, p.provider_id),
    )
    rows = []
    for i, p in enumerate(shown):
        assert p.share is not None and p.interval is not None and p.provider_id is not None
        rows.append(
            ChartRow(
                p.provider_id,
                names.get(p.provider_id, p.provider_id),
                30 + i * ROW_HEIGHT,
                _x(p.share),
                _x(p.interval.low),
                _x(p.interval.high),
                p.share,
            )
        )
    return Chart(
        LABEL_WIDTH + BAR_WIDTH + 60,
        40 + len(rows) * ROW_HEIGHT,
        LABEL_WIDTH,
        rows,
        _x(total.share) if total.share is not None else None,
    )
