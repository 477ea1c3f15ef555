"""One readable page per measure, in Swedish and English, generated from the versioned catalogue: who is
counted, what counts as achieved, how missing follow-ups count, the window, when a result is final, and every
version of the definition."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from utfall_platform.problems import Problem

from ..state import gateway_state
from ..views import catalogue
from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)

# What the rule kind decides, in words: the numerator and what makes an outcome not achieved.
RULES = {
    "sv": {
        "end_reason_in": "Avgörs av avslutsskälet den dag placeringen avslutas.",
        "destination_in": "Avgörs av vart den unge flyttar när placeringen avslutas.",
        "no_replacement": "Avgörs av om en ny placering börjar inom fönstret, eller av uppföljningens svar.",
        "followup_bool": "Avgörs av uppföljningens svar när fönstret har gått.",
        "followup_living": "Avgörs av boendet som uppföljningen anger när fönstret har gått.",
        "followup_exists": "Avgörs av om en uppföljning gjorts inom fönstret.",
    },
    "en": {
        "end_reason_in": "Decided by the end reason on the day the placement ends.",
        "destination_in": "Decided by where the young person moves when the placement ends.",
        "no_replacement": "Decided by whether a new placement starts within the window, or by the follow-up's answer.",
        "followup_bool": "Decided by the follow-up's answer once the window has passed.",
        "followup_living": "Decided by the living situation the follow-up reports once the window has passed.",
        "followup_exists": "Decided by whether a follow-up was made within the window.",
    },
}

TEXT = {
    "sv": {
        "back": "Till jämförelserna",
        "version": "Version",
        "current": "gällande",
        "definition": "Definition",
        "rule": "Hur utfallet avgörs",
        "cohort": "Vilka som räknas (kohort)",
        "cohort_text": "Varje avslutad placering (episod) hos en registrerad utförare, en gång, i det utskrivningsår "
        "(eller kvartal) då den avslutades. Återtagna händelser räknas inte; episoder med motstridiga "
        "uppgifter läggs åt sidan som datafel och visas för sig.",
        "numerator": "Täljare",
        "numerator_text": "Episoder där utfallet är uppnått.",
        "denominator": "Nämnare",
        "denominator_text": "Observerad andel: uppnått + ej uppnått. ITT (intention to treat): uppnått + ej uppnått "
        "+ saknas, det vill säga saknade uppföljningar räknas som ej uppnått. Väntande räknas inte.",
        "window": "Fönster",
        "window_none": "Inget fönster: utfallet är känt när placeringen avslutas.",
        "window_text": "{months} månader efter utskrivningsdagen, plus {grace} dagars marginal för sena "
        "uppföljningar. Under tiden är utfallet väntande; därefter saknas det om inget avgjort det.",
        "final": "När ett resultat är slutligt",
        "final_text": "Ett utskrivningsårs resultat är slutligt först när alla dess placeringars fönster har stängts. "
        "Innan dess är det preliminärt: det visas med andelen stängda fönster men utan andel, eftersom tidiga "
        "utfall (till exempel en ny placering) annars skulle snedvrida det.",
        "fields": "Uppgifter som används",
        "versions": "Versioner",
        "protection": "Röjandeskydd",
        "protection_text": "Offentliga siffror kommer bara från publiceringar. Celler med färre än {n} placeringar "
        "undertrycks, och fler celler undertrycks tills ingen undertryckt cell kan ringas in till färre än "
        "{margin} möjliga värden med alla publiceringar, listan över utförare och en utförares egna siffror "
        "tillsammans. Ett preliminärt år visar antal placeringar och andelen stängda fönster, inte utfallen.",
        "oe": "O/E (observerat/förväntat) jämför utförarens utfall med vad riket skulle ha fått med samma "
        "sammansättning av ålder, kön, lagrum och målgrupp; 1 betyder som riket.",
    },
    "en": {
        "back": "Back to the comparisons",
        "version": "Version",
        "current": "current",
        "definition": "Definition",
        "rule": "How the outcome is decided",
        "cohort": "Who is counted (cohort)",
        "cohort_text": "Every ended placement (episode) at a registered provider, once, in the discharge year (or "
        "quarter) in which it ended. Retracted events do not count; episodes with contradictory records are set "
        "aside as data errors and shown separately.",
        "numerator": "Numerator",
        "numerator_text": "Episodes whose outcome is achieved.",
        "denominator": "Denominator",
        "denominator_text": "Observed rate: achieved + not achieved. ITT (intention to treat): achieved + not "
        "achieved + missing, so a missing follow-up counts as not achieved. Pending outcomes are not counted.",
        "window": "Window",
        "window_none": "No window: the outcome is known when the placement ends.",
        "window_text": "{months} months after the discharge date, plus {grace} days of grace for late follow-ups. "
        "Meanwhile the outcome is pending; after that it is missing unless something decided it.",
        "final": "When a result is final",
        "final_text": "A discharge year's result is final only once every one of its placements' windows has "
        "closed. Before that it is preliminary: shown with the share of windows closed but without a rate, "
        "because early outcomes (a re-placement, say) would otherwise bias it.",
        "fields": "Data used",
        "versions": "Versions",
        "protection": "Disclosure control",
        "protection_text": "Public figures come from releases only. Cells with fewer than {n} placements are "
        "suppressed, and further cells until no suppressed cell can be narrowed to fewer than {margin} possible "
        "values with every release, the list of providers and one provider's own figures together. A "
        "preliminary year shows its number of placements and the share of windows closed, not its outcomes.",
        "oe": "O/E (observed/expected) compares a provider's outcomes with what the nation would have had with "
        "the same mix of age, sex, legal basis and target group; 1 means as nationally.",
    },
}


def describe(versions: list[dict[str, Any]], lang: str, min_cell: int, margin: int) -> dict[str, Any]:
    """Everything the page says about one measure, from its catalogue rows (every version)."""
    ordered = sorted(versions, key=lambda r: r["version"])
    current = next((r for r in reversed(ordered) if r["is_current"]), ordered[-1])
    text = TEXT[lang]
    months = current["window_months"]
    return {
        "id": current["id"],
        "lang": lang,
        "other_lang": "en" if lang == "sv" else "sv",
        "title": current[f"title_{lang}"],
        "version": current["version"],
        "definition": current[f"definition_{lang}"],
        "rule": RULES[lang].get(current["kind"], current["kind"]),
        "window": text["window_none"]
        if months is None
        else text["window_text"].format(months=months, grace=current["grace_days"]),
        "fields": list(current["source_fields"]),
        "protection": text["protection_text"].format(n=min_cell, margin=margin),
        "versions": [
            {
                "version": r["version"],
                "current": r["is_current"],
                "title": r[f"title_{lang}"],
                "definition": r[f"definition_{lang}"],
                "window_months": r["window_months"],
            }
            for r in reversed(ordered)
        ],
        "text": text,
    }


@router.get("/measures/{measure_id}", response_class=HTMLResponse)
async def measure_page(
    request: Request,
    measure_id: str = Path(max_length=64),
    lang: str = Query("sv", pattern="^(sv|en)$"),
) -> HTMLResponse:
    gw = gateway_state(request)
    versions = [r for r in await catalogue(gw) if r["id"] == measure_id]
    if not versions:
        raise Problem(404, "not-found", "No measure with this id.")
    html = templates.get_template("measure.html").render(m=describe(versions, lang, gw.min_cell, gw.margin))
    return html_page(html)
