"""JSON Schemas (draft 2020-12) of the event dataclasses, read off their annotations.

The types events use map one to one: str, int, bool, None (a nullable field), Literal
and a field's ``enum`` metadata (an enum), dict[str, X] (an object of X), a nested
dataclass (an object), Any (anything). A field without a default is required; a
`events.Contract` also requires its ``v``, a constant.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from fjordbank.contracts.catalog import Entry

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://fjordbank.example/contracts"
JSON_TYPES: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", type(None): "null"}


def event_schema(entry: Entry) -> dict[str, Any]:
    """The schema file of one contract version."""
    body = object_schema(entry.cls, closed=entry.closed, version=entry.version if entry.versioned else None)
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"{BASE_ID}/{entry.path}",
        "title": f"{entry.name} event, contract v{entry.version}",
        "description": describe(entry.cls),
        **body,
    }
    for path, extra in entry.refine.items():
        _property(schema, path).update(extra)
    return schema


def describe(cls: type[Any]) -> str:
    """A class's docstring on one line."""
    return " ".join(inspect.cleandoc(cls.__doc__ or "").split())


def object_schema(cls: type[Any], *, closed: bool, version: int | None = None) -> dict[str, Any]:
    hints = get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    if version is not None:
        properties["v"] = {"const": version, "description": "the version of this contract"}
        required.append("v")
    for f in dataclasses.fields(cls):
        properties[f.name] = field_schema(f, hints[f.name], closed=closed)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": not closed}


def field_schema(f: dataclasses.Field[Any], annotation: Any, *, closed: bool) -> dict[str, Any]:
    schema = value_schema(annotation, closed=closed)
    allowed = f.metadata.get("enum")
    if allowed is not None:
        nullable = "null" in _types(schema)
        schema["enum"] = [*allowed, *([None] if nullable else [])]
    if "doc" in f.metadata:
        schema["description"] = f.metadata["doc"]
    return schema


def value_schema(annotation: Any, *, closed: bool) -> dict[str, Any]:
    origin = get_origin(annotation)
    if annotation is Any:
        return {}
    if annotation in JSON_TYPES:
        return {"type": JSON_TYPES[annotation]}
    if origin in (Union, types.UnionType):
        return _union(get_args(annotation), closed=closed)
    if origin is Literal:
        values = list(get_args(annotation))
        return {"type": JSON_TYPES[type(values[0])], "enum": values}
    if origin is dict:
        _key, item = get_args(annotation)
        return (
            {"type": "object"}
            if item is Any
            else {"type": "object", "additionalProperties": value_schema(item, closed=closed)}
        )
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return object_schema(annotation, closed=closed)
    raise TypeError(f"no JSON Schema for the annotation {annotation!r}")


def _union(members: tuple[Any, ...], *, closed: bool) -> dict[str, Any]:
    """``X | None``: X's schema with null allowed; any other union: anyOf."""
    others = [m for m in members if m is not type(None)]
    if len(others) != 1 or len(others) == len(members):
        return {"anyOf": [value_schema(m, closed=closed) for m in members]}
    schema = value_schema(others[0], closed=closed)
    if not schema:  # Any already takes null
        return schema
    schema["type"] = [*_types(schema), "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _property(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for name in path.split("."):
        schema = schema["properties"][name]
    return schema
