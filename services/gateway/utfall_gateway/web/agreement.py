"""The agreement page (`GET /v1/measures/{id}/agreement?format=html`): how far each provider's reported
outcomes agree with the registers, as a chart one reads at a glance (each provider's share agreeing, its 95 %
interval, the overall share as a line), the table behind it and the disagreeing episodes. The same key as the
JSON answer: operators see every provider, a provider its own."""

from __future__ import annotations

from dataclasses import dataclass

from ..domain.agreement import Agreement

LABELS = {
    "sv": {
        "title": "Överensstämmelse med register",
        "language": "Language: English",
        "about": "Av de utfall som både utföraren rapporterat och registret avgjort: andelen där de är lika, med "
        "95 % Wilson-intervall. Utfall som registret inte täcker räknas inte (ej verifierade), inte heller "
        "utfall som registret utesluter (dödsfall, utvandring).",
        "chart": "Andel överensstämmande per utförare, med 95 % konfidensintervall; streckad linje: alla "
        "utförare tillsammans.",
        "provider": "Utförare",
        "compared": "Jämförda utfall",
        "agree": "Lika",
        "share": "Andel lika",
        "interval": "95 % intervall",
        "register_only": "Bara registret har svar",
        "excluded": "Uteslutna",
        "unverified": "Ej verifierade",
        "all": "Alla utförare",
        "disagreements": "Utfall där rapport och register skiljer sig",
        "episode": "Placering",
        "year": "Utskrivningsår",
        "reported": "Rapporterat",
        "verified": "Registret",
        "evidence": "Underlag",
        "none": "Inga jämförda utfall ännu.",
        "no_disagreements": "Inga skillnader.",
        "achieved": "uppnått",
        "not_achieved": "ej uppnått",
        "missing": "saknas",
        "pending": "väntande",
    },
    "en": {
        "title": "Agreement with registers",
        "language": "Språk: svenska",
        "about": "Of the outcomes both the provider reported and the register decided: the share where they "
        "agree, with a 95 % Wilson interval. Outcomes the register does not cover (unverified) are not counted, "
        "nor outcomes the register excludes (death, emigration).",
        "chart": "Share agreeing per provider, with its 95 % confidence interval; dashed line: all providers "
        "together.",
        "provider": "Provider",
        "compared": "Outcomes compared",
        "agree": "Agree",
        "share": "Share agreeing",
        "interval": "95 % interval",
        "register_only": "Only the register answers",
        "excluded": "Excluded",
        "unverified": "Unverified",
        "all": "All providers",
        "disagreements": "Outcomes where report and register differ",
        "episode": "Episode",
        "year": "Discharge year",
        "reported": "Reported",
        "verified": "Register",
        "evidence": "Evidence",
        "none": "No outcomes compared yet.",
        "no_disagreements": "No differences.",
        "achieved": "achieved",
        "not_achieved": "not achieved",
        "missing": "missing",
        "pending": "pending",
    },
}

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
