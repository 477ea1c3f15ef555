"""`utfall-admin` for an operator who makes mistakes: a missing file, broken YAML or an invalid contract gets one
clear line and a non-zero exit, never a traceback; secrets written for the local stack are owner-only."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from utfall_admin.cli import main
from utfall_admin.contracts import read_contract
from utfall_admin.errors import AdminError

from utfall_platform.local.paths import write_secret

EXAMPLE = next((Path(__file__).resolve().parents[2] / "deploy" / "contracts").glob("*.yaml"))


def test_an_example_contract_reads() -> None:
    assert read_contract(EXAMPLE).contract_id


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("name: [unclosed", "is not valid YAML (line 1"),
        ("- just\n- a list\n", "is not a valid contract"),
        ("contract_id: x\n", "is not a valid contract"),
    ],
)
def test_mistakes_are_one_clear_line(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "contract.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(AdminError, match=re.escape(expected)):
        read_contract(path)


def test_an_invalid_contract_names_each_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = EXAMPLE.read_text().replace(
        'commissioner_municipality: "0180"', 'commissioner_municipality: "0000"'
    )
    path = tmp_path / "bad.yaml"
    path.write_text(text + "\nper_participant_cap_ore: 50000000000000000000\n")
    with pytest.raises(SystemExit) as exited:
        main(["--bootstrap", "127.0.0.1:1", "contracts", "load", str(path)])
    message = str(exited.value.code)
    assert message.startswith("utfall-admin: ") and "Traceback" not in message
    assert "per_participant_cap_ore" in message
    with pytest.raises(SystemExit) as missing:
        main(["--bootstrap", "127.0.0.1:1", "contracts", "load", str(tmp_path / "nope.yaml")])
    assert "cannot read" in str(missing.value.code) and "No such file" in str(missing.value.code)


def test_secrets_are_owner_only_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("old")
    path.chmod(0o644)
    write_secret(path, '{"a": "secret"}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{"a": "secret"}'


def test_an_invalid_provider_registration_is_one_clear_line() -> None:
    with pytest.raises(SystemExit) as exited:
        main(
            [
                "--bootstrap",
                "127.0.0.1:1",
                "providers",
                "add",
                "hvb-x",
                "--name",
                "HVB X",
                "--organisation-number",
                "080412-2380",  # a sole trader's personnummer
                "--care-type",
                "hvb",
                "--unit",
                "x-1",
            ]
        )
    message = str(exited.value.code)
    assert message.startswith("utfall-admin: not a valid provider: organisation_number")
    assert "2380" not in message
