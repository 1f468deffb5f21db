"""The official ISO 20022 pain.001.001.03 XSD, which is not kept in the repository.

Read from ``$FJB_PAIN001_XSD`` or from ``shared/schemas/`` beside the checkout. A missing
XSD FAILS the tests that need it (it never skips them)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

XSD_ENV = "FJB_PAIN001_XSD"
DEFAULT_XSD = Path(__file__).resolve().parents[3] / "shared" / "schemas" / "pain.001.001.03.xsd"


@functools.cache
def _load(path: str):
    import xmlschema

    return xmlschema.XMLSchema(path)


def pain001_schema():
    path = Path(os.environ.get(XSD_ENV) or DEFAULT_XSD)
    if not path.is_file():
        pytest.fail(
            f"pain.001.001.03 XSD not found at {path}. Set {XSD_ENV} to the official "
            f"ISO 20022 pain.001.001.03.xsd (it is not kept in the repository).",
            pytrace=False,
        )
    return _load(str(path))


def assert_valid_pain001(xml: bytes) -> None:
    errors = [str(error) for error in pain001_schema().iter_errors(xml.decode("utf-8"))]
    assert not errors, "pain.001 does not validate against the XSD:\n" + "\n".join(errors[:5])
