"""XML parsing for files that come from outside the bank (payment status reports,
sanctions lists), safe against XXE and entity expansion.

expat is driven directly (instead of ``ET.fromstring``) so that a DOCTYPE aborts parsing
the moment it starts: no internal entity can be declared (no "billion laughs"), no
external entity or DTD can be referenced (no XXE, no network). Comments and processing
instructions are dropped.

Memory is bounded by the input's size, not only its shape (found in review, 2026-12-06: a
1 MiB payment status report took 1.4 GiB and the clearing service, OOM-killed, read the
same file again at each start):

- a namespace URI is at most MAX_NAMESPACE_CHARS long, and a document names at most
  MAX_NAMESPACES of them: each element's tag is "{URI}name", and a URI of a megabyte
  declared once cost a megabyte for every element that used it;
- each distinct tag and attribute name is built once and shared by every element that
  has it, and a document has at most MAX_NAMES of them;
- a start tag has at most MAX_TAG_ATTRIBUTES attributes (pyexpat builds a tag's
  attributes whole before any handler sees them: one element with 3 million attributes
  took a gigabyte), and attributes count with the elements against ``max_elements``;
- namespace declarations count with them too, and a document has at most MAX_PREFIXES
  distinct prefixes: expat does not pass a declaration as an attribute, and keeps each
  prefix (pyexpat's interning a second copy), so 1.7 million prefixes bound to one short
  URI in a 31 MiB file took 450 MiB over the clearing service's 512 MiB (found in review,
  2026-12-07). The parser interns nothing itself (``intern=None``): the names are shared
  here (``_Bounded.qualified``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import NoReturn
from xml.parsers import expat

MAX_NAMESPACE_CHARS = 256  # ISO 20022's are about 45 ("urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08")
MAX_NAMESPACES = 32  # distinct URIs in one document
MAX_PREFIXES = 64  # distinct namespace prefixes in one document (ISO 20022 files use none or a few)
MAX_TAG_ATTRIBUTES = 2_048  # in one start tag (ISO 20022's have one or two)
# Distinct element and attribute names in one document: pain.001/002 and pacs.008/004 use a
# few hundred, the EU sanctions list about sixty. Each costs its name and namespace twice
# (expat's copy and the tree's), however few times it is used: 2.9 million distinct ones in
# 29 MiB took 2 GiB (found in review, 2026-12-06).
MAX_NAMES = 5_000
# A start tag with more than MAX_TAG_ATTRIBUTES attributes, found in one search in C: a tag's
# parts are its runs outside quotes and its quoted values (a value may hold ">", never
# "<"), two per attribute. Possessive: each byte looked at once per "<".
_CROWDED_TAG = re.compile(rb"<(?![!?/])(?:[^<>\"']++|\"[^\"]*+\"|'[^']*+'){%d}" % (2 * MAX_TAG_ATTRIBUTES + 2))


class UnsafeOrMalformedXml(ValueError):
    """The input is not bytes, too large, not well-formed, or declares DTDs/entities.
    Callers turn it into their own domain error."""


def _refuse(what: str, where: str) -> Callable[..., NoReturn]:
    def handler(*_args: object) -> NoReturn:
        raise UnsafeOrMalformedXml(f"{what} are not allowed in {where}")

    return handler


class _Bounded:
    """An element tree built from expat's events within the module's bounds."""

    def __init__(self, what: str, max_elements: int) -> None:
        self.what, self.max_elements = what, max_elements
        self.builder = ET.TreeBuilder()
        self.names: dict[str, str] = {}
        self.uris: set[str] = set()
        self.prefixes: set[str] = set()
        self.elements = 0

    def qualified(self, name: str) -> str:
        shared = self.names.get(name)
        if shared is None:
            if len(self.names) >= MAX_NAMES:
                raise UnsafeOrMalformedXml(f"{self.what} has more than {MAX_NAMES} distinct names")
            shared = self.names[name] = f"{{{name}" if "}" in name else name
        return shared

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        self.elements += 1  # a declaration is an attribute to the bound (the module's notes)
        if self.elements > self.max_elements:
            raise UnsafeOrMalformedXml(f"{self.what} has more than {self.max_elements} elements and attributes")
        if prefix is not None and prefix not in self.prefixes:
            self.prefixes.add(prefix)
            if len(self.prefixes) > MAX_PREFIXES:
                raise UnsafeOrMalformedXml(f"{self.what} declares more than {MAX_PREFIXES} namespace prefixes")
        if uri is None or uri in self.uris:
            return
        if len(uri) > MAX_NAMESPACE_CHARS:
            raise UnsafeOrMalformedXml(f"{self.what} declares a namespace longer than {MAX_NAMESPACE_CHARS} characters")
        self.uris.add(uri)
        if len(self.uris) > MAX_NAMESPACES:
            raise UnsafeOrMalformedXml(f"{self.what} declares more than {MAX_NAMESPACES} namespaces")

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.elements += 1 + len(attributes)
        if self.elements > self.max_elements:
            raise UnsafeOrMalformedXml(f"{self.what} has more than {self.max_elements} elements and attributes")
        q = self.qualified
        self.builder.start(q(name), {q(key): value for key, value in attributes.items()})

    def end(self, name: str) -> None:
        self.builder.end(self.qualified(name))


def _utf16(text: bytes) -> str | None:
    """The byte order of UTF-16 text (by its byte-order mark, else by its first "<"), or
    None when it is not UTF-16."""
    if text[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    if text[:2] == b"\x00<" or (text[:1] == b"\x00" and len(text) > 1):
        return "utf-16-be"
    if text[1:2] == b"\x00":
        return "utf-16-le"
    return None


def _check_tags(data: bytes | bytearray, what: str) -> None:
    """Refuse a start tag of more than MAX_TAG_ATTRIBUTES attributes before expat builds it:
    pyexpat makes a tag's attributes whole before any handler sees them (one tag of 3
    million attributes took a gigabyte). UTF-16 input is read as its text (its bytes hold
    "<" inside characters; an undecodable unit read as a replacement, never a reason to
    skip the check: found in review, 2026-12-06)."""
    text = bytes(data)
    encoding = _utf16(text)
    if encoding is not None:
        text = text.decode(encoding, errors="replace").encode()
    if _CROWDED_TAG.search(text) is not None:
        raise UnsafeOrMalformedXml(f"{what} has a tag of more than {MAX_TAG_ATTRIBUTES} attributes")


def parse(data: object, *, what: str, where: str, max_bytes: int, max_elements: int) -> ET.Element:
    """Parse ``data`` (bytes) into an element tree. ``what`` names the document in
    messages ("payment file"), ``where`` the place markup is refused in ("payment files").

    ``max_elements`` bounds the tree, and so the memory: the byte cap alone does not (a
    32 MiB file of empty elements built a tree of 1.7 GB); each element costs about 200
    bytes, so a million about 200 MB, and each attribute counts as one. Parsing stops at
    the first element past it."""
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafeOrMalformedXml(f"{what} must be bytes, got {type(data).__name__}")
    if len(data) > max_bytes:
        raise UnsafeOrMalformedXml(f"{what} exceeds {max_bytes} bytes")
    _check_tags(data, what)
    parser = expat.ParserCreate(namespace_separator="}", intern=None)
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("DTDs (DOCTYPE)", where)
    parser.EntityDeclHandler = _refuse("entity declarations", where)
    parser.UnparsedEntityDeclHandler = _refuse("entity declarations", where)
    parser.NotationDeclHandler = _refuse("notation declarations", where)
    parser.ExternalEntityRefHandler = _refuse("external entities", where)
    tree = _Bounded(what, max_elements)
    parser.StartNamespaceDeclHandler = tree.namespace
    parser.StartElementHandler = tree.start
    parser.EndElementHandler = tree.end
    parser.CharacterDataHandler = tree.builder.data
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
    return tree.builder.close()
