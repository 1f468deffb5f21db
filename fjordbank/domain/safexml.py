"""XML parsing for files that come from outside the bank (payment status reports,
sanctions lists), safe against XXE and entity expansion.

expat is driven directly (instead of ``ET.fromstring``) so that a DOCTYPE aborts parsing
the moment it starts: no internal entity can be declared (no "billion laughs"), no
external entity or DTD can be referenced (no XXE, no network). Comments and processing
instructions are dropped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import NoReturn
from xml.parsers import expat


class UnsafeOrMalformedXml(ValueError):
    """The input is not bytes, too large, not well-formed, or declares DTDs/entities.
    Callers turn it into their own domain error."""


def _refuse(what: str, where: str) -> Callable[..., NoReturn]:
    def handler(*_args: object) -> NoReturn:
        raise UnsafeOrMalformedXml(f"{what} are not allowed in {where}")

    return handler


def parse(data: object, *, what: str, where: str, max_bytes: int, max_elements: int) -> ET.Element:
    """Parse ``data`` (bytes) into an element tree. ``what`` names the document in
    messages ("payment file"), ``where`` the place markup is refused in ("payment files").

    ``max_elements`` bounds the tree, and so the memory: the byte cap alone does not (a
    32 MiB file of empty elements built a tree of 1.7 GB); each element costs about 200
    bytes, so a million about 200 MB. Parsing stops at the first element past it."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafeOrMalformedXml(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise UnsafeOrMalformedXml(f"{what} exceeds {max_bytes} bytes")
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("DTDs (DOCTYPE)", where)
    parser.EntityDeclHandler = _refuse("entity declarations", where)
    parser.UnparsedEntityDeclHandler = _refuse("entity declarations", where)
    parser.NotationDeclHandler = _refuse("notation declarations", where)
    parser.ExternalEntityRefHandler = _refuse("external entities", where)

    def qualified(name: str) -> str:
        return f"{{{name}" if "}" in name else name

    elements = 0

    def start(name: str, attributes: dict[str, str]) -> None:
        nonlocal elements
        elements += 1
        if elements > max_elements:
            raise UnsafeOrMalformedXml(f"{what} has more than {max_elements} elements")
        builder.start(qualified(name), {qualified(key): value for key, value in attributes.items()})

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda name: builder.end(qualified(name))
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(bytes(data), True)
    except UnsafeOrMalformedXml:
        raise
    except expat.ExpatError as exc:
        raise UnsafeOrMalformedXml(f"{what} is not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:
        # an encoding declaration Python has no codec for, or one that cannot decode the
        # bytes (encoding="foo", "idna", "utf-32" on UTF-8 bytes): not XML this bank reads
        raise UnsafeOrMalformedXml(f"{what} cannot be decoded as declared: {exc}") from None
    return builder.close()
