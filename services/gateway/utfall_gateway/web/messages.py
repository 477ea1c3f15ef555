"""The pages' labels in both languages, from message catalogues: gettext PO files
(`web/locale/<lang>/LC_MESSAGES/pages.po`, read with Babel), one message per label, its context the page it
belongs to and its id the name the templates use. Translators work on the PO files with the usual tools; no
label is written in code."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

from babel.messages.pofile import read_po

LANGUAGES = ("sv", "en")
DOMAIN = "pages"


@lru_cache(maxsize=len(LANGUAGES))
def catalogue(lang: str) -> dict[str, dict[str, Any]]:
    """Every page's labels in one language: page -> name -> text (a name `x.0`, `x.1`, ... is the list `x`)."""
    path = resources.files("utfall_gateway.web").joinpath("locale", lang, "LC_MESSAGES", f"{DOMAIN}.po")
    with path.open("rb") as f:
        po = read_po(f, locale=lang, domain=DOMAIN)
    pages: dict[str, dict[str, Any]] = {}
    lists: dict[tuple[str, str], dict[int, str]] = {}
    for message in po:
        if not message.id or not message.context:
            continue  # the header
        name, text = str(message.id), str(message.string)
        head, _, index = name.rpartition(".")
        if head and index.isdigit():
            lists.setdefault((message.context, head), {})[int(index)] = text
        else:
            pages.setdefault(message.context, {})[name] = text
    for (page, name), items in lists.items():
        pages.setdefault(page, {})[name] = [items[i] for i in sorted(items)]
    return pages


def labels(page: str, lang: str) -> dict[str, Any]:
    """One page's labels in one language (`sv` or `en`)."""
    return catalogue(lang)[page]
