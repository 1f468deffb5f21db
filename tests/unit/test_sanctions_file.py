"""The clearing service's sanctions list (fjordbank.adapters.sanctions_file): read at start
(no list, no service), read again when its file changes, and a bad new file never leaves
the service screening against nothing."""

from __future__ import annotations

import os
import shutil

import pytest

from fjordbank.adapters.sanctions_file import SanctionsFile
from fjordbank.config import ConfigError, load_settings
from fjordbank.domain.sanctions import EVERYONE, InvalidSanctionsList
from tests.support.sanctions import SAMPLE_LIST

ONE = (
    '<export xmlns="http://eu.europa.ec/fpi/fsd/export"><sanctionEntity logicalId="7">'
    '<subjectType code="enterprise"/><nameAlias wholeName="Fjellheim Shadow Shipping Ltd"/>'
    "</sanctionEntity></export>"
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_new_list_is_read_when_the_file_changes_and_a_bad_one_keeps_the_old(tmp_path, caplog):
    path = tmp_path / "eu-fsf.xml"
    shutil.copyfile(SAMPLE_LIST, path)
    clock = Clock()
    sanctions = SanctionsFile(str(path), subjects=EVERYONE, check_seconds=60, clock=clock)
    assert sanctions().screen_counterparty("Nordkapp Phantom Trading AS").outcome == "review"
    # the next list: the enterprise's name changed (it is delisted under the old one)
    path.write_bytes(SAMPLE_LIST.read_bytes().replace(b"Nordkapp Phantom Trading AS", b"Fjellheim Shadow Shipping Ltd"))
    os.utime(path, ns=(1, 1))  # a new file, whatever the clock's resolution
    clock.now = 30.0
    assert sanctions().screen_counterparty("Fjellheim Shadow Shipping").outcome == "clear"  # not looked at yet
    clock.now = 61.0
    assert sanctions().screen_counterparty("Fjellheim Shadow Shipping").outcome == "review"
    assert sanctions().screen_counterparty("Nordkapp Phantom Trading AS").outcome == "clear"  # delisted
    path.write_text("<export>half a fi")
    clock.now = 200.0
    assert sanctions().screen_counterparty("Fjellheim Shadow Shipping").outcome == "review"  # the old one kept
    assert "could not be read" in caplog.text


def test_a_service_does_not_start_without_a_readable_list(tmp_path):
    with pytest.raises(FileNotFoundError):
        SanctionsFile(str(tmp_path / "missing.xml"), subjects=EVERYONE)
    broken = tmp_path / "broken.xml"
    broken.write_text("<export>")
    with pytest.raises(InvalidSanctionsList):
        SanctionsFile(str(broken), subjects=EVERYONE)


def test_production_names_its_list_or_the_screening_service_refuses_to_start(tmp_path):
    local = load_settings(env={"FJB_STATE_DIR": str(tmp_path)}, identity="clearing")
    assert local.screening_list() == str(SAMPLE_LIST)
    production = load_settings(env={"FJB_ENV": "production", "FJB_STATE_DIR": str(tmp_path)}, identity="clearing")
    with pytest.raises(ConfigError, match="FJB_SANCTIONS_LIST"):
        production.screening_list()
    named = load_settings(
        env={"FJB_ENV": "production", "FJB_SANCTIONS_LIST": "/mnt/clearing/sanctions/eu-fsf.xml"}, identity="clearing"
    )
    assert named.screening_list() == "/mnt/clearing/sanctions/eu-fsf.xml"


EMPTY_EXPORT = '<export xmlns="http://eu.europa.ec/fpi/fsd/export"></export>'


def test_a_list_that_names_nobody_or_far_fewer_than_the_one_in_use_is_not_taken(tmp_path, caplog):
    """A truncated export or a wrong file would let every payer pass: not at start, and a
    new one with under half the entries keeps the list in use."""
    path = tmp_path / "eu-fsf.xml"
    path.write_text(EMPTY_EXPORT)
    with pytest.raises(InvalidSanctionsList, match="no entries"):
        SanctionsFile(str(path), subjects=EVERYONE)
    shutil.copyfile(SAMPLE_LIST, path)
    clock = Clock()
    sanctions = SanctionsFile(str(path), subjects=EVERYONE, clock=clock)
    path.write_text(ONE)  # one entry against the sample's eight
    os.utime(path, ns=(1, 1))
    clock.now = 120.0
    assert sanctions().screen_counterparty("Nordkapp Phantom Trading AS").outcome == "review"  # the old list
    assert "1 entries against 8 in use" in caplog.records[-1].error  # type: ignore[attr-defined]
