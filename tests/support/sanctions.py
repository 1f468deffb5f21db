"""The repository's fictional sanctions list as the clearing service reads it (persons and
enterprises): `sample_sanctions()` is what `fjordbank.adapters.sanctions_file.SanctionsFile` gives."""

from __future__ import annotations

from pathlib import Path

from fjordbank.domain.sanctions import EVERYONE, SanctionsList

SAMPLE_LIST = Path(__file__).resolve().parents[2] / "emulators" / "sanctions" / "eu-fsf-sample.xml"
_LIST = SanctionsList.from_xml(SAMPLE_LIST.read_bytes(), subjects=EVERYONE)


def sample_sanctions() -> SanctionsList:  # the list as the service holds it now
    return _LIST
