"""The signals page (`GET /v1/signals?format=html`): one table per signal, each provider's value with its
95 % interval beside the national value (and, for signals of a change, the provider's own earlier years), the
providers whose whole interval lies above the reference marked. Operators see every provider, an assessor its
contracts' providers, as in the JSON answer."""

from __future__ import annotations

LABELS = {
    "sv": {
        "title": "Signaler om datafel och spel",
        "language": "Language: English",
        "about": "Varje signal per utförare med 95 % intervall, bredvid riket och, för signaler om förändring, "
        "utförarens egna tidigare år. En signal är inte ett omdöme: den säger var det lönar sig att granska. "
        "Markerade rader har hela intervallet över jämförelsevärdet, mer än slumpen förklarar.",
        "provider": "Utförare",
        "value": "Värde",
        "interval": "95 % intervall",
        "n": "Underlag",
        "national": "Riket",
        "history": "Egna tidigare år",
        "year": "År",
        "flag": "Över jämförelsevärdet",
        "yes": "Ja",
        "no": "Nej",
        "none": "Inga utförare att visa.",
        "days": "dagar",
    },
    "en": {
        "title": "Signals of data errors and gaming",
        "language": "Språk: svenska",
        "about": "Each signal per provider with its 95 % interval, beside the national value and, for signals of "
        "a change, the provider's own earlier years. A signal is not a verdict: it says where a look pays off. "
        "Marked rows have their whole interval above the reference, more than chance explains.",
        "provider": "Provider",
        "value": "Value",
        "interval": "95 % interval",
        "n": "Based on",
        "national": "National",
        "history": "Own earlier years",
        "year": "Year",
        "flag": "Above the reference",
        "yes": "Yes",
        "no": "No",
        "none": "No providers to show.",
        "days": "days",
    },
}
