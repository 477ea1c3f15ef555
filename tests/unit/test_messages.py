"""The pages' message catalogues (gettext PO, `utfall_gateway/web/locale`): GNU gettext's own `msgfmt --check`
accepts them, both languages hold the same messages with the same placeholders, none is empty, and the pages
read them."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

from utfall_gateway.web.messages import LANGUAGES, catalogue, labels

pytestmark = pytest.mark.unit
LOCALE = Path(str(resources.files("utfall_gateway.web").joinpath("locale")))
PLACEHOLDER = re.compile(r"\{\{?[a-z_]*\}?\}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_gnu_msgfmt_accepts_the_catalogue(lang: str, tmp_path: Path) -> None:
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "GNU gettext's msgfmt is needed (scripts/bootstrap.sh --system installs gettext)"
    po = LOCALE / lang / "LC_MESSAGES" / "pages.po"
    done = subprocess.run(
        [msgfmt, "--check", "--statistics", "-o", str(tmp_path / "pages.mo"), str(po)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "untranslated" not in done.stderr and "fuzzy" not in done.stderr, done.stderr
    assert (tmp_path / "pages.mo").stat().st_size > 0


def test_both_languages_hold_the_same_messages_with_the_same_placeholders() -> None:
    sv, en = catalogue("sv"), catalogue("en")
    assert (
        set(sv)
        == set(en)
        == {"index", "provider", "agreement", "signals", "definitions", "rules", "accessibility", "audit"}
    )
    for page in sv:
        assert set(sv[page]) == set(en[page]), page
        for name, text in sv[page].items():
            other = en[page][name]
            assert type(text) is type(other), (page, name)
            for a, b in zip(
                text if isinstance(text, list) else [text],
                other if isinstance(other, list) else [other],
                strict=True,
            ):
                assert a.strip() and b.strip(), (page, name)
                assert sorted(PLACEHOLDER.findall(a)) == sorted(PLACEHOLDER.findall(b)), (page, name, a, b)


def test_pages_read_their_labels_from_the_catalogue() -> None:
    assert labels("index", "sv")["title"] == "Öppna jämförelser: utfall av placeringar"
    assert labels("index", "en")["missing"] == "Missing"
    assert len(labels("accessibility", "en")["known"]) == 2  # a list of messages known.0, known.1
    assert "{prepared}" in labels("accessibility", "sv")["prepared"]
