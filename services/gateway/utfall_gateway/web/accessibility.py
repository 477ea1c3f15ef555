"""The accessibility statement (tillgänglighetsredogörelse), in Swedish and English, as Swedish public-sector
sites publish one under the law on accessibility of digital public services (DOS-lagen, EN 301 549)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from .rendering import html_page, templates

router = APIRouter(include_in_schema=False)

PREPARED = "2026-12-03"

TEXT = {
    "sv": {
        "title": "Tillgänglighetsredogörelse",
        "language": "Language: English",
        "back": "Till jämförelserna",
        "scope": "Redogörelsen gäller Utfalls publika jämförelsesidor: jämförelsen mellan utförare, "
        "måttens definitioner och den här sidan. Vi vill att alla ska kunna läsa siffrorna, också med "
        "skärmläsare, förstoring eller bara tangentbord.",
        "status_heading": "Hur tillgänglig är webbplatsen?",
        "status": "Webbplatsen är delvis förenlig med EN 301 549 (WCAG 2.1 nivå AA) på grund av de brister "
        "som anges nedan.",
        "how_heading": "Hur vi har testat",
        "how": "Varje ändring testas automatiskt i en riktig webbläsare (Chromium) med axe-core mot WCAG 2.1 A "
        "och AA: jämförelsesidan på svenska och engelska, en publicering, måttens definitioner och den här sidan. "
        "Tangentbordsanvändning testas genom att sidan styrs enbart med tangentbordet. Automatiska test hittar "
        "inte alla brister; en manuell granskning med skärmläsare återstår.",
        "known_heading": "Kända brister",
        "known": [
            "Diagrammen (andelar, trattdiagram, utveckling) är bilder med en kort textbeskrivning; samma "
            "siffror finns i tabellerna under dem, men trattdiagrammets kontrollgränser finns bara som bild.",
            "Sidan har inte granskats manuellt med skärmläsare (NVDA, VoiceOver).",
        ],
        "feedback_heading": "Kontakta oss om du inte kan använda delar av webbplatsen",
        "feedback": "Behöver du innehållet i ett annat format, eller hittar du en brist som inte står här? "
        "Skriv till förvaltningen av Utfall (tillganglighet@utfall.se) så svarar vi inom fem arbetsdagar.",
        "enforcement_heading": "Tillsyn",
        "enforcement": "Myndigheten för digital förvaltning (Digg) har ansvar för tillsyn över lagen om "
        "tillgänglighet till digital offentlig service. Är du inte nöjd med hur vi hanterar dina synpunkter kan "
        "du anmäla det till Digg:",
        "prepared": f"Redogörelsen upprättades {PREPARED}.",
    },
    "en": {
        "title": "Accessibility statement",
        "language": "Språk: svenska",
        "back": "To the comparisons",
        "scope": "This statement covers Utfall's public comparison pages: the comparison of providers, the "
        "measures' definitions and this page. We want everyone to be able to read the figures, including with "
        "a screen reader, magnification or a keyboard alone.",
        "status_heading": "How accessible is the site?",
        "status": "The site is partially compliant with EN 301 549 (WCAG 2.1 level AA), because of the "
        "shortcomings listed below.",
        "how_heading": "How we tested",
        "how": "Every change is tested automatically in a real browser (Chromium) with axe-core against WCAG 2.1 "
        "A and AA: the comparison page in Swedish and English, a release, the measures' definitions and this "
        "page. Keyboard use is tested by driving the page with the keyboard alone. Automated tests do not find "
        "every barrier; a manual review with screen readers is still to be done.",
        "known_heading": "Known shortcomings",
        "known": [
            "The charts (rates, funnel plot, trends) are images with a short text description; the same "
            "figures are in the tables below them, but the funnel plot's control limits exist only as an image.",
            "The site has not been reviewed by hand with screen readers (NVDA, VoiceOver).",
        ],
        "feedback_heading": "Contact us if you cannot use parts of the site",
        "feedback": "Do you need the content in another format, or have you found a barrier not listed here? "
        "Write to Utfall's administration (tillganglighet@utfall.se); we answer within five working days.",
        "enforcement_heading": "Enforcement",
        "enforcement": "The Agency for Digital Government (Digg) supervises the Swedish law on accessibility of "
        "digital public services. If you are not satisfied with how we handle your feedback, you can report it "
        "to Digg:",
        "prepared": f"This statement was prepared on {PREPARED}.",
    },
}


@router.get("/accessibility", response_class=HTMLResponse)
async def accessibility(lang: str = Query("sv", pattern="^(sv|en)$")) -> HTMLResponse:
    html = templates.get_template("accessibility.html").render(
        t=TEXT[lang], lang=lang, other_lang="en" if lang == "sv" else "sv"
    )
    return html_page(html)
